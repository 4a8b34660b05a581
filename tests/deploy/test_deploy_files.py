"""The deployment files (Dockerfile, deploy/compose.yaml, deploy/systemd/, docs/deploy.md)
checked as far as this machine allows: no Docker daemon, no systemd running.

- compose: Debian's `docker-compose config -q` on a copy with init-secrets.sh's files, and
  the structure read with PyYAML (2 serve --no-worker, 2 workers, migrate first, secrets in
  files, Prometheus scraping every clipwatch process with ops/prometheus/alerts.yml loaded,
  Alertmanager posting to every API process's receiver, Grafana with the dashboard);
- systemd: `systemd-analyze verify` of each unit in a root of the test's own (with a stub
  clipwatch at the units' ExecStart path); any warning fails, and a broken unit is shown to;
- Dockerfile: read statically (non-root USER, HEALTHCHECK on /readyz, constraints.txt, the
  console script) and by hadolint; the healthcheck script run against a server of its own;
- every `clipwatch …` command the files and docs/deploy.md show parses (`--help`).
`make deps` installs docker-compose, promtool and amtool; missing ones skip here, fail in CI.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import free_port, unavailable

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
UNITS = DEPLOY / "systemd"
DOCKERFILE = ROOT / "Dockerfile"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
SECRET_WORDS = re.compile(r"SECRET|TOKEN|PASSWORD|_KEY|DSN|WEBHOOK", re.IGNORECASE)
CLIPWATCH_BIN = "/opt/clipwatch/bin/clipwatch"
UNIT_INSTANCES = {
    "clipwatch-migrate.service": "clipwatch-migrate.service",
    "clipwatch-serve@.service": "clipwatch-serve@8001.service",
    "clipwatch-worker@.service": "clipwatch-worker@9301.service",
}
# systemd-analyze security --threshold: exposure x 10 (0 safe … 100 exposed).
MAX_EXPOSURE = 20
HARDENING = {
    "DynamicUser": "yes",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "CapabilityBoundingSet": "",
    "EnvironmentFile": "/etc/clipwatch/clipwatch.env",
}


def program(name: str) -> str:
    """A program on PATH, or beside this Python (hadolint comes in a wheel, into .venv/bin)."""
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        unavailable(f"{name} (the program; make deps installs it)")
    assert path is not None
    return path


def run(*command: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, timeout=60, cwd=cwd, check=False
    )


# --- compose -----------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def clipwatch_services(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in document["services"].items()
        if service.get("image", "").startswith("clipwatch:")
    }


def commands(document: dict[str, Any], first: str) -> dict[str, list[str]]:
    return {
        name: service["command"]
        for name, service in clipwatch_services(document).items()
        if service["command"][0] == first
    }


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """A service's bind mounts: container path → host path (relative to deploy/)."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("."):
            found[target] = (DEPLOY / source).resolve()
    return found


def secret_files(document: dict[str, Any], service: dict[str, Any]) -> set[str]:
    return {f"/run/secrets/{name}" for name in service.get("secrets", [])} & {
        f"/run/secrets/{name}" for name in document["secrets"]
    }


@pytest.fixture(scope="module")
def deploy_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """deploy/ and ops/ copied, with clipwatch.env and secrets/ made by init-secrets.sh."""
    tmp_path = tmp_path_factory.mktemp("deploy")
    shutil.copytree(DEPLOY, tmp_path / "deploy")
    shutil.copytree(ROOT / "ops", tmp_path / "ops")
    made = run("sh", tmp_path / "deploy" / "init-secrets.sh", tmp_path / "deploy")
    assert made.returncode == 0, made.stdout + made.stderr
    return tmp_path / "deploy"


def test_docker_compose_accepts_the_file(deploy_copy: Path) -> None:
    checked = run(program("docker-compose"), "-f", "compose.yaml", "config", "-q", cwd=deploy_copy)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout + checked.stderr == ""


