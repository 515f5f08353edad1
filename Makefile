# The README's two commands: `make demo` and `make test`. Both build .venv from scratch if needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test bench dev clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(PY) -m example_project.demo

test: $(VENV)/.installed
	.ci/system-deps
	$(VENV)/bin/pytest

bench: $(VENV)/.installed
	$(PY) bench/fingerprint.py
	$(PY) bench/overhead.py
	$(PY) bench/change.py
	$(PY) bench/sensor.py
	$(PY) bench/s3.py
	$(PY) bench/bookkeeping.py
	$(PY) bench/resume.py
	$(PY) bench/submit_cli.py
	$(PY) bench/incremental.py

dev: $(VENV)/.installed
	DAGSTER_HOME=$(CURDIR)/.dagster_home $(VENV)/bin/dagster dev -w workspace.yaml

clean:
	rm -rf $(VENV) .dagster_home .demo
