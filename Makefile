# Quick start: `make serve` runs the server on the bundled samples; `make test` runs every check.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: serve test bench clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

serve: $(STAMP)
	$(VENV)/bin/thumbor-py serve

test: $(STAMP)
	scripts/check

bench: $(STAMP)
	$(VENV)/bin/python bench/run.py --quick

clean:
	rm -rf $(VENV) build *.egg-info
