# Every target bootstraps .venv itself; `make run` and `make test` are all a fresh machine needs.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
PYTHON  ?= python3
# pytest-xdist workers: the suite waits on servers and subprocesses as much as it computes.
TEST_WORKERS ?= 4
# Bytecode is cached even where the environment says not to: with PYTHONDONTWRITEBYTECODE
# set, every pytest worker rewrote and compiled all test modules (collection 10.6 s instead
# of 4.4 s) and every `clipwatch` process the tests start compiled ours again.
unexport PYTHONDONTWRITEBYTECODE

.DEFAULT_GOAL := help
.PHONY: help run test test-scaled fuzz deps lint fmt bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-6s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP) ## Start the service on the embedded default (demo mode without Twitch credentials)
	$(VENV)/bin/clipwatch serve

test: lint deps ## Lint, then run the test suite on SQLite and PostgreSQL (the scaled proof included)
	$(PY) -m pytest -n $(TEST_WORKERS) --durations=30

# The OpenAPI contract fuzzed (schemathesis, every phase) on both databases; `make test`
# fuzzes PostgreSQL only (tests/api/test_fuzz.py says why). About 3 minutes.
fuzz: $(STAMP) ## Schemathesis over the whole API on SQLite and PostgreSQL
	CLIPWATCH_FUZZ_DATABASES=sqlite,postgresql CLIPWATCH_FUZZ_EXAMPLES=20 CLIPWATCH_FUZZ_FULL=1 $(PY) -m pytest -n 2 tests/api/test_fuzz.py

# The scaled mode under faults (tests/scaled/, docs/reliability.md): 2 serve + 3 workers on a
# PostgreSQL and a Redis of its own, ~1 minute alone; part of `make test` (started first).
test-scaled: $(STAMP) ## The scaled-mode proof alone (its own PostgreSQL and Redis, faults, load)
	$(PY) -m pytest tests/scaled --durations=5

# Programs the tests run that pip does not install: Debian's prometheus (with promtool) and
# prometheus-alertmanager (tests/monitoring/). Missing ones are installed with apt; the
# tests start their own servers, never the systemd services these packages set up.
PROM_PROGRAMS := promtool prometheus prometheus-alertmanager
PROM_PACKAGES := prometheus prometheus-alertmanager
# The browser tests (tests/web/) drive Debian's chromium through Playwright: browsers cannot
# be downloaded here, so `playwright install` is never used.
BROWSER_PROGRAMS := chromium
BROWSER_PACKAGES := chromium
# The deployment checks (tests/deploy/) run Debian's docker-compose (`config -q` on
# deploy/compose.yaml: no Docker daemon needed) and systemd-analyze (Debian's systemd).
DEPLOY_PROGRAMS := docker-compose systemd-analyze
DEPLOY_PACKAGES := docker-compose systemd

deps: ## Install Prometheus, promtool, Alertmanager, chromium and docker-compose with apt when missing (make test does)
	@missing=""; for program in $(PROM_PROGRAMS); do \
		command -v $$program >/dev/null 2>&1 || missing="$$missing $$program"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "missing:$$missing; installing $(PROM_PACKAGES) with apt-get"; \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
		install="$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(PROM_PACKAGES)"; \
		$$install || { $$sudo apt-get update && $$install; } || { \
			echo "could not install $(PROM_PACKAGES): their tests fail with CI=true, else are skipped"; \
			case "$$CI" in true|TRUE|True|1) exit 1;; esac; \
		}; \
	fi
	@missing=""; for program in $(BROWSER_PROGRAMS); do \
		command -v $$program >/dev/null 2>&1 || missing="$$missing $$program"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "missing:$$missing; installing $(BROWSER_PACKAGES) with apt-get"; \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
		install="$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(BROWSER_PACKAGES)"; \
		$$install || { $$sudo apt-get update && $$install; } || { \
			echo "could not install $(BROWSER_PACKAGES): the browser tests fail with CI=true, else are skipped"; \
			case "$$CI" in true|TRUE|True|1) exit 1;; esac; \
		}; \
	fi
	@missing=""; for program in $(DEPLOY_PROGRAMS); do \
		command -v $$program >/dev/null 2>&1 || missing="$$missing $$program"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "missing:$$missing; installing $(DEPLOY_PACKAGES) with apt-get"; \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
		install="$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(DEPLOY_PACKAGES)"; \
		$$install || { $$sudo apt-get update && $$install; } || { \
			echo "could not install $(DEPLOY_PACKAGES): the deployment checks fail with CI=true, else are skipped"; \
			case "$$CI" in true|TRUE|True|1) exit 1;; esac; \
		}; \
	fi

lint: $(STAMP) ## ruff, mypy --strict, import-linter
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

fmt: $(STAMP) ## Format and fix what ruff can
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

# One benchmark or the long runs by flags: make bench BENCH="load --minutes 30",
# make bench BENCH="archive --clips 10000000" (then search --database-url, docs/search.md).
BENCH ?=

bench: $(STAMP) ## Benchmarks (bench/); each prints ratios against a baseline from the same run
	$(PY) -m bench $(BENCH)

clean: ## Remove the virtualenv and local data
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
