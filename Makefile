# PAM backend: the commands people type.  Every target that needs the virtual
# environment creates it first (uv workspace: every package installed editable).

PYTHON ?= python3
VENV := .venv
TEST_WORKERS ?= 2
BOOTSTRAP := .pam/bootstrap
UV := $(shell command -v uv 2>/dev/null || echo $(BOOTSTRAP)/bin/uv)
PYPROJECTS := pyproject.toml $(wildcard shared/pyproject.toml services/*/pyproject.toml tools/*/pyproject.toml)

.PHONY: install run test lint format docs bench clean

install: $(VENV)/.installed

$(BOOTSTRAP)/bin/uv:
	$(PYTHON) -m venv $(BOOTSTRAP)
	$(BOOTSTRAP)/bin/pip install --quiet uv

$(VENV)/.installed: $(PYPROJECTS) | $(UV)
	$(UV) sync --all-packages --python $(PYTHON)
	@touch $@

run: install
	$(VENV)/bin/pam-stack

# The compose tests run after the rest, on their own: their containers take both cores while
# they start, which starved timing-sensitive tests running beside them.
test: install
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist worksteal -m "not compose"
	$(VENV)/bin/pytest -m compose

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

docs: install
	$(VENV)/bin/python -m pam_shared.protocol_doc > docs/protocol.md

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .pam .pytest_cache .ruff_cache

bench: install
	$(VENV)/bin/python -m bench.run

bench-quick: install
	$(VENV)/bin/python -m bench.run --quick
