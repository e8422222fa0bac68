# arenastack: the commands people type. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
ARENASTACK := $(VENV)/bin/arenastack
PYTEST_ARGS ?=

.PHONY: help setup apt venv toolchain lock crds crds-check lint fmt test test-unit \
        test-integration test-e2e images vllm-env dashboards demo demo-down cluster-up cluster-local cluster-down bench

help: ## list the targets
	@grep -hE '^[a-z0-9%-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

apt: ## install the Debian packages the tests and demo need
	@hack/apt.sh

venv: ## create or sync the project virtual environment (.venv)
	@hack/venv.sh

lock: ## recompile requirements/lock.txt from requirements/*.in
	@hack/venv.sh --lock

toolchain: ## build the pinned control plane, kwok, helm, prometheus, KubeRay (cached)
	@hack/toolchain.sh >/dev/null

images: ## build the project's images with buildah (cached; the local node runs them)
	@hack/images.sh

setup: apt venv ## everything the tests and demo need: toolchain, vLLM environment, images
	@hack/setup.sh

crds: venv ## regenerate charts/arenastack/crds from the typed definitions
	@$(PY) -m arenastack_operator.crdgen

crds-check: venv ## fail when charts/arenastack/crds differs from a fresh generation
	@$(PY) -m arenastack_operator.crdgen --check

dashboards: venv ## regenerate charts/arenastack/dashboards from charts/dashboards (Grafana's SDK)
	@$(PY) -m arenastack_dashboards

lint: venv toolchain ## ruff, helm lint, CRDs and dashboards up to date
	@$(PY) -m arenastack_operator.crdgen --check
	@$(PY) -m arenastack_dashboards --check
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$$(hack/toolchain.sh --path)/helm lint --strict charts/arenastack

fmt: venv
	@$(VENV)/bin/ruff format .
	@$(VENV)/bin/ruff check --fix .

test: setup lint ## install everything, then run the whole suite
	@$(VENV)/bin/pytest $(PYTEST_ARGS)

test-unit: venv ## unit tests only (no processes)
	@$(VENV)/bin/pytest -m "not integration and not e2e" $(PYTEST_ARGS)

test-integration: setup ## tests against the real apiserver (simulated and local nodes)
	@$(VENV)/bin/pytest -m integration $(PYTEST_ARGS)

test-e2e: setup ## real workloads: Ray and the CPU vLLM engine on the local node
	@$(VENV)/bin/pytest -m e2e $(PYTEST_ARGS)

vllm-env: venv ## the CPU vLLM environment on the host (~5 GB, cached): test engines, models
	@hack/vllm-env.sh >/dev/null

cluster-up: setup ## start the local control plane (simulated nodes)
	@$(ARENASTACK) cluster up

cluster-local: setup ## start the local control plane with a local node that runs pods
	@$(ARENASTACK) cluster up --profile local

cluster-down: ## stop the local control plane
	@$(ARENASTACK) cluster down

demo: setup ## bring the local stack up and show what it runs
	@hack/demo.sh

demo-down: ## stop what the demo started
	@hack/demo.sh --down

bench: ## run every benchmark (not part of make test)
	@for b in $(filter-out tests/bench/bench_common.py,$(wildcard tests/bench/bench_*.py)); do \
	  $(PY) $$b || exit 1; done

bench-%: venv ## run one benchmark: make bench-<name>
	@$(PY) tests/bench/bench_$*.py
