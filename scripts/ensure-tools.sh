#!/usr/bin/env bash
# Install the Debian tools the tests run, only those missing; `apt-get update` at most once.
set -euo pipefail
declare -A PACKAGE_FOR=(
  [promtool]=prometheus
  [prometheus]=prometheus
  [amtool]=prometheus-alertmanager
  [prometheus-alertmanager]=prometheus-alertmanager  # Debian names the binary so
  [wrk]=wrk
  [valgrind]=valgrind  # bench/server_instructions.py
  [systemd-analyze]=systemd
)
missing=()
for tool in "${!PACKAGE_FOR[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${PACKAGE_FOR[$tool]}")
done
if ((${#missing[@]})); then
  mapfile -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "tools: installing ${packages[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  # The Debian packages start their daemons on the default ports; tests start their own.
  for svc in prometheus prometheus-alertmanager prometheus-node-exporter; do
    pkill -x "${svc#prometheus-}" 2>/dev/null || true
  done
fi
command -v kubectl >/dev/null || echo "tools: kubectl not found (kustomize rendering tests will fail)" >&2
echo "tools: present"
