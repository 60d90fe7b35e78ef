# `make train` runs the main job on a lean set-up (the core with [torch] and [plots]); `make test` (or `make setup`) installs
# everything (every extra: LiteRT, OpenVINO, Ray, ... so that their tests run) and runs the whole test suite;
# `make check` is the fast lane (ruff + the tests not marked slow); `make docs` builds the documentation site
# (mkdocs build --strict into site/).
VENV := .venv
export NO_MKDOCS_2_WARNING := 1
PY := $(VENV)/bin/python

.PHONY: setup setup-core train test check docs lint

$(VENV)/.core: pyproject.toml requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q -e '.[torch,plots]'
	touch $@

$(VENV)/.done: $(VENV)/.core
	$(PY) -m pip install -q -e '.[all,dev]'
	touch $@

setup-core: $(VENV)/.core

setup: $(VENV)/.done

train: setup-core
	$(VENV)/bin/mobilenetv2 train

test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m mkdocs build --strict --quiet
	$(PY) -m pytest -n auto --dist loadfile

# the fast lane: ruff and every test not marked slow, under 4 minutes on 2 cores. Both test lines run on every core
# (pytest-xdist; --dist loadfile keeps a file's module fixtures, its exports and trainings, in one worker).
check: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -m "not slow" -n auto --dist loadfile

docs: setup
	$(PY) -m mkdocs build --strict

lint: setup
	$(VENV)/bin/ruff check .
