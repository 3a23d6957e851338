# Quick start: `make serve` runs the server on the bundled samples; `make test` runs every check.
# Needs Python >= 3.11 with the venv module (Debian/Ubuntu: the python3-venv package).
PYTHON ?= python3
VENV := .venv
# Two stamps: serving needs only the runtime dependencies; the checks add the test tooling.
RUNTIME_STAMP := $(VENV)/.installed-runtime
TEST_STAMP := $(VENV)/.installed-test

.PHONY: serve test bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip

$(RUNTIME_STAMP): setup.cfg pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install --quiet -e .
	touch $(RUNTIME_STAMP)

$(TEST_STAMP): $(RUNTIME_STAMP)
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $(TEST_STAMP)

serve: $(RUNTIME_STAMP)
	$(VENV)/bin/thumbor-py serve

test: $(TEST_STAMP)
	scripts/check

bench: $(TEST_STAMP)
	$(VENV)/bin/python bench/run.py --quick

clean:
	rm -rf $(VENV) build *.egg-info
