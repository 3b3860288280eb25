#!/usr/bin/env bash
# Smoke-test a deployed Pilothouse service: health, readiness, metrics, one API call, and an
# admin call without a token that must be refused. Exits non-zero with one clear line on failure.
#
#   scripts/smoke.sh BASE_URL [OPS_URL]
#     BASE_URL  the app port, e.g. http://127.0.0.1:8080 (after kubectl port-forward svc/shop 8080)
#     OPS_URL   the ops port (default: BASE_URL with port 9090)
#   Paths follow the defaults of [probes]; override with SMOKE_HEALTH_PATH, SMOKE_READY_PATH,
#   SMOKE_METRICS_PATH and SMOKE_API_PATH (default "/").
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 || "$1" == -h || "$1" == --help ]]; then
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
base="${1%/}"
if [[ $# -eq 2 ]]; then
  ops="${2%/}"
elif [[ "$base" =~ ^(https?://[^/:]+)(:[0-9]+)?$ ]]; then
  ops="${BASH_REMATCH[1]}:9090"
else
  echo "smoke: cannot derive the ops URL from '$base'; pass it as the second argument" >&2
  exit 2
fi

fail() { echo "smoke: FAIL $*" >&2; exit 1; }

# status URL: prints the HTTP status code ("000" when the connection fails).
status() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" || true; }

expect_2xx() {
  local what="$1" url="$2" code
  code=$(status "$url")
  [[ "$code" == 2?? ]] || fail "$what: GET $url answered $code (expected 2xx)"
  echo "smoke: ok   $what ($url -> $code)"
}

expect_2xx health "$ops${SMOKE_HEALTH_PATH:-/health}"
expect_2xx readiness "$ops${SMOKE_READY_PATH:-/ready}"
metrics_url="$ops${SMOKE_METRICS_PATH:-/metrics}"
expect_2xx metrics "$metrics_url"
# Read the whole body first: `curl | grep -q` fails under pipefail when grep exits at the first
# match and curl dies of SIGPIPE while still writing.
metrics_body=$(curl -s --max-time 5 "$metrics_url" || true)
grep -q '^# TYPE ' <<<"$metrics_body" || fail "metrics: $metrics_url has no Prometheus exposition"
expect_2xx api "$base${SMOKE_API_PATH:-/}"
code=$(status -X POST "$ops/admin/drain")
[[ "$code" == 401 || "$code" == 403 || "$code" == 404 ]] \
  || fail "admin: POST $ops/admin/drain without a token answered $code (expected it refused: 401/403/404)"
echo "smoke: ok   admin without token refused ($code)"
echo "smoke: all checks passed for $base"
