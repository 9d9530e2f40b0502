# Entry points for people and CI. Each target installs what it needs into .venv by itself.
#
#   make migrate   migrate the embedded default database to head and show its status
#   make test      lint, type-check, layer contracts, then the whole test suite
#   make bench     the benchmarks under bench/

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: migrate test lint controlplane kstatus bench clean

$(BIN)/raycesctl: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

migrate: $(BIN)/raycesctl
	$(BIN)/raycesctl migrate
	$(BIN)/raycesctl status

lint: $(BIN)/raycesctl
	$(BIN)/ruff check operator alembic tests bench
	$(BIN)/ruff format --check operator alembic tests bench
	$(BIN)/mypy
	$(BIN)/mypy --strict --explicit-package-bases tests/controlplane tests/controller tests/unit/test_node_emulation.py
	$(BIN)/lint-imports

controlplane:
	bash tests/controlplane/build.sh

kstatus:
	bash tests/kstatus/build.sh

test: lint controlplane kstatus
	$(BIN)/pytest

bench: $(BIN)/raycesctl
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache .pytest_cache
