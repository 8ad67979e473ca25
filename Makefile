# vidcolor: `make demo` runs the whole flow on generated data; `make test` runs the test suite.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup lint test test-fast demo bench clean

setup: $(STAMP)

# Re-installs only when pyproject.toml changes. torch 2.13.0 comes first, from the local CPU wheel,
# so that the project's `torch<2.14` requirement is already satisfied and nothing pulls CUDA builds.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

# ruff (rules in pyproject.toml's [tool.ruff]) and the import contracts of [tool.importlinter]:
# package and study layers, no cycles, no torch/Ray where start-up must stay light (CONTRACT.md).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

demo: setup
	$(BIN)/vidcolor demo

# Each benchmark prints a table; add `--json FILE` to a line to keep the figures.
bench: setup
	$(BIN)/python bench/loader.py
	$(BIN)/python bench/train_step.py
	$(BIN)/python bench/colorize.py
	$(BIN)/python bench/votes.py
	$(BIN)/python bench/rater_load.py   # 50 raters x 40 votes in Chromium against vidcolor ctt serve: about 9 minutes
	$(BIN)/python bench/sweep.py
	$(BIN)/python bench/scaling.py   # 4 studies: about 8 minutes
	$(BIN)/python bench/soak.py --kill-node   # 10 demo studies under load, 1 losing a node: about 50 minutes
	$(BIN)/python bench/real.py   # the seed's experiments on real footage (../shared/data/real): about 25 minutes

clean:
	rm -rf demo_run .pytest_cache
