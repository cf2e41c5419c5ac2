# The two commands a newcomer needs: `make demo` (the main job on real data) and `make test`.
# Both run `setup` first; setup is idempotent and only redoes what changed.

SHELL := /bin/bash
PYTHON ?= python3.11
UV_VERSION := 0.13.9
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
PLATFORM := $(CURDIR)/.platform

export MLP_HOME ?= $(PLATFORM)
export AIRFLOW_HOME ?= $(PLATFORM)/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW_CONN_SPARK_DEFAULT ?= {"conn_type": "spark", "host": "local[*]"}
# The local SMTP server on loopback (jobs.settings' MLP_SMTP_HOST/PORT); no login, no TLS, laptop only.
export AIRFLOW_CONN_SMTP_DEFAULT ?= {"conn_type": "smtp", "host": "127.0.0.1", "port": 8025, "extra": {"disable_ssl": true, "disable_tls": true, "from_email": "ml-platform@localhost", "timeout": 10}}
export PATH := $(VENV)/bin:$(PATH)

.PHONY: help setup demo test test-fast lint bench bench-100m lock clean distclean up down

help:
	@echo "make demo   - set up, then run the platform's main job on the real CDNOW data"
	@echo "make test   - set up, then run the whole test suite"
	@echo "make test-fast - the tests not marked slow (no Spark job, no Airflow run): unit, dags, deploy"
	@echo "make lint   - ruff (with Airflow's AIR rules) and import-linter's layer contracts (pyproject.toml)"
	@echo "make bench  - generator at 10M rows; features on CDNOW and 1M/10M synthetic rows; quality gate on 10M gold rows; training rows/s per family; drift Spark vs Evidently at 1M/10M; 30 nightly 1M-row drift windows; features in DuckDB vs Spark (CDNOW, 1M, 10M); inference rows/s; standalone cluster vs local; empty night (and, after make demo, a quiet CDNOW scoring night) through the scheduler in both Spark modes, and DAG parse time; docs/benchmarks/README.md + plots"
	@echo "make bench-100m - opt-in: generator, features and DuckDB at 100M transactions (hours on 2 cores)"
	@echo "make up     - Airflow (:8080, password printed), MLflow UI (:5000), mail sink (:8025), reports (:8000) on loopback"
	@echo "make down   - stop what make up started"
	@echo "make lock   - re-resolve requirements.lock from requirements*.txt"
	@echo "make clean  - remove the local lake, Airflow home and MLflow store (.platform/)"
	@echo "make distclean - make clean, and remove the virtual environment (.venv/)"

setup: $(VENV)/.installed $(PLATFORM)/.ready

$(VENV)/.installed: requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q "uv==$(UV_VERSION)"
	@echo "installing pinned packages (first time: several GB, mostly torch's CUDA wheels; cached after)"
	$(VENV)/bin/uv pip install --python $(PY) -r requirements.lock
	$(VENV)/bin/uv pip install --python $(PY) --no-deps -e .
	@# Airflow puts plugins/ on sys.path when it starts; the venv does too, so lint-imports, pytest and a shell
	@# import mlplatform without PYTHONPATH.
	$(PY) -c 'import site, sys; open(site.getsitepackages()[0] + "/mlplatform-plugins.pth", "w").write(sys.argv[1] + chr(10))' $(CURDIR)/plugins
	@touch $@

$(PLATFORM)/.ready: $(VENV)/.installed
	@mkdir -p $(PLATFORM)/lake $(PLATFORM)/landing $(PLATFORM)/reports $(PLATFORM)/mail $(PLATFORM)/mlflow $(AIRFLOW_HOME)
	@echo "resolving the Delta jars through Spark's package mechanism (cached in ~/.cache/mlplatform/ivy)"
	$(PY) -m jobs.spark --prefetch 2> $(PLATFORM)/prefetch.log || (tail -40 $(PLATFORM)/prefetch.log; exit 1)
	@touch $@

demo: setup
	$(PY) -m tooling.demo

up: setup
	$(PY) -m tooling.stack up

down:
	$(PY) -m tooling.stack down

# Two workers, one test file each at a time (each worker has its own isolated platform home, Spark and Airflow DB).
# A third worker on 2 cores made the suite slower (31 min against 27): the Spark-heavy files then contend.
TEST_WORKERS ?= 2

test: setup
	$(PY) -m pytest tests -n $(TEST_WORKERS) --dist loadfile --durations=15

test-fast: setup
	$(PY) -m pytest tests -m "not slow"

bench: setup
	$(PY) -m bench.generator --rows 10000000
	$(PY) -m bench.features
	$(PY) -m bench.features --source synthetic --rows 1000000 --customers 100000
	$(PY) -m bench.features --source synthetic --rows 10000000 --customers 100000
	$(PY) -m bench.quality --rows 10000000
	$(PY) -m bench.training --rows 1000000
	$(PY) -m bench.drift --rows 1000000 10000000
	$(PY) -m bench.drift_windows --rows 1000000 --nights 30
	$(PY) -m bench.duckdb_features --source cdnow
	$(PY) -m bench.duckdb_features --source synthetic --rows 1000000 --customers 100000
	$(PY) -m bench.duckdb_features --source synthetic --rows 10000000 --customers 100000
	$(PY) -m bench.inference --rows 100000 1000000
	$(PY) -m bench.cluster --workers 2
	$(PY) -m bench.scheduler
	$(PY) -m bench.report

# Opt-in (hours on 2 cores): the generator, the feature pipeline and DuckDB at 100M transactions.
bench-100m: setup
	$(PY) -m bench.generator --rows 100000000 --small 0 --customers 1000000
	$(PY) -m bench.features --source synthetic --rows 100000000 --customers 1000000
	$(PY) -m bench.duckdb_features --source synthetic --rows 100000000 --customers 1000000
	$(PY) -m bench.report

# ruff (with Airflow's AIR rules), then the layer contracts of pyproject.toml's [tool.importlinter]: a wrong-way
# import or a cycle fails here with import-linter's own message (the venv's mlplatform-plugins.pth finds mlplatform).
lint: setup
	$(VENV)/bin/ruff check dags plugins jobs tooling include tests bench
	$(VENV)/bin/ruff format --check dags plugins jobs tooling include tests bench
	$(VENV)/bin/lint-imports --no-cache --no-logo

lock:
	@test -x $(VENV)/bin/uv || (test -x $(PY) || $(PYTHON) -m venv $(VENV); $(PY) -m pip install -q "uv==$(UV_VERSION)")
	$(VENV)/bin/uv pip compile --python-version 3.11 requirements.txt requirements-dev.txt -o requirements.lock

clean:
	rm -rf $(PLATFORM)

distclean: clean
	rm -rf $(VENV)
