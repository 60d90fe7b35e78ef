# `make setup` builds .venv; `make train` runs the main job; `make test` runs the whole test suite.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup train test lint

$(VENV)/.done: pyproject.toml requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q -e '.[all,dev]'
	touch $@

setup: $(VENV)/.done

train: setup
	$(VENV)/bin/mobilenetv2 train

test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .
