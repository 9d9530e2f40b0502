# Entry points for people and CI. Each target installs what it needs into .venv by itself.
#
#   make migrate   migrate the embedded default database to head and show its status
#   make test      lint, type-check, layer contracts, then the whole test suite
#   make image     the project's image, built with buildah (hack/build-image.sh)
#   make bench     the benchmarks under bench/

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: migrate test lint packages controlplane kstatus image bench clean

$(BIN)/raycesctl: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[embedded,test]'
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
	@command -v shellcheck >/dev/null || bash hack/install-packages.sh
	shellcheck hack/kind-e2e.sh

# Debian packages the image build and the real test node need (buildah, containerd, runc, ...).
packages:
	bash hack/install-packages.sh

controlplane:
	bash tests/controlplane/build.sh

kstatus:
	bash tests/kstatus/build.sh

image: packages
	bash hack/build-image.sh

test: lint packages controlplane kstatus image
	$(BIN)/pytest

bench: $(BIN)/raycesctl
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache .pytest_cache
