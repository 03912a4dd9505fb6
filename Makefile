# Siaga: `make demo` runs the whole system on one box; `make test` runs every test.
# Both set themselves up: a virtualenv in .venv and the Debian packages they need.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
DEPS   := setup.cfg pyproject.toml

.PHONY: demo test lint bench clean venv

demo: $(VENV)/.demo-installed
	$(VENV)/bin/siaga-sim demo

test: $(VENV)/.test-installed
	@deploy/dev/ensure-debian-packages.sh mosquitto:mosquitto chromium:chromium
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check .

bench: $(VENV)/.test-installed
	@deploy/dev/ensure-debian-packages.sh mosquitto:mosquitto
	$(PY) bench/latency.py

venv: $(PY)

$(PY):
	@deploy/dev/ensure-debian-packages.sh --python-venv $(PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=23" "setuptools>=68" wheel

$(VENV)/.demo-installed: $(DEPS) | $(PY)
	$(PIP) install -q -e '.[demo]'
	@touch $@

$(VENV)/.test-installed: $(DEPS) | $(PY)
	$(PIP) install -q -e '.[test]'
	@touch $@ $(VENV)/.demo-installed

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache artifacts
