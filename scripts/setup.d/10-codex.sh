#!/usr/bin/env bash
# The real Codex CLI from npm, pinned, into the project-local .tools/codex.
set -euo pipefail
CODEX_VERSION=0.171.0
cd "$(dirname "$0")/../.."
bin=.tools/codex/node_modules/.bin/codex
if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$CODEX_VERSION"; then
  exit 0
fi
mkdir -p .tools/codex
npm install --silent --no-audit --no-fund --prefix .tools/codex "@openai/codex@$CODEX_VERSION"
"$bin" --version
