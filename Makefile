# imagegate — every target bootstraps what it needs on a fresh machine (.venv, pip deps,
# and, for the Docker suites, a Docker Engine: installed and started when none answers).
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST := $(BIN)/python -m pytest
IMAGEGATE := $(BIN)/imagegate
PUSH ?=
GATE_ARGS ?=
# pytest-xdist workers per suite (JOBS=1: one process). Each worker is its own imagegate session;
# modules with costly module fixtures keep to one worker (xdist_group, --dist loadgroup).
JOBS ?= 2
XDIST := $(if $(filter-out 0 1,$(JOBS)),-n $(JOBS) --dist loadgroup)

.PHONY: help venv engine engine-down base standins build lock test test-unit test-image test-stack gate bench bench-render lint-py docs prune clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[app,dev]'
	touch $@

venv: $(STAMP) ## create .venv and install the harness, the app's deps and dev tools

engine: $(STAMP) ## make sure a Docker Engine answers (installs docker.io and starts dockerd if needed)
	$(IMAGEGATE) engine up

engine-down: $(STAMP) ## stop the dockerd that `make engine` started (and only that one)
	$(IMAGEGATE) engine down

base: engine ## make the local base images (Python runtime, Redis) from Debian packages
	$(IMAGEGATE) base

standins: base ## local stand-ins of python:3.11-slim, redis:7-alpine, postgres:16, nginx:1.25 (nothing can be pulled here)
	$(BIN)/python -m testsupport.standins all

build: base ## build the app image hermetically and tag imagegate/app:local
	$(IMAGEGATE) build

lock: $(STAMP) ## re-lock the app's runtime deps (universal, hashed) for the image
	$(BIN)/uv pip compile -q --universal --generate-hashes --python-version 3.11 requirements.in -o requirements.lock
	$(BIN)/uv pip compile -q --universal --generate-hashes --python-version 3.11 requirements-bootstrap.in -o requirements-bootstrap.lock

test: test-unit test-image test-stack ## all three suites: unit, image, stack

test-unit: $(STAMP) ## app tests and Dockerfile lint; no Docker needed
	$(PYTEST) $(XDIST) tests_unit

test-image: base ## build the image once, then metadata, policy, testinfra, size and health checks
	$(PYTEST) $(XDIST) tests_image

test-stack: base ## bring up the compose stack (web + redis): HTTP, env handling, faults, load
	$(PYTEST) $(XDIST) tests_stack

gate: base ## the CI gate: lint -> build -> image -> stack -> push (PUSH=host:port/repo:tag)
	$(IMAGEGATE) gate $(if $(PUSH),--push $(PUSH)) $(GATE_ARGS)

bench: base ## benchmarks vs the seed recipe and the plain pipeline: bench/results/results.json, then bench/RESULTS.md
	$(BIN)/python bench/run.py

bench-render: $(STAMP) ## re-render bench/RESULTS.md from results.json + bench/history.toml (no measuring)
	$(BIN)/python -m bench.render

docs: $(STAMP) ## regenerate docs/settings.md, docs/checks.md, the check pages and the evidence table
	$(BIN)/python -m imagegate.docs README.md docs/settings.md docs/checks.md
	$(BIN)/python -m testsupport.evidence

lint-py: $(STAMP) ## ruff and mypy on the harness
	$(BIN)/ruff check imagegate app tests_unit tests_image tests_stack bench
	$(BIN)/mypy

prune: $(STAMP) ## remove leftovers of dead runs and the images the harness labelled
	$(IMAGEGATE) prune --images

clean: ## remove the venv, caches and build outputs (images stay; see `make prune`)
	rm -rf $(VENV) .wheels .imagegate-out .pytest_cache .mypy_cache .ruff_cache
