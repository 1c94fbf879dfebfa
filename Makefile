# protoedit: `make demo` runs the main job, `make test` runs every test (Caffe included).
# Both set everything up on first use (see scripts/setup.sh).

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.protoedit-setup

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh protoedit/caffe_build.py
	bash scripts/setup.sh
	touch $@

demo: $(STAMP)
	$(PY) scripts/demo.py

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check protoedit tests scripts bench
	$(VENV)/bin/ruff format --check protoedit tests scripts bench
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
