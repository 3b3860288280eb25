# Two commands matter: `make demo` and `make test`. Everything else is what they need.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
# The demo's admin token: random, made once, kept in a git-ignored file (a fixed token in the repo
# would be everyone's token, and the runtime refuses short or placeholder tokens).
DEMO_TOKEN_FILE := examples/shop/.demo-admin-token
DEMO_ENV := PILOTHOUSE_SERVICE__HOST=127.0.0.1 PILOTHOUSE_OPS__HOST=127.0.0.1 SHOP_ADMIN_TOKEN=$${SHOP_ADMIN_TOKEN:-$$(cat .demo-admin-token)}

.PHONY: demo test venv services tools lint typecheck pytest bench clean

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
	@test -s $(DEMO_TOKEN_FILE) || (umask 077; $(BIN)/python -c 'import secrets; print(secrets.token_hex(32))' > $(DEMO_TOKEN_FILE))
	@echo "Shop demo (SQLite at examples/shop/shop.sqlite3; set DATABASE_URL for PostgreSQL)"
	@echo "  app:        curl localhost:8080/items   curl -XPOST localhost:8080/orders -d '{\"sku\":\"mug\"}'"
	@echo "  health:     curl localhost:9090/health  curl localhost:9090/ready  curl localhost:9090/status"
	@echo "  metrics:    curl localhost:9090/metrics"
	@echo "  token:      TOKEN=\$$(cat $(DEMO_TOKEN_FILE))   (the admin token, made for this checkout)"
	@echo "  drain:      curl -XPOST -H \"Authorization: Bearer \$$TOKEN\" localhost:9090/admin/drain"
	@echo "  jobs:       curl -XPOST -H \"Authorization: Bearer \$$TOKEN\" localhost:9090/admin/jobs -d '{\"job\":\"restock-report\"}'"
	@echo "              (cd examples/shop; ../../$(BIN)/pilothouse jobs list; ../../$(BIN)/pilothouse status; ../../$(BIN)/pilothouse drain)"
	@echo "  stop:       Ctrl-C (graceful: readiness fails, 2s pre-stop, drain, exit 0)"
	cd examples/shop && $(DEMO_ENV) ../../$(BIN)/pilothouse serve

lint: venv
	$(BIN)/ruff check .

typecheck: venv
	$(BIN)/mypy

pytest: venv services tools $(CHECKOV)
	$(BIN)/pytest

test: venv services tools lint typecheck pytest

bench: venv services tools
	$(BIN)/pip install -q -e '.[dev,bench]'
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
