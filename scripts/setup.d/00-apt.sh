#!/usr/bin/env bash
# Debian packages used by the tests: promtool/prometheus, wrk (load), jq (cross-checks).
set -euo pipefail
need=()
for pkg in prometheus jq; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The Debian package starts a Prometheus service on :9090 in some images; tests start their own.
command -v promtool >/dev/null
