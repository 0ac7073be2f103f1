# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test test-fast lint bench bench-ray clean browser

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch==2.13.0 (trainer extra) is the CPU build that ships on this machine image.
	$(BIN)/pip install --quiet -e '.[dev,trainer,postgres]'
	touch $(STAMP)

run: install
	$(BIN)/cloudtune server

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The test suite starts its own throwaway PostgreSQL cluster per worker (see tests/pg.py).
# Most tests wait on servers and subprocesses, so more workers than cores pays off; idle
# workers take queued tests from busy ones (worksteal), so a few long e2e tests do not end
# the run on one worker.
WORKERS ?= 4
PYTEST := $(BIN)/python -m pytest -q -p no:cacheprovider -n $(WORKERS) --dist worksteal --durations=15

# The web UI's browser tests drive Debian's Chromium (Playwright's own browser download does
# not work offline); installed here when missing.
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@test -x $(CHROMIUM) || { echo "installing Debian's chromium for the browser tests"; \
	  $(SUDO) apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -q >/dev/null && \
	    $(SUDO) apt-get install -y -q --no-install-recommends chromium >/dev/null; }; } && \
	  test -x $(CHROMIUM) || { echo "chromium could not be installed"; exit 1; }

# Everything: both databases, trainer runs, real server processes, the browser tests.
test: install lint browser
	$(PYTEST)

# SQLite only, no trainer runs, no server processes, no Ray head: a few minutes.
test-fast: install lint
	$(PYTEST) -m "not postgres and not trainer and not e2e and not ray"

bench: install
	$(BIN)/python bench/api.py

bench-ray: install
	$(BIN)/python bench/ray_latency.py

clean:
	rm -rf $(VENV) build *.egg-info
