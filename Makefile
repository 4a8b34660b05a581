# Every target bootstraps .venv itself; `make run` and `make test` are all a fresh machine needs.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
PYTHON  ?= python3
# pytest-xdist workers: the suite waits on servers and subprocesses more than it computes.
TEST_WORKERS ?= 2

.DEFAULT_GOAL := help
.PHONY: help run test lint fmt bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-6s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP) ## Start the service on the embedded default (demo mode without Twitch credentials)
	$(VENV)/bin/clipwatch serve

test: lint ## Lint, then run the whole test suite on SQLite and PostgreSQL
	$(PY) -m pytest -n $(TEST_WORKERS)

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
