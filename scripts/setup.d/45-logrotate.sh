#!/usr/bin/env bash
# Debian logrotate (and util-linux flock): the operations-log tests rotate files with the real
# logrotate in its rename (create), copytruncate and compress/delaycompress modes.
set -euo pipefail
if ! [ -x /usr/sbin/logrotate ] || ! command -v flock >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends logrotate util-linux >/dev/null
fi
/usr/sbin/logrotate --version >/dev/null
