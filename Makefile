# Two commands on a fresh machine (Python 3.11, PyPI reachable, no GPU):
#   make repro   set up, pull the shared caches (dvc-remote/, in the repository), then
#                `dvc repro`: only what the clone lacks is computed -> reports/
#   make test    set up, then the whole test suite
# and, to rebuild every stage from the raw data on this machine:
#   make repro-scratch   `dvc repro --force`, then the envelope check (README,
#                        "Reproducibility")
# Set-up is idempotent: the environment is rebuilt only when requirements.lock or
# pyproject.toml change (the stamp file names their hash).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LOCK_HASH := $(shell cat requirements.lock pyproject.toml | sha1sum | cut -c1-16)
STAMP  := $(VENV)/.installed-$(LOCK_HASH)

# Nothing may reach a model hub or DVC's servers: everything runs offline.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export DVC_NO_ANALYTICS := 1
export MPLBACKEND := Agg
export PYTHONHASHSEED := 0
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup repro repro-scratch repro-paper truth-paper push-caches test bench lint readme

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version.split()[0]'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==26.3" "setuptools==84.2.1"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-*
	@touch $@
	@echo "environment ready: $(VENV)"

repro: setup
	$(BIN)/dvc pull --allow-missing --quiet
	$(BIN)/python -m emms materialize-data
	$(BIN)/dvc repro --allow-missing
	@echo "reports written to reports/ (README, 'Results')"

repro-scratch: setup
	$(BIN)/python -m emms materialize-data
	$(BIN)/dvc repro --force
	$(BIN)/python -m emms compare-envelope reports/metrics/*.json

# paper scale (docs/paper-scale.md):
#   make repro-paper TASK=recognition DATA=/path WEIGHTS=/path [DEVICE=cpu|cuda] [TRUTH=truth.csv]
# (DEVICE unset: the params file's run.device, auto = cuda when torch sees one)
TASK ?= recognition
DEVICE ?=
repro-paper: setup
	@test -n "$(DATA)" -a -n "$(WEIGHTS)" || { echo "usage: make repro-paper TASK=recognition DATA=/path WEIGHTS=/path [DEVICE=auto] [TRUTH=truth.csv]"; exit 2; }
	$(BIN)/python -m emms.paper run --task $(TASK) --config params/paper/$(TASK).yaml --data $(DATA) --weights $(WEIGHTS) $(if $(DEVICE),--device $(DEVICE)) --out reports $(if $(TRUTH),--truth $(TRUTH))

# the truth table of a task without a published one (text QA: SQuAD fine-tuning):
#   make truth-paper TASK=textqa|vqa|referring DATA=/path WEIGHTS=/path TRUTH=out.csv [DEVICE=auto]
truth-paper: setup
	@test -n "$(DATA)" -a -n "$(WEIGHTS)" -a -n "$(TRUTH)" || { echo "usage: make truth-paper TASK=textqa|vqa|referring DATA=/path WEIGHTS=/path TRUTH=out.csv [DEVICE=auto]"; exit 2; }
	$(BIN)/python -m emms.paper finetune --task $(TASK) --config params/paper/$(TASK).yaml --data $(DATA) --weights $(WEIGHTS) $(if $(DEVICE),--device $(DEVICE)) --out $(TRUTH)

# after a deliberate change of results: store the new caches in dvc-remote/ (commit it)
# The text zoo's checkpoints (about 330 MB: MiniLM and each truncation carry a 30,522-row
# embedding table) stay out of the in-repository remote: `make repro` skips their stage
# while nothing it depends on changed (--allow-missing) and recomputes it otherwise.
NOT_PUSHED := zoo@textqa
push-caches: setup
	$(BIN)/dvc push --quiet data.dvc $$($(BIN)/dvc stage list --name-only | grep -vx '$(NOT_PUSHED)')

test: setup
	$(BIN)/python -m pytest

# README sections generated from the code, reports/ and benchmarks/results/
readme: setup
	$(BIN)/python -m emms readme

bench: setup
	$(BIN)/python benchmarks/solvers.py

lint: setup
	$(BIN)/ruff check emms tests benchmarks
	$(BIN)/ruff format --check emms tests benchmarks
