# The two commands a newcomer needs: `make dev` (run) and `make test` (everything CI runs).
# Every target installs what it needs itself; heavy builds are cached outside the repo.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test unit lint tools crds chart-rbac dev dev-down clean chaos

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## tools: restate-server + CLI (npm, pinned), the Kubernetes control plane, the Knative Serving controller and promtool (Go, cached by version)
tools: $(STAMP)
	$(PY) -m devstack.tools

## lint: ruff, mypy (strict on services/, watcher/ and devstack/) and the import contracts (pyproject.toml)
lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

## unit: the fast tests only (no control plane, no restate-server)
unit: $(STAMP)
	$(PY) -m pytest tests/unit devstack/tests/unit

## test: install everything, lint, then the whole suite (unit, integration, e2e)
test: tools lint
	$(PY) -m pytest

## chaos: every fault scenario of tests/e2e/test_chaos.py, test_apiserver_faults.py and test_watcher_faults.py (CHAOS_ROUNDS times, default 3), every process kill of tests/e2e/test_kills.py and test_delete_kills.py, every pod kill of the HA install (test_ha.py), 100 RestateDeployments at once (test_load.py) and a SOAK_MINUTES soak (test_soak.py, default 20), figures in .chaos/ (docs/reliability.md)
CHAOS_ROUNDS ?= 3
chaos: tools
	mkdir -p .chaos && rm -f .chaos/results.jsonl
	CHAOS_ROUNDS=$(CHAOS_ROUNDS) CHAOS_RESULTS=$(CURDIR)/.chaos/results.jsonl \
	  $(PY) -m pytest tests/e2e/test_chaos.py tests/e2e/test_apiserver_faults.py tests/e2e/test_watcher_faults.py tests/e2e/test_kills.py tests/e2e/test_delete_kills.py tests/e2e/test_ha.py tests/e2e/test_load.py tests/e2e/test_soak.py -m "e2e or chaos" -p no:cacheprovider; \
	  status=$$?; $(PY) -m tests.chaos_report .chaos/results.jsonl; exit $$status

## crds: regenerate crd/*.yaml from the pydantic models
crds: $(STAMP)
	$(PY) -m services.crdgen

## chart-rbac: regenerate the chart's RBAC rules from services/clients/permissions.py
chart-rbac: $(STAMP)
	$(PY) -m services.rbacgen

## dev: the local stack in the background (control plane, restate-server, pod runner, example)
dev: tools
	$(PY) -m devstack up

## dev-down: stop everything `make dev` started
dev-down: $(STAMP)
	$(PY) -m devstack down

clean: dev-down
	rm -rf $(VENV) .tools .dev .mypy_cache .ruff_cache .pytest_cache

.PHONY: bench plots

## bench: the benchmarks (not tests, never in `make test`): each prints its figures and the command to rerun it; raw figures in .bench/
bench: tools
	$(PY) -m tests.bench.operator_cost --rounds 10
	$(PY) -m tests.bench.operator_cost --rounds 10 --light
	$(PY) -m tests.bench.floor_ratio --rounds 10 --cluster-rounds 3
	$(PY) -m tests.bench.drain_lag --rounds 20
	$(PY) -m tests.bench.scale --counts 100 250 --phase-seconds 600
	$(PY) -m tests.bench.idle_cost --count 50 --minutes 3
	$(PY) -m tests.bench.registration_cost --count 1000
	$(PY) -m tests.bench.rollout_latency --rounds 10
	$(PY) -m tests.bench.reconcile_latency --rounds 20
	$(PY) -m tests.bench.helm_install --rounds 1
	$(MAKE) plots

## plots: PNG plots of the last `make bench` figures into docs/performance/ (needs the optional `bench` extra: matplotlib)
plots: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) -m tests.bench.plots

.PHONY: image lock

## image: the operator's container image (starts a Docker engine and makes the local base image if needed)
image:
	tools/image/build.sh

## lock: regenerate requirements.lock, the pinned and hashed runtime dependencies the image installs
lock:
	tools/image/lock.sh
