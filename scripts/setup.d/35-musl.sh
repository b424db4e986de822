#!/usr/bin/env bash
# The static (musl) build of the image's binary (scripts/build-static, run by .ci/run): Debian's
# musl-gcc for C code in dependencies, and the Rust standard library for the musl target.
set -euo pipefail
if ! command -v musl-gcc >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends musl-tools >/dev/null
fi
target=x86_64-unknown-linux-musl
if ! rustup target list --installed | grep -qx "$target"; then
  rustup target add "$target"
fi
