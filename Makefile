# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test lint bench clean

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

# The test suite starts its own throwaway PostgreSQL cluster (see tests/pg.py).
test: install lint
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: install
	$(BIN)/python bench/api.py

clean:
	rm -rf $(VENV) build *.egg-info
