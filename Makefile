# Two commands matter: `make run` and `make test`. Everything else is for developers.
# Both create .venv (Python 3.11 or newer) and install jobrunner with its dev extras first.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	2>/dev/null && echo $$p && break; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
IMAGE ?= jobrunner:latest

.PHONY: help run test check fmt soak bench image clean

help:
	@grep -E '^## ' Makefile | sed 's/^## /  make /'

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "jobrunner needs Python 3.11 or newer (set PYTHON=...)"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: start API + worker + maintenance + dashboard on http://127.0.0.1:8000
run: $(STAMP)
	$(BIN)/jobrunner up

## test: the whole suite on a real PostgreSQL (JOBRUNNER_TEST_DATABASE_URL, Docker, or embedded)
test: $(STAMP)
	$(BIN)/pytest -n 2 --dist loadfile -q

## check: formatting, lint and types (mypy --strict)
check: $(STAMP)
	$(BIN)/ruff format --check jobrunner tests scripts
	$(BIN)/ruff check jobrunner tests scripts
	$(BIN)/mypy jobrunner tests

## fmt: format and auto-fix what ruff can
fmt: $(STAMP)
	$(BIN)/ruff format jobrunner tests scripts
	$(BIN)/ruff check --fix jobrunner tests scripts

## soak: the long fault-injection and load runs
soak: $(STAMP)
	$(BIN)/pytest -m slow -q -p no:cacheprovider -o addopts=''

## bench: the performance benchmark against the configured or an embedded database
bench: $(STAMP)
	$(BIN)/jobrunner bench

## image: build the container image that compose.yaml runs
image:
	docker build -t $(IMAGE) .

## clean: remove the virtualenv, the embedded database and caches
clean:
	rm -rf $(VENV) .jobrunner .pytest_cache .mypy_cache .ruff_cache
