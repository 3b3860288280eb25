# Two commands matter: `make demo` and `make test`. Everything else is what they need.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
# The demo's admin token: random, made once, kept in a git-ignored file (a fixed token in the repo
# would be everyone's token, and the runtime refuses short or placeholder tokens).
DEMO_TOKEN_FILE := examples/shop/.demo-admin-token
DEMO_ENV := PILOTHOUSE_SERVICE__HOST=127.0.0.1 PILOTHOUSE_OPS__HOST=127.0.0.1 SHOP_ADMIN_TOKEN=$${SHOP_ADMIN_TOKEN:-$$(cat $(DEMO_TOKEN_FILE))}

.PHONY: demo test test-latest venv services tools lint typecheck pytest bench clean examples

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

## Start the services the tests use when they are not running (this machine's kind starts them;
## a fresh machine may not).
services:
	@scripts/ensure-services.sh

## Install the external validators and engines the tests run, only when missing.
tools:
	@scripts/ensure-tools.sh

## checkov (deploy bundle validation) pins packages that conflict with ours: its own venv.
CHECKOV := .venv-checkov/bin/checkov
$(CHECKOV):
	python3 -m venv .venv-checkov
	.venv-checkov/bin/pip install -q -U pip
	.venv-checkov/bin/pip install -q 'checkov>=3.2,<4'

## The demo needs only its own extra (Starlette), plus the PostgreSQL driver when DATABASE_URL
## points at PostgreSQL; the ports in the banner are the ones the config (with DEMO_ENV) gives.
comma := ,
DEMO_EXTRAS := demo$(if $(DATABASE_URL),$(comma)postgres)
DEMO_STAMP := $(VENV)/.demo-$(subst $(comma),-,$(DEMO_EXTRAS))-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
$(DEMO_STAMP): pyproject.toml
	@test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/pip install -q -e '.[$(DEMO_EXTRAS)]'
	@rm -f $(VENV)/.demo-$(subst $(comma),-,$(DEMO_EXTRAS))-* && touch $@

demo: $(DEMO_STAMP)
	@test -s $(DEMO_TOKEN_FILE) || (umask 077; $(BIN)/python -c 'import secrets; print(secrets.token_hex(32))' > $(DEMO_TOKEN_FILE))
	@$(DEMO_ENV) DEMO_TOKEN_FILE=$(DEMO_TOKEN_FILE) scripts/demo.sh $(BIN)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: venv
	$(BIN)/mypy

## The suite starts `pilothouse` in hundreds of subprocesses: with PYTHONDONTWRITEBYTECODE set (as
## on this machine's kind) each would compile the editable sources again (about half its CPU).
## compileall writes the bytecode once; the interpreter reads it whatever that variable says.
## Two workers (this machine's kind has two cores; most tests wait on servers and subprocesses, so
## two halve the wall time); each test file stays on one worker (tests/conftest.py).
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadgroup
pytest: venv services tools $(CHECKOV)
	$(BIN)/python -m compileall -q src examples >/dev/null
	$(BIN)/pytest $(XDIST)

test: venv services tools lint typecheck pytest test-latest

## pyproject.toml has lower bounds only, and the telemetry fast path leans on OpenTelemetry SDK
## internals: the tests of what the host frameworks and the SDK touch run again against their
## newest releases, resolved afresh on every run in a venv of their own (.venv keeps what it was
## built with). The versions tested are printed first.
LATEST_VENV := .venv-latest
LATEST_PACKAGES := starlette fastapi uvicorn httptools uvloop opentelemetry-api opentelemetry-sdk \
	opentelemetry-exporter-otlp-proto-http opentelemetry-exporter-otlp-proto-grpc
LATEST_TESTS := tests/telemetry tests/runtime tests/jobs/test_every_way.py tests/jobs/test_telemetry.py
test-latest: services tools
	@test -x $(LATEST_VENV)/bin/python || python3 -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/pip install -q -U pip
	$(LATEST_VENV)/bin/pip install -q -U -e '.[dev]' $(LATEST_PACKAGES)
	@$(LATEST_VENV)/bin/python -c 'import sys; from importlib.metadata import version; \
		print("test-latest:", ", ".join(f"{p} {version(p)}" for p in sys.argv[1:]))' $(LATEST_PACKAGES)
	$(LATEST_VENV)/bin/pytest -q -p no:cacheprovider $(XDIST) $(LATEST_TESTS)

## The reference systems as examples (docs/examples/): each example's acceptance script against
## the real services here; fails on any criterion that regresses. Part of `make pytest` too.
examples: venv services tools $(CHECKOV)
	$(BIN)/pytest -q tests/examples

bench: venv services tools
	$(BIN)/pip install -q -e '.[dev,bench]'
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) $(LATEST_VENV) .pytest_cache .mypy_cache .ruff_cache
