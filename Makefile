VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint typecheck bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	touch $(STAMP)

demo: install ## the whole hub on the embedded broker; Ctrl-C stops it
	$(VENV)/bin/lienthong demo

test: install ## every test, against the real embedded broker, PostgreSQL and Chromium
	$(PY) -m pytest -q

test-fast: install ## unit tests only
	$(PY) -m pytest -q -m "not integration"

lint: install
	$(VENV)/bin/ruff check lienthong hubbase schemas connectors streams bench tests

typecheck: install
	$(VENV)/bin/mypy

bench: install ## throughput: worker vs bare aiokafka vs importer (see README)
	$(VENV)/bin/lienthong bench

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache
