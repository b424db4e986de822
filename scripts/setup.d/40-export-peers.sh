#!/usr/bin/env bash
# Peers of the export tests (issue 5), into the project-local .tools/:
#  - Etsy's StatsD daemon (npm `statsd`), run by tests/statsd.rs with the console backend;
#  - Datadog's API client (PyPI `datadog-api-client`) in a venv, to parse dashboards/datadog.json.
# Prometheus/promtool come from 00-apt.sh.
set -euo pipefail
STATSD_VERSION=0.9.0
DATADOG_CLIENT_VERSION=2.62.0
cd "$(dirname "$0")/../.."

statsd_js=.tools/statsd/node_modules/statsd/stats.js
if [ ! -f "$statsd_js" ] || ! grep -q "\"version\": \"$STATSD_VERSION\"" .tools/statsd/node_modules/statsd/package.json; then
  mkdir -p .tools/statsd
  npm install --silent --no-audit --no-fund --prefix .tools/statsd "statsd@$STATSD_VERSION"
fi
test -f "$statsd_js"

venv=.tools/datadog-venv
if ! "$venv/bin/python" -c "from datadog_api_client.version import __version__ as v; import sys; sys.exit(v != '$DATADOG_CLIENT_VERSION')" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "datadog-api-client==$DATADOG_CLIENT_VERSION"
fi
"$venv/bin/python" -c "from datadog_api_client.version import __version__ as v; print('datadog-api-client', v)"
