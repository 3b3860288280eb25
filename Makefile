# Two commands matter: `make demo` and `make test`. Everything else is what they need.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
DEMO_ENV := PILOTHOUSE_SERVICE__HOST=127.0.0.1 PILOTHOUSE_OPS__HOST=127.0.0.1 SHOP_ADMIN_TOKEN=$${SHOP_ADMIN_TOKEN:-demo-admin-token}

.PHONY: demo test test-latest venv services tools lint typecheck pytest bench clean

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

demo: venv
	@echo "Shop demo (SQLite at examples/shop/shop.sqlite3; set DATABASE_URL for PostgreSQL)"
	@echo "  app:        curl localhost:8080/items   curl -XPOST localhost:8080/orders -d '{\"sku\":\"mug\"}'"
	@echo "  health:     curl localhost:9090/health  curl localhost:9090/ready  curl localhost:9090/status"
	@echo "  metrics:    curl localhost:9090/metrics"
	@echo "  drain:      curl -XPOST -H 'Authorization: Bearer demo-admin-token' localhost:9090/admin/drain"
	@echo "  jobs:       curl -XPOST -H 'Authorization: Bearer demo-admin-token' localhost:9090/admin/jobs -d '{\"job\":\"restock-report\"}'"
	@echo "              (cd examples/shop; ../../$(BIN)/pilothouse jobs list; ../../$(BIN)/pilothouse status; ../../$(BIN)/pilothouse drain)"
	@echo "  stop:       Ctrl-C (graceful: readiness fails, 2s pre-stop, drain, exit 0)"
	cd examples/shop && $(DEMO_ENV) ../../$(BIN)/pilothouse serve

lint: venv
	$(BIN)/ruff check .

typecheck: venv
	$(BIN)/mypy

pytest: venv services tools $(CHECKOV)
	$(BIN)/pytest

test: venv services tools lint typecheck pytest test-latest

## pyproject.toml has lower bounds only, and the telemetry fast path leans on OpenTelemetry SDK
## internals: the tests of what the host frameworks and the SDK touch run again against their
## newest releases, resolved afresh on every run in a venv of their own (.venv keeps what it was
## built with). The versions tested are printed first.
LATEST_VENV := .venv-latest
LATEST_PACKAGES := starlette fastapi uvicorn opentelemetry-api opentelemetry-sdk \
	opentelemetry-exporter-otlp-proto-http opentelemetry-exporter-otlp-proto-grpc
LATEST_TESTS := tests/telemetry tests/runtime tests/jobs/test_every_way.py tests/jobs/test_telemetry.py
test-latest: services tools
	@test -x $(LATEST_VENV)/bin/python || python3 -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/pip install -q -U pip
	$(LATEST_VENV)/bin/pip install -q -U -e '.[dev]' $(LATEST_PACKAGES)
	@$(LATEST_VENV)/bin/python -c 'import sys; from importlib.metadata import version; \
		print("test-latest:", ", ".join(f"{p} {version(p)}" for p in sys.argv[1:]))' $(LATEST_PACKAGES)
	$(LATEST_VENV)/bin/pytest -q -p no:cacheprovider $(LATEST_TESTS)

bench: venv services tools
	$(BIN)/pip install -q -e '.[dev,bench]'
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) $(LATEST_VENV) .pytest_cache .mypy_cache .ruff_cache
