#!/usr/bin/env bash
# `make demo`: print how to reach the shop on the ports its config really gives (with the
# PILOTHOUSE_* overrides in the environment), then serve it in the foreground.
set -euo pipefail
bin=$(cd "${1:?usage: demo.sh VENV_BIN}" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/examples/shop"
"$bin/pilothouse" config show --format json | DEMO_BIN=$bin "$bin/python" -c '
import json, os, sys
config = json.load(sys.stdin)
app, ops = config["service"]["port"], config["ops"]["port"]
cli = os.path.relpath(os.environ["DEMO_BIN"] + "/pilothouse")
token = os.environ.get("DEMO_TOKEN_FILE", "the admin token file")
auth = "-H \"Authorization: Bearer $TOKEN\""
print(f"""Shop demo (SQLite at examples/shop/shop.sqlite3; set DATABASE_URL for PostgreSQL)
  app:        curl localhost:{app}/items   curl -XPOST localhost:{app}/orders -d \x27{{"sku":"mug"}}\x27
  health:     curl localhost:{ops}/health  curl localhost:{ops}/ready  curl localhost:{ops}/status
  metrics:    curl localhost:{ops}/metrics
  token:      TOKEN=$(cat {token})   (the admin token, made for this checkout)
  drain:      curl -XPOST {auth} localhost:{ops}/admin/drain
  jobs:       curl -XPOST {auth} localhost:{ops}/admin/jobs -d \x27{{"job":"restock-report"}}\x27
              (cd examples/shop; {cli} jobs list; {cli} jobs status; {cli} jobs drain)
  stop:       Ctrl-C (graceful: readiness fails, pre-stop wait, drain, exit 0)""")
'
exec "$bin/pilothouse" serve
