# Set-up on a fresh machine: `make demo` runs the main job, `make test` runs the tests.
# Each creates the virtual environment .venv in the checkout on first use.
# TORCH_SPEC pins the CPU build that this kind of machine has on disk; on a GPU machine use e.g.
#   make test TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python

.PHONY: venv demo test lint docs bench asv-quick dashboard clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(PY) -m sslbench demo

test: venv
	$(PY) -m pytest -q

# ruff: pyflakes errors and import order ([tool.ruff] in pyproject.toml); `ruff check --fix .` repairs most
lint: venv
	$(VENV)/bin/ruff check .

# the docs/ pages as a site (mkdocs.yml); --strict fails on a broken link or anchor
docs: venv
	$(VENV)/bin/mkdocs build --strict

bench: venv
	$(PY) benchmarks/side_by_side.py

asv-quick: venv
	$(VENV)/bin/asv machine --yes
	$(VENV)/bin/asv run --python=same --quick --show-stderr

dashboard: venv
	$(PY) -m sslbench dashboard

clean:
	rm -rf $(VENV) .asv .pytest_cache .ruff_cache site
