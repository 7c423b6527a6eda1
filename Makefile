# medgov developer front door. Every target works from a fresh clone:
# `make run` and `make test` install what they need first.

SHELL := /bin/bash
.DEFAULT_GOAL := help
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/.venv

PYTHON := .venv/bin/python
LAUNCHER := python3 deploy/local/launcher.py
# The launcher writes local.env into its state folder, var/ unless MEDGOV_LOCAL_VAR_DIR moves it.
WITH_ENV := set -a && . "$${MEDGOV_LOCAL_VAR_DIR:-var}/local.env" && set +a &&

.PHONY: help install up down status run demo test test-timesensitive bench chaos k8s-validate docs check-docs clean

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-20s %s\n", $$1, $$2}'

.venv/.installed: pyproject.toml uv.lock shared/pyproject.toml services/*/pyproject.toml cli/pyproject.toml
	@command -v uv >/dev/null || python3 -m pip install --quiet uv
	uv sync --frozen --all-packages
	@touch $@

install: .venv/.installed ## Install the locked Python environment into .venv

up: ## Start the local Kafka broker and PostgreSQL server (idempotent)
	$(LAUNCHER) up --with-security

down: ## Stop the local Kafka broker and PostgreSQL server
	$(LAUNCHER) down

status: ## Show what the local launcher runs
	$(LAUNCHER) status

run: install up ## Start all services and play the regional scenario; leaves dashboards running
	$(WITH_ENV) $(PYTHON) -m medgov_cli.main demo --keep-running

demo: install up ## Play the regional scenario, write var/demo-summary.json and exit
	$(WITH_ENV) $(PYTHON) -m medgov_cli.main demo

test: install up ## Run the whole test suite against the real Kafka and PostgreSQL
	$(WITH_ENV) $(PYTHON) -m pytest

test-timesensitive: install up ## Re-run the time-sensitive tests under TZ=Asia/Seoul
	$(WITH_ENV) TZ=Asia/Seoul $(PYTHON) -m pytest -m timesensitive

bench: install up ## Run the benchmarks; the last line holds the key figures
	$(WITH_ENV) $(PYTHON) bench/run.py

chaos: install up ## Kill services and restart Kafka/PostgreSQL under load; prints lost=0 duplicated=0
	$(WITH_ENV) $(PYTHON) -m medgov_cli.main chaos --events 50000 --kills 20

k8s-validate: install ## Render every Kustomize overlay and validate it offline
	$(PYTHON) deploy/k8s/generate.py --check
	$(PYTHON) deploy/k8s/validate.py

docs: install ## Regenerate docs/asyncapi.yaml and docs/schemas from the contracts
	$(PYTHON) -m medgov_shared.asyncapi docs

clean: ## Stop the infrastructure and remove local state (var/ and the PostgreSQL directory under /tmp)
	$(LAUNCHER) clean
	rm -rf var