def test_init_secrets_gives_each_service_the_same_values(deploy_copy: Path) -> None:
    env = dict(
        line.split("=", 1)
        for line in (deploy_copy / "clipwatch.env").read_text().splitlines()
        if line and not line.startswith("#")
    )

    def read(name: str) -> str:
        return (deploy_copy / "secrets" / name).read_text().strip()

    assert f":{read('postgres_password')}@postgres:5432/" in env["CLIPWATCH_DATABASE_URL"]
    assert env["CLIPWATCH_METRICS_TOKEN"] == read("metrics_token")
    assert env["CLIPWATCH_ALERTMANAGER_TOKEN"] == read("alertmanager_token")
    assert len(env["CLIPWATCH_SECRET_KEY"]) >= 32
    assert "CHANGE_ME" not in env["CLIPWATCH_SECRET_KEY"]
    assert (deploy_copy / "clipwatch.env").stat().st_mode & 0o077 == 0
    assert (deploy_copy / "secrets").stat().st_mode & 0o077 == 0


def test_two_api_processes_and_two_workers_after_the_migration() -> None:
    document = compose()
    serves = commands(document, "serve")
    workers = commands(document, "worker")
    assert len(serves) == 2, serves
    assert len(workers) == 2, workers
    assert all("--no-worker" in c and option(c, "--host") == "0.0.0.0" for c in serves.values())
    assert all("--metrics-port" in c for c in workers.values())
    migrate = document["services"]["migrate"]
    assert migrate["command"] == ["db", "upgrade"]
    assert migrate["restart"] == "no"
    for name, service in clipwatch_services(document).items():
        assert service["env_file"] == "clipwatch.env", name
        if name == "migrate":
            continue
        assert service["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }, name
        # The image's HEALTHCHECK stays on (a worker points it at its metrics port).
        assert "healthcheck" not in service, name
    for name in workers:
        environment = document["services"][name]["environment"]
        port = option(workers[name], "--metrics-port")
        assert environment["HEALTHCHECK_URL"] == f"http://127.0.0.1:{port}/metrics"
        assert environment["CLIPWATCH_METRICS_HOST"] == "0.0.0.0"


def test_no_secret_is_written_in_the_files() -> None:
    document = compose()
    for name, service in document["services"].items():
        environment = service.get("environment", {})
        for key, value in environment.items():
            if SECRET_WORDS.search(key):
                assert key.endswith("_FILE"), (name, key)
                assert str(value).startswith("/run/secrets/"), (name, key)
    for line in (DEPLOY / "clipwatch.env.example").read_text().splitlines():
        key, _, value = line.partition("=")
        if line.startswith("#") or not SECRET_WORDS.search(key):
            continue
        assert value == "" or "CHANGE_ME" in value, line
    ignored = (DEPLOY / ".gitignore").read_text().split()
    assert {"clipwatch.env", "secrets/"} <= set(ignored)


def test_prometheus_scrapes_every_clipwatch_process_with_our_rules() -> None:
    document = compose()
    prometheus = document["services"]["prometheus"]
    files = mounts(prometheus)
    config_path = files["/etc/prometheus/prometheus.yml"]
    assert files["/etc/prometheus/alerts.yml"] == ROOT / "ops" / "prometheus" / "alerts.yml"
    config = yaml.safe_load(config_path.read_text())
    assert config["rule_files"] == ["alerts.yml"]  # beside the config: the mount above
    expected = {f"{n}:{option(c, '--port')}" for n, c in commands(document, "serve").items()}
    expected |= {
        f"{n}:{option(c, '--metrics-port')}" for n, c in commands(document, "worker").items()
    }
    scraped = set()
    for job in config["scrape_configs"]:
        assert job["job_name"].startswith("clipwatch")  # alerts.yml's up{job=~"clipwatch.*"}
        targets = {t for group in job["static_configs"] for t in group["targets"]}
        if any(t.startswith("serve") for t in targets):
            # /metrics answers other hosts with the token only (CLIPWATCH_METRICS_TOKEN).
            credentials = job["authorization"]["credentials_file"]
            assert credentials in secret_files(document, prometheus)
        scraped |= targets
    assert scraped == expected
    alertmanagers = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanagers == ["alertmanager:9093"]


def test_alertmanager_posts_to_every_api_process_with_the_token() -> None:
    from clipwatch.api.routers.alertmanager import PATH

    document = compose()
    alertmanager = document["services"]["alertmanager"]
    config = yaml.safe_load(mounts(alertmanager)["/etc/alertmanager/alertmanager.yml"].read_text())
    receivers = {r["name"]: r for r in config["receivers"]}
    hooks = receivers[config["route"]["receiver"]]["webhook_configs"]
    expected = {
        f"http://{n}:{option(c, '--port')}/api/v1{PATH}"
        for n, c in commands(document, "serve").items()
    }
    assert {h["url"] for h in hooks} == expected
    for hook in hooks:
        credentials = hook["http_config"]["authorization"]["credentials_file"]
        assert credentials in secret_files(document, alertmanager)


def test_grafana_is_provisioned_with_our_dashboard() -> None:
    grafana = compose()["services"]["grafana"]
    files = mounts(grafana)
    dashboards = files["/var/lib/grafana/dashboards/clipwatch.json"]
    assert dashboards == ROOT / "ops" / "grafana" / "clipwatch.json"
    provisioning = files["/etc/grafana/provisioning"]
    provider = yaml.safe_load((provisioning / "dashboards" / "clipwatch.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    source = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    assert source["datasources"][0]["url"] == "http://prometheus:9090"


def test_promtool_and_amtool_accept_the_compose_configurations(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    prometheus = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    (tmp_path / "prometheus.yml").write_text(
        prometheus.replace("/run/secrets/metrics_token", str(token))
    )
    shutil.copy(ROOT / "ops" / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")
    checked = run(program("promtool"), "check", "config", tmp_path / "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    checked = run(program("amtool"), "check-config", DEPLOY / "alertmanager" / "alertmanager.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_proxies_do_not_buffer_server_sent_events() -> None:
    caddyfile = (DEPLOY / "Caddyfile").read_text()
    assert re.search(r"^\s*flush_interval -1$", caddyfile, re.M)
    upstreams = re.search(r"^\s*reverse_proxy (.+) \{$", caddyfile, re.M)
    assert upstreams is not None
    serves = commands(compose(), "serve")
    assert set(upstreams[1].split()) == {f"{n}:{option(c, '--port')}" for n, c in serves.items()}
    nginx = (DEPLOY / "nginx.conf").read_text()
    stream = nginx[nginx.index("location = /api/v1/stream") :]
    assert "proxy_buffering off;" in stream[: stream.index("}")]


# --- systemd -----------------------------------------------------------------------------


def unit(name: str) -> dict[str, list[str]]:
    """A unit's keys → their values, in order (a key may repeat)."""
    found: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


@pytest.fixture(scope="module")
def systemd_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root for `systemd-analyze verify --root`: the system's units, ours, the env file,
    and a stub where the units expect clipwatch."""
    if not Path("/usr/lib/systemd/system").is_dir():
        unavailable("/usr/lib/systemd/system (systemd's units)")
    root = tmp_path_factory.mktemp("systemd") / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    shutil.copytree(UNITS, root / "etc/systemd/system")
    stub = root / CLIPWATCH_BIN.lstrip("/")
    stub.parent.mkdir(parents=True)
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    (root / "etc/clipwatch").mkdir()
    (root / "etc/clipwatch/clipwatch.env").touch()
    return root


def verify(root: Path, instance: str) -> subprocess.CompletedProcess[str]:
    analyze = program("systemd-analyze")
    return run(analyze, "verify", f"--root={root}", "--man=no", "--generators=no", instance)


@pytest.mark.parametrize("instance", UNIT_INSTANCES.values())
def test_systemd_analyze_verifies_the_units(systemd_root: Path, instance: str) -> None:
    verified = verify(systemd_root, instance)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # Warnings (an unknown key, a value it cannot parse) exit 0: they fail here.
    assert verified.stdout + verified.stderr == ""


@pytest.mark.parametrize("instance", UNIT_INSTANCES.values())
def test_systemd_rates_the_units_exposure_low(systemd_root: Path, instance: str) -> None:
    """`systemd-analyze security`: at most 2.0 of 10 (ours are 1.4; a unit without
    DynamicUser, ProtectSystem and the capability bound is 3.8)."""
    analyze = program("systemd-analyze")
    rated = run(
        analyze,
        "security",
        "--offline=yes",
        f"--root={systemd_root}",
        f"--threshold={MAX_EXPOSURE}",
        "--no-pager",
        instance,
    )
    assert rated.returncode == 0, rated.stdout[-300:] + rated.stderr


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("ProtectSystem=strict", "ProtectSystm=strict"),  # a misspelt key
        ("Restart=on-failure", "Restart=sometimes"),  # a value systemd cannot parse
        ("Requires=clipwatch-migrate.service", "Requires=clipwatch-migrat.service"),
        (f"ExecStart={CLIPWATCH_BIN}", "ExecStart=/opt/clipwatch/bin/nowhere"),
    ],
)
def test_a_broken_unit_fails_the_verification(systemd_root: Path, old: str, new: str) -> None:
    """The check above can fail: the serve unit with one mistake, beside the good ones."""
    units = systemd_root / "etc/systemd/system"
    text = (units / "clipwatch-serve@.service").read_text()
    assert old in text
    broken = units / "clipwatch-broken@.service"
    broken.write_text(text.replace(old, new))
    try:
        verified = verify(systemd_root, "clipwatch-broken@8001.service")
    finally:
        broken.unlink()
    assert verified.returncode != 0 or verified.stdout + verified.stderr != ""


@pytest.mark.parametrize("name", UNIT_INSTANCES)
def test_units_are_hardened_and_read_the_env_file(name: str) -> None:
    keys = unit(name)
    for key, value in HARDENING.items():
        assert keys.get(key) == [value], (name, key)
    assert keys["ExecStart"][0].startswith(f"{CLIPWATCH_BIN} ")


def test_serve_and_worker_units_restart_and_start_after_the_migration() -> None:
    serve, worker = unit("clipwatch-serve@.service"), unit("clipwatch-worker@.service")
    assert serve["ExecStart"] == [f"{CLIPWATCH_BIN} serve --host 127.0.0.1 --port %i --no-worker"]
    assert worker["ExecStart"] == [f"{CLIPWATCH_BIN} worker --metrics-port %i"]
    for keys in (serve, worker):
        assert keys["Restart"] == ["on-failure"]
        assert keys["KillSignal"] == ["SIGTERM"]
        assert "clipwatch-migrate.service" in keys["Requires"]
        assert "clipwatch-migrate.service" in keys["After"]
    migrate = unit("clipwatch-migrate.service")
    assert migrate["Type"] == ["oneshot"]
    assert migrate["ExecStart"] == [f"{CLIPWATCH_BIN} db upgrade"]


# --- Dockerfile --------------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_dockerfile_runs_the_console_script_as_a_user_with_a_readyz_healthcheck() -> None:
    steps = instructions()
    final = steps[max(i for i, (word, _) in enumerate(steps) if word == "FROM") :]
    users = [rest for word, rest in final if word == "USER"]
    assert users, "the runtime stage names no USER"
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert re.match(r"\d+:\d+$", users[-1])  # numeric: Kubernetes' runAsNonRoot can check it
    healthcheck = next(rest for word, rest in final if word == "HEALTHCHECK")
    assert "/opt/clipwatch/healthcheck.py" in healthcheck
    script = (DEPLOY / "healthcheck.py").read_text()
    assert '"http://127.0.0.1:8000/readyz"' in script
    installs = [rest for word, rest in steps if word == "RUN" and "pip install" in rest]
    assert installs
    assert all("-c constraints.txt" in r and "[dev]" not in r for r in installs)
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    entrypoint = next(rest for word, rest in final if word == "ENTRYPOINT")
    assert entrypoint == '["clipwatch"]'
    assert "clipwatch" in scripts
    assert next(rest for word, rest in final if word == "CMD") == '["serve", "--host", "0.0.0.0"]'
    for word, rest in steps:
        if word in {"ENV", "ARG"}:
            assert not SECRET_WORDS.search(rest), rest


def test_dockerignore_lets_in_only_what_the_build_copies() -> None:
    lines = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = set()
    for word, rest in instructions():
        if word == "COPY" and "--from" not in rest:
            copied |= {source.rstrip("/") for source in shlex.split(rest)[:-1]}
    assert copied == allowed
    assert all((ROOT / path).exists() for path in copied)


def test_hadolint_finds_nothing() -> None:
    checked = run(program("hadolint"), DOCKERFILE)
    assert checked.returncode == 0, checked.stdout + checked.stderr


class _Ready(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/readyz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def ready_server() -> Iterator[HTTPServer]:
    server = HTTPServer(("127.0.0.1", free_port()), _Ready)
    # A short poll interval: shutdown() waits for one.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.mark.parametrize(("status", "code"), [(200, 0), (503, 1)])
def test_the_healthcheck_script_follows_readyz(
    ready_server: HTTPServer, status: int, code: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_Ready, "status", status)
    url = f"http://127.0.0.1:{ready_server.server_address[1]}/readyz"
    checked = subprocess.run(
        [sys.executable, DEPLOY / "healthcheck.py"],
        env={"HEALTHCHECK_URL": url},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == code, checked.stderr


def test_the_healthcheck_script_fails_when_nothing_answers() -> None:
    checked = subprocess.run(
        [sys.executable, DEPLOY / "healthcheck.py"],
        env={"HEALTHCHECK_URL": f"http://127.0.0.1:{free_port()}/readyz"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 1
    assert "/readyz" in checked.stderr


# --- the commands shown ------------------------------------------------------------------


def shown_commands() -> list[list[str]]:
    """Every clipwatch command line in compose.yaml, the units, the image's CMD and
    docs/deploy.md."""
    found = [c for c in (s["command"] for s in clipwatch_services(compose()).values())]
    for name in UNIT_INSTANCES:
        for line in unit(name)["ExecStart"]:
            found.append(shlex.split(line.replace("%i", "8001"))[1:])
    final = instructions()
    found.append(json.loads(next(rest for word, rest in reversed(final) if word == "CMD")))
    text = DEPLOY_DOC.read_text()
    for block in re.findall(r"```(?:sh|console)?\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line.split(" #")[0])
            for at, word in enumerate(words[:-1]):
                # The program (`clipwatch`, `/opt/clipwatch/bin/clipwatch`) followed by a
                # command; not the word as an argument (`createdb --owner=clipwatch clipwatch`).
                is_program = word == "clipwatch" or word.endswith("/bin/clipwatch")
                if is_program and words[at + 1][0].isalpha():
                    found.append(words[at + 1 :])
                    break
    return found


def parse(command: Any, words: list[str]) -> dict[str, Any]:
    """The parameters `clipwatch <words>` runs with, parsed and converted as the command line
    does it (unknown commands and options, bad values and missing arguments raise), without
    running the command."""
    context = command.make_context("clipwatch", list(words), resilient_parsing=True)
    rest = list(words)
    while hasattr(command, "resolve_command"):  # a group: its subcommand comes next
        name, command, rest = command.resolve_command(context, rest)
        assert command is not None, f"no command {name!r} in {words}"
        group = hasattr(command, "resolve_command")
        context = command.make_context(name, list(rest), parent=context, resilient_parsing=group)
    params: dict[str, Any] = context.params
    return params


def test_every_command_shown_parses() -> None:
    import typer.main

    from clipwatch.cli import app

    command = typer.main.get_command(app)
    shown = {tuple(words) for words in shown_commands()}
    assert len(shown) >= 8
    for words in sorted(shown):
        parse(command, list(words))


@pytest.mark.parametrize(
    "words",
    [["serve", "--bogus"], ["worker", "--metrics-port", "70000"], ["users", "make"], ["nope"]],
)
def test_a_command_that_does_not_parse_is_found(words: list[str]) -> None:
    import typer.main

    from clipwatch.cli import app

    with pytest.raises(Exception) as raised:  # noqa: PT011 (the CLI's own error classes)
        parse(typer.main.get_command(app), words)
    assert type(raised.value).__name__ in {
        "NoSuchOption",
        "BadParameter",
        "AssertionError",
        "UsageError",
    }
