#!/usr/bin/env bash
# Container peers of the image and pod tests (tests/helm/test_image.py, test_pod_play.py):
# Debian's podman with the runc runtime (crun, Debian's default, cannot run containers on a
# cgroup-hybrid host), catatonit (the init of the pause image `podman kube play` builds for its
# pods; Debian's podman only recommends it), and busybox-static, the shell of the test
# application image. podman reads the project's scripts/podman/containers.conf through
# CONTAINERS_CONF: nothing in /etc changes.
set -euo pipefail
need=()
for pkg in podman runc catatonit busybox-static; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
cd "$(dirname "$0")/../.."
CONTAINERS_CONF="$PWD/scripts/podman/containers.conf" podman --version
