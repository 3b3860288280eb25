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
  [restic]=restic  # pilothouse backup
  [buildah]=buildah  # container image tests: build with --isolation chroot
  [podman]=podman    # ... and run the image as deployed
  [runc]=runc        # podman --runtime runc (crun is not used here)
  [docker-registry]=docker-registry  # pilothouse.updates image check: a real OCI registry on loopback
  [mmdebstrap]=mmdebstrap  # the test base image and the installer tests' root filesystems
  [zsh]=zsh    # tests/cli/test_completion.py: the completion scripts in the real shells
  [fish]=fish
)
missing=()
for tool in "${!PACKAGE_FOR[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${PACKAGE_FOR[$tool]}")
done
if ((${#missing[@]})); then
  mapfile -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "tools: installing ${packages[*]}"
  apt-get update -qq
  # The Debian packages would start their daemons on the default ports (and a later `pkill`
  # could end a developer's own Prometheus). A policy-rc.d that refuses every start keeps
  # invoke-rc.d from starting anything during this install; it is removed afterwards, and an
  # existing policy of the machine's own is left alone.
  policy=/usr/sbin/policy-rc.d
  own_policy=false
  if [[ ! -e $policy ]]; then
    own_policy=true
    printf '#!/bin/sh\n# written by pilothouse scripts/ensure-tools.sh for one install\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  if $own_policy; then rm -f "$policy"; trap - EXIT; fi
fi
command -v kubectl >/dev/null || echo "tools: kubectl not found (kustomize rendering tests will fail)" >&2
echo "tools: present"
