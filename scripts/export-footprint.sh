#!/usr/bin/env bash
# Footprint of the exporters (issue 5): runs the release agent side by side with exporters off
# and on (OTLP gRPC or HTTP/protobuf + DogStatsD), sampling processes at 1 Hz, against a counting
# sink (examples/export_sink.rs), and prints a Markdown table: agent CPU (% of one core, from
# /proc/PID/stat), peak and final RSS, export cycles and bytes per cycle.
# Usage: scripts/export-footprint.sh [SECONDS_PER_SCENARIO]   (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-60}
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --quiet --release --bin codex-sentinel --example export_sink
BIN=$(cd "$TARGET/release" && pwd)/codex-sentinel
SINK=$(cd "$TARGET/release/examples" && pwd)/export_sink
CODEX=$PWD/.tools/codex/node_modules/.bin/codex
[ -x "$CODEX" ] || { echo "real Codex CLI missing: run scripts/setup.d/10-codex.sh" >&2; exit 1; }
TICK=$(getconf CLK_TCK)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
G=$(free_port); H=$(free_port); S=$(free_port)
"$SINK" "$G" "$H" "$S" "$work/sink.json" &
sleep 1.5

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
status_kb() { awk -v k="$2:" '$1==k {print $2}' "/proc/$1/status"; }
sink() { python3 -c "import json,sys; print(json.load(open('$work/sink.json'))['$1'])"; }

echo "| scenario | agent CPU (% of one core) | peak RSS (MiB) | RSS at end (MiB) | export cycles | bytes / cycle |"
echo "|---|---|---|---|---|---|"
run() {
  local name=$1; shift
  local dir="$work/$name"; mkdir -p "$dir"
  local port; port=$(free_port)
  (cd "$dir" && exec env -i PATH="$PATH" HOME="$dir" CODEX_EXECUTABLE="$CODEX" CODEX_HEALTH_PORT="$port" \
      CODEX_SAMPLE_INTERVAL=1000 "$@" "$BIN" >/dev/null 2>"$dir/stderr") &
  local pid=$!
  # The subshell execs the agent: $! is the agent's pid.
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
  sleep 5 # warm-up: first probe, first sample
  local c0 g0 h0 s0 sd0
  c0=$(cpu_ticks $pid); g0=$(sink grpc_requests); h0=$(sink http_requests); sd0=$(sink statsd_datagrams)
  local gb0 hb0 sb0; gb0=$(sink grpc_bytes); hb0=$(sink http_bytes); sb0=$(sink statsd_bytes)
  local prom_bytes=0 scrapes=0
  local end=$((SECONDS + DUR))
  while [ $SECONDS -lt $end ]; do
    if [ -n "${SCRAPE:-}" ]; then
      b=$(curl -s -H 'Accept: application/openmetrics-text;version=1.0.0' "http://127.0.0.1:$port/metrics" | wc -c)
      prom_bytes=$((prom_bytes + b)); scrapes=$((scrapes + 1))
    fi
    sleep 1
  done
  sleep 1.2 # let the sink write its last counts
  local c1; c1=$(cpu_ticks $pid)
  local hwm rss; hwm=$(status_kb $pid VmHWM); rss=$(status_kb $pid VmRSS)
  kill -TERM $pid; wait $pid 2>/dev/null || true
  if grep -q "panicked" "$dir/stderr"; then echo "agent panicked in $name; figures void" >&2; cat "$dir/stderr" >&2; exit 1; fi
  local g=$(( $(sink grpc_requests) - g0 )) h=$(( $(sink http_requests) - h0 )) sd=$(( $(sink statsd_datagrams) - sd0 ))
  local gb=$(( $(sink grpc_bytes) - gb0 )) hb=$(( $(sink http_bytes) - hb0 )) sb=$(( $(sink statsd_bytes) - sb0 ))
  local cycles="" per=""
  [ $g -gt 0 ] && { cycles+="OTLP gRPC $g; "; per+="OTLP gRPC $((gb / g)) B (protobuf, uncompressed); "; }
  [ $h -gt 0 ] && { cycles+="OTLP HTTP $h; "; per+="OTLP HTTP $((hb / h)) B (body as sent); "; }
  [ $sb -gt 0 ] && { cycles+="DogStatsD $sd datagrams; "; per+="DogStatsD $sb B total, $((sb / sd)) B/datagram; "; }
  [ $scrapes -gt 0 ] && { cycles+="Prometheus $scrapes scrapes; "; per+="/metrics $((prom_bytes / scrapes)) B (OpenMetrics); "; }
  awk -v n="$name" -v t="$((c1 - c0))" -v tick="$TICK" -v dur="$DUR" -v hwm="$hwm" -v rss="$rss" \
      -v cy="${cycles:-—}" -v per="${per:-—}" \
      'BEGIN { printf "| %s | %.3f | %.1f | %.1f | %s | %s |\n", n, t * 100 / tick / dur, hwm / 1024, rss / 1024, cy, per }'
}

run "exporters off"
run "OTLP gRPC + DogStatsD (10 s)" OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$G" OTEL_EXPORTER_OTLP_PROTOCOL=grpc \
    DD_AGENT_HOST=127.0.0.1 DD_DOGSTATSD_PORT="$S"
run "OTLP HTTP + DogStatsD (10 s)" OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$H" OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf \
    DD_AGENT_HOST=127.0.0.1 DD_DOGSTATSD_PORT="$S"
SCRAPE=1 run "all three every 1 s (OTLP gRPC + DogStatsD + scrape)" OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$G" \
    OTEL_EXPORTER_OTLP_PROTOCOL=grpc OTEL_METRIC_EXPORT_INTERVAL=1000 DD_AGENT_HOST=127.0.0.1 DD_DOGSTATSD_PORT="$S" CODEX_STATSD_INTERVAL=1000
SCRAPE=1 run "all three every 1 s (OTLP HTTP + DogStatsD + scrape)" OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$H" \
    OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf OTEL_METRIC_EXPORT_INTERVAL=1000 DD_AGENT_HOST=127.0.0.1 DD_DOGSTATSD_PORT="$S" CODEX_STATSD_INTERVAL=1000
