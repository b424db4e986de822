#!/usr/bin/env bash
# The OpenTelemetry Collector the export tests talk to (tests/collector.rs): the distribution in
# tools/otelcol/ (main.go + go.mod/go.sum, all collector modules at one release), built with Go
# from the Go module proxy into .tools/otelcol/otelcol. Rebuilt only when the sources change:
# the binary's source hash is kept beside it.
# A cold build (empty module and build caches) takes about 9 minutes on 2 busy cores
# (2.5 min of CPU); a rebuild with warm caches takes seconds.
set -euo pipefail
cd "$(dirname "$0")/../.."

src=tools/otelcol
out=.tools/otelcol
hash=$(cd "$src" && cat go.mod go.sum main.go | sha256sum | cut -d' ' -f1)

if [ -x "$out/otelcol" ] && [ "$(cat "$out/source.sha256" 2>/dev/null)" = "$hash" ]; then
  "$out/otelcol" --version
  exit 0
fi

command -v go >/dev/null || { echo "50-otelcol: Go is needed to build the Collector" >&2; exit 1; }
mkdir -p "$out"
echo "building the OpenTelemetry Collector from $src (cold: several minutes)"
start=$(date +%s)
# -mod=readonly: go.sum is the record of what is built; a missing entry is an error, not a download.
(cd "$src" && go build -mod=readonly -trimpath -buildvcs=false -ldflags='-s -w' -o "../../$out/otelcol.new" .)
mv "$out/otelcol.new" "$out/otelcol"
echo "$hash" > "$out/source.sha256"
echo "built in $(( $(date +%s) - start )) s"
"$out/otelcol" --version
