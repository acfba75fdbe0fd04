# The two set-up commands are `make up` and `make test`; everything else serves them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
LOCAL_ENV := devstack/local.env
# make services CLUSTER=3: also a 3-node RabbitMQ cluster (stream ports 5562, 5572, 5582).
CLUSTER ?= 1

.PHONY: help venv services stop lint typecheck pytest test up bench clean

help:
	@echo "make up        run the whole pipeline locally with demo traffic"
	@echo "make test      services + ruff + mypy + pytest (the full suite)"
	@echo "make services  start RabbitMQ, OpenSearch and the S3 server (idempotent);"
	@echo "               CLUSTER=3 adds a 3-node RabbitMQ cluster"
	@echo "make stop      stop what make services and make up started"
	@echo "make bench     run the benchmarks, writing bench/results.md and .json"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

services: venv
	PYTHON="$(abspath $(PY))" CLUSTER="$(CLUSTER)" bash devstack/services.sh start

stop:
	bash devstack/up.sh stop
	bash devstack/services.sh stop

lint: venv
	$(VENV)/bin/ruff check audit_logging tests bench devstack

typecheck: venv
	$(VENV)/bin/mypy

pytest: venv
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test: services lint typecheck pytest

up: services
	PYTHON="$(abspath $(PY))" bash devstack/up.sh

bench: services
	$(PY) -m bench

clean: stop
	rm -rf devstack/.state $(LOCAL_ENV)
