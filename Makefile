# Two commands set everything up on a fresh machine:
#   make demo      -> installs, then runs the mini benchmark end to end at first-look size (train zoo,
#                     fine-tune, score, report; 20-shot cells, one draw: 5-9 minutes on a 2-core CPU)
#   make test      -> installs, then runs the default (fast, CPU-only) test suite
# and one more runs the whole mini benchmark (three draws, five lrs, full-data cells: 17 more minutes on a
# 2-core AVX512-BF16 CPU, about 29 without AVX512; it reuses the demo's work):
#   make benchmark
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.zoobench-installed

.PHONY: install test test-slow demo benchmark demo-large lint bench clean-outputs

install: $(STAMP)

# torch==2.14.1 / torchvision==0.29.1 are the builds this machine has on disk (other versions download
# gigabytes); animal-mnist is installed without its dependencies (they pull tensorflow, which we never import).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps animal-mnist==0.4
	touch $@

test: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

# extra Hydra overrides for every stage: make demo ARGS='logger=wandb'
ARGS ?=

demo: install
	$(PY) scripts/run_mini.py experiment=demo $(ARGS)

benchmark: install
	$(PY) scripts/run_mini.py $(ARGS)

demo-large: install
	$(PY) scripts/run_mini.py experiment=mini_large $(ARGS)

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: install
	$(PY) benchmarks/bench_selection.py
