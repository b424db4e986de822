#!/usr/bin/env bash
# The Helm chart tests' Python peers (tests/helm/requirements.txt) in the project-local venv
# .tools/venv: Helm's own engine (helm-python-sdk binds Helm's Go SDK), Kubernetes schemas
# (kubernetes-validate), Prometheus Operator models, pytest. Skips the install when the pinned
# requirements are already there.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=.tools/venv
req=tests/helm/requirements.txt
stamp="$venv/.helm-requirements.sha256"
if [ ! -x "$venv/bin/python" ]; then
  mkdir -p .tools
  python3 -m venv "$venv"
fi
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
"$venv/bin/python" -c 'import helm_python, kubernetes_validate, cloudcoil.models.prometheus_operator, pytest'
echo "$want" > "$stamp"
