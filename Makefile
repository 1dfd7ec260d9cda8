# Two commands set everything up on a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo study test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first and pinned: an unpinned torch (asked for by a dependency) would pull a multi-GB CUDA build.
$(STAMP): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The demo gives its training and command subprocesses every core and active OpenMP waiting while it waits for them
# (wm_hub.sandbox.finetune.busy_child_env); set OMP_NUM_THREADS to share the cores out yourself.
demo: $(STAMP)
	$(BIN)/wm-hub demo --out demo_out

# The paper's claims and GRPO measured in the sandbox (about 90 minutes on 2 cores, resumable): study/report.md.
study: $(STAMP)
	OMP_WAIT_POLICY=PASSIVE $(BIN)/wm-hub sandbox study --out study

# Debian's chromium + chromium-driver (browser test) are installed by .ci/install-chromium when missing.
test: $(STAMP)
	bash .ci/install-chromium
	$(BIN)/ruff check wm_hub dataset_builders model_cards recipes tests benchmarks
	$(BIN)/ruff format --check wm_hub dataset_builders model_cards recipes tests benchmarks
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest -q --durations=15

lint: $(STAMP)
	$(BIN)/ruff check wm_hub dataset_builders model_cards recipes tests benchmarks
	$(BIN)/ruff format --check wm_hub dataset_builders model_cards recipes tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_backbone.py

clean:
	rm -rf $(VENV) demo_out study .pytest_cache
