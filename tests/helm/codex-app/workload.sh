#!/bin/sh
# The pod tests' application: runs the Codex CLI in a loop and writes one operations-log line per
# run (docs/operations-log.md) into $CODEX_OPERATIONS_LOG_DIR/codex-operations-YYYY-MM-DD.jsonl.
# Each round: `codex --version` (answers offline: a success) and `codex exec` with an API key that
# no server will see (no network: Codex retries until `timeout` stops it: a timed-out operation,
# and a long-lived Codex process for the agent to sample).
#   CODEX_OPERATIONS_LOG_DIR  the shared operations-log volume (default /app/logs/codex)
#   CODEX_HOME                a writable directory for Codex's auth.json (default /app/codex-home)
#   EXEC_TIMEOUT              seconds `codex exec` may run (default 8)
set -u
log_dir=${CODEX_OPERATIONS_LOG_DIR:-/app/logs/codex}
export CODEX_HOME=${CODEX_HOME:-/app/codex-home}
exec_timeout=${EXEC_TIMEOUT:-8}
mkdir -p "$log_dir" "$CODEX_HOME" || exit 1

child=""
# kubelet/podman stop: end the running Codex too, then leave (exit 0 = a clean stop).
trap '[ -n "$child" ] && kill "$child" 2>/dev/null; exit 0' TERM INT

# Runs "$@" in the background and waits, so that the trap above fires while Codex runs.
run() {
  "$@" &
  child=$!
  wait "$child"
  rc=$?
  child=""
  return "$rc"
}

now_ms() { echo "$(date +%s)000"; }

# log_op TYPE START_MS END_MS SUCCESS TIMED_OUT ERROR
log_op() {
  err=null
  [ -n "$6" ] && err="\"$6\""
  printf '{"timestamp":%s,"operationType":"%s","timing":{"duration":%s,"queueWait":0},"result":{"success":%s,"timedOut":%s,"error":%s},"retryCount":0}\n' \
    "$2" "$1" "$(($3 - $2))" "$4" "$5" "$err" >> "$log_dir/codex-operations-$(date -u +%Y-%m-%d).jsonl"
}

echo "sk-offline-test-key" | codex login --with-api-key >/dev/null 2>&1 || { echo "workload: codex login failed" >&2; exit 1; }
echo "workload: codex home $CODEX_HOME, operations log $log_dir" >&2

while :; do
  start=$(now_ms)
  if run codex --version >/dev/null 2>&1; then
    log_op version "$start" "$(now_ms)" true false ""
  else
    log_op version "$start" "$(now_ms)" false false "codex --version failed"
  fi

  start=$(now_ms)
  run timeout "$exec_timeout" codex exec --skip-git-repo-check "Summarise the audit log" </dev/null >/dev/null 2>&1
  rc=$?
  if [ "$rc" = 0 ]; then
    log_op exec "$start" "$(now_ms)" true false ""
  elif [ "$rc" = 124 ] || [ "$rc" = 143 ]; then
    log_op exec "$start" "$(now_ms)" false true "timed out after ${exec_timeout}s"
  else
    log_op exec "$start" "$(now_ms)" false false "codex exec exited $rc"
  fi
  # A pause between rounds: a Codex that fails at once must not turn this into a busy loop.
  run sleep 1
done
