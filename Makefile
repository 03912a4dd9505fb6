# Siaga: `make demo` runs the whole system on one box; `make test` runs every test.
# Both set themselves up: a virtualenv in .venv and the Debian packages they need.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
DEPS   := setup.cfg pyproject.toml

.PHONY: demo test test-postgresql lint bench clean venv deb

#: The PostgreSQL server every development and CI machine runs (15, trust authentication).
SIAGA_TEST_DATABASE ?= postgresql://postgres@127.0.0.1:5432/siaga_test
#: pytest-xdist workers: most tests wait on real services (broker, browser, processes), so three
#: workers keep two cores busy (the suite: 6 min instead of 14 on the 2-vCPU development VM).
TEST_WORKERS ?= 3

demo: $(VENV)/.demo-installed
	$(VENV)/bin/siaga-sim demo

test: $(VENV)/.test-installed
	@deploy/dev/ensure-debian-packages.sh mosquitto:mosquitto chromium:chromium nats-server:nats-server \
		victoria-metrics:victoria-metrics /usr/lib/postgresql/15/bin/initdb:postgresql-15 \
		debootstrap:debootstrap
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -n $(TEST_WORKERS)

# The same suite with every test's dashboard store on PostgreSQL instead of SQLite (a schema per test
# in a database made anew); tests about SQLite itself are skipped (marker sqlite_only).
test-postgresql: $(VENV)/.test-installed
	@deploy/dev/ensure-debian-packages.sh mosquitto:mosquitto chromium:chromium nats-server:nats-server \
		victoria-metrics:victoria-metrics /usr/lib/postgresql/15/bin/initdb:postgresql-15 \
		debootstrap:debootstrap
	$(PY) -m sim.stores recreate $(SIAGA_TEST_DATABASE)
	SIAGA_TEST_DATABASE=$(SIAGA_TEST_DATABASE) $(PY) -m pytest -n $(TEST_WORKERS)

lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check .

bench: $(VENV)/.test-installed
	@deploy/dev/ensure-debian-packages.sh mosquitto:mosquitto
	$(PY) bench/latency.py

# Debian packages in dist/deb: siaga-gateway (all: every Raspberry Pi) and siaga-server (amd64, arm64),
# each with its Python dependencies as wheels (deploy/deb/build.py; docs/deployment.md, "Packages").
deb: | $(PY)
	$(PY) deploy/deb/build.py --out dist/deb

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
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache artifacts
