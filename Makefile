# Two commands from a fresh clone (README): `make check` runs trt-equiv on the bundled model,
# `make test` runs the test suite. Both create .venv and install everything they need on first use.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: check test bench lint clean-cache

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

check: $(STAMP)
	$(VENV)/bin/trt-equiv check

test: $(STAMP)
	$(PY) -m pytest --benchmark-disable $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m pytest --benchmark-only tests/bench

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check trt_equiv tests && $(VENV)/bin/mypy

clean-cache:
	rm -rf "$${TRT_EQUIV_CACHE_DIR:-$$HOME/.cache/trt_equiv}"
