# The developer loop (CONTRIBUTING.md). CI runs `bash scripts/test.sh` instead, which is
# everything. In a git worktree without a venv of its own, point VENV at one and put the
# worktree first on the path: `PYTHONPATH=$PWD make fast VENV=/path/to/.venv`.
VENV ?= .venv
ARGS ?=
PYTHON := $(VENV)/bin/python

.DEFAULT_GOAL := help
.PHONY: help check test fast bench

help: ## list the targets
	@awk -F ':.*## ' '/^[a-z]+:.*## / { printf "  make %-6s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

check: ## ruff check, ruff format --check and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: ## pytest with ARGS, e.g. make test ARGS="tests/sim -x"
	$(PYTHON) -m pytest $(ARGS)

fast: ## the tests that need no broker, kill nothing and are not slow
	$(PYTHON) -m pytest -m "not broker and not chaos and not slow" $(ARGS)

# Smaller sizes and shorter runs than BENCHMARKS.md's, so the whole set takes minutes; run a
# script alone with its defaults for the figures that go there.
bench: ## every bench/ script at small sizes
	$(PYTHON) bench/codec.py --repeats 3 --min-time 0.2
	$(PYTHON) bench/core.py --gpus 10000,100000 --ticks 5
	$(PYTHON) bench/metrics.py --gpus 100000 --runs 3
	$(PYTHON) bench/tui.py --gpus 1000,100000 --presses 50 --fps-seconds 2
	$(PYTHON) bench/fleet.py --gpus 10000 --processes 1 --seconds 5
	$(PYTHON) bench/record.py --seconds 10 --repeat 5
