# The two commands of the README: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test test-quick bench notebooks

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -e .
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) app.py

test: setup
	$(PY) -m pytest -q tests

# The suite less its slow tests (pyproject.toml's `slow` marker), in under 2 minutes on two CPU cores; the slowest
# ten are listed, so a test that has grown past the marker's bound shows.
test-quick: setup
	$(PY) -m pytest -q -m "not slow" --durations=10 tests

# The workshop notebooks executed in place on the embedded world (CPU), committed with their outputs.
notebooks: setup
	$(PY) docs/notebooks/execute.py

# Every CPU suite in its quick configuration, then a report of them.
# docs/benchmarks.md lists the commands of its own (full) runs at its top.
SUITES := world figd dsg gfcg solvers profile
bench: setup
	for suite in $(SUITES); do \
		OMP_WAIT_POLICY=PASSIVE $(PY) -m guidance.bench $$suite --quick --json runs/bench/$$suite.json || exit 1; \
	done
	$(PY) -m guidance.bench report $(SUITES:%=runs/bench/%.json) --out runs/bench/benchmarks.md --figures runs/bench/figures
