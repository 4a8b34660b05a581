# clipwatch: one image for `clipwatch serve`, `clipwatch worker` and `clipwatch db upgrade`
# (docs/deploy.md). Build: docker build -t clipwatch .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# Build stage: the package and its pinned dependencies (constraints.txt, no dev extras) in a
# virtualenv that the runtime stage copies whole.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/clipwatch
COPY pyproject.toml constraints.txt README.md ./
COPY src ./src
RUN /opt/clipwatch/bin/pip install --no-cache-dir -c constraints.txt .

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/clipwatch/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CLIPWATCH_LOG_FORMAT=json
# A fixed non-root uid/gid, so a host directory or volume can be given to it.
RUN groupadd --system --gid 10001 clipwatch \
    && useradd --system --uid 10001 --gid clipwatch --no-create-home \
       --home-dir /var/lib/clipwatch --shell /usr/sbin/nologin clipwatch \
    && mkdir -p /var/lib/clipwatch \
    && chown clipwatch:clipwatch /var/lib/clipwatch
COPY --from=build /opt/clipwatch /opt/clipwatch
COPY deploy/healthcheck.py /opt/clipwatch/healthcheck.py
# ./var (the default SQLite file and the generated secret key) is /var/lib/clipwatch/var.
WORKDIR /var/lib/clipwatch
USER 10001:10001
# 8000: `serve` (the API, /metrics, /healthz, /readyz); 9300: `worker --metrics-port 9300`.
EXPOSE 8000 9300
# GET /readyz (the database answers); a worker container sets HEALTHCHECK_URL to its
# metrics port instead. The slim image has no curl: the script uses Python's urllib.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/opt/clipwatch/healthcheck.py"]
ENTRYPOINT ["clipwatch"]
CMD ["serve", "--host", "0.0.0.0"]
