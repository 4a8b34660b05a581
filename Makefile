# Every target bootstraps .venv itself; `make run` and `make test` are all a fresh machine needs.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
PYTHON  ?= python3
# pytest-xdist workers: the suite waits on servers and subprocesses more than it computes.
TEST_WORKERS ?= 2

.DEFAULT_GOAL := help
.PHONY: help run test deps lint fmt bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-6s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP) ## Start the service on the embedded default (demo mode without Twitch credentials)
	$(VENV)/bin/clipwatch serve

test: lint deps ## Lint, then run the whole test suite on SQLite and PostgreSQL
	$(PY) -m pytest -n $(TEST_WORKERS)

# Programs the tests run that pip does not install: Debian's prometheus (with promtool) and
# prometheus-alertmanager (tests/monitoring/). Missing ones are installed with apt; the
# tests start their own servers, never the systemd services these packages set up.
PROM_PROGRAMS := promtool prometheus prometheus-alertmanager
PROM_PACKAGES := prometheus prometheus-alertmanager
# The browser tests (tests/web/) drive Debian's chromium through Playwright: browsers cannot
# be downloaded here, so `playwright install` is never used.
BROWSER_PROGRAMS := chromium
BROWSER_PACKAGES := chromium

deps: ## Install Prometheus, promtool, Alertmanager and chromium with apt when missing (make test does)
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

lint: $(STAMP) ## ruff, mypy --strict, import-linter
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

fmt: $(STAMP) ## Format and fix what ruff can
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

bench: $(STAMP) ## Benchmarks (bench/); each prints ratios against a baseline from the same run
	$(PY) -m bench

clean: ## Remove the virtualenv and local data
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
