#!/usr/bin/env bash
# Peers of the alerting tests: a real SMTP server (aiosmtpd, run by Debian's python3) and a
# real Prometheus Alertmanager.
set -euo pipefail
need=()
for pkg in python3-aiosmtpd prometheus-alertmanager; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
/usr/bin/python3 -c "import aiosmtpd" 
test -x /usr/bin/prometheus-alertmanager
