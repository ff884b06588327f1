# Spark. `make run` runs the platform on its embedded default; `make test` runs every test
# on PostgreSQL + Redis. Both install what they need into .venv first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SPARK_PORT ?= 8000
export SPARK_PORT

.PHONY: install lock run test test-fast lint bench migrate seed clean

# requirements.lock pins what production runs; requirements-dev.lock adds the test and lint
# tools under the same pins. Regenerate both with `make lock` after editing pyproject.toml.
$(STAMP): requirements.lock requirements-dev.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "uv==0.13.9"
	$(VENV)/bin/uv pip install --quiet --python $(PY) -r requirements-dev.lock
	@touch $(STAMP)

install: $(STAMP)

lock:
	$(VENV)/bin/uv pip compile -q pyproject.toml -o requirements.lock --python-version 3.11
	$(VENV)/bin/uv pip compile -q pyproject.toml --extra dev -c requirements.lock -o requirements-dev.lock --python-version 3.11

migrate: install
	DJANGO_SETTINGS_MODULE=spark.settings.local $(PY) manage.py migrate --noinput

seed: migrate
	DJANGO_SETTINGS_MODULE=spark.settings.local $(PY) manage.py seed_demo

# Web + Celery worker + beat on SQLite and the filesystem broker (or on DATABASE_URL /
# REDIS_URL when set), under spark/runstack.py. Ctrl-C stops all three; if one of them dies,
# the runner says which and how, and stops the other two.
run: seed
	@echo ""
	@echo "  Spark is starting on http://127.0.0.1:$(SPARK_PORT)   (Ctrl-C stops web, worker and beat)"
	@echo "  Demo logins, password spark-demo:"
	@echo "    ops@spark.test (admin: /admin/)   associate@spark.test   manager@spark.test"
	@echo "    driver1@spark.test ... driver10@spark.test"
	@echo "  Store API key: $${SPARK_DEMO_API_KEY:-demo-store-key}   API docs: /api/docs/"
	@echo ""
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" DJANGO_SETTINGS_MODULE=spark.settings.local \
		$(PY) -m spark.runstack Procfile.embedded

test: install
	$(VENV)/bin/lint-imports --no-logo --no-cache
	$(PY) -m spark.checkservices
	DJANGO_SETTINGS_MODULE=spark.settings.test $(PY) -m pytest $(PYTEST_ARGS)

# The fast part only: no browser, no started processes.
test-fast: install
	$(PY) -m spark.checkservices
	DJANGO_SETTINGS_MODULE=spark.settings.test $(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports --no-logo --no-cache

bench: install
	@if ls bench/*.py >/dev/null 2>&1; then for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done; \
	else echo "no benchmarks yet"; fi

clean:
	rm -rf var staticfiles .pytest_cache
