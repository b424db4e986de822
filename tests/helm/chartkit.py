"""Shared machinery of the Helm chart tests (imported by conftest.py and the test modules).

Everything runs through real peers: Helm's own engine (helm-python-sdk binds Helm's Go SDK),
Kubernetes' OpenAPI schemas (kubernetes-validate), the Prometheus Operator's generated models,
and the codex-sentinel binary itself for the rendered monitoring.json.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "codex-sentinel"
SAMPLE_APP = Path(__file__).resolve().parent / "sample-app"

#: Kubernetes version the manifests are validated against (newest schemas kubernetes-validate
#: ships at the pinned version).
KUBE_VERSION = "1.37.0"

RELEASE = "demo"
NAMESPACE = "apps"

#: What the kubelet would put into downward-API variables, for running the binary as the pod
#: would. Strings only: nothing connects anywhere (192.0.2.0/24 is the documentation range).
FIELD_VALUES = {
    "metadata.name": "demo-codex-sentinel-7d9f8c6b5-x2x7q",
    "metadata.namespace": NAMESPACE,
    "metadata.uid": "0f6b1c9e-3b0f-4c56-9d7e-2f8b0b6c1a11",
    "spec.nodeName": "node-a",
    "status.hostIP": "192.0.2.10",
    "status.podIP": "192.0.2.11",
}


def helm():
    """The helm_python module, with a clear failure when the venv lacks it."""
    try:
        import helm_python
    except ImportError as e:  # pragma: no cover - environment problem
        pytest.fail(f"helm-python-sdk missing ({e}): run scripts/setup.d/30-helm.sh")
    return helm_python


def render_files(values: dict | None = None, chart: Path = CHART, **kw: Any) -> dict[str, str]:
    """Renders the chart with Helm's engine: {template path: rendered text}, NOTES.txt included.
    Raises helm's errors unchanged (the schema's and `fail`'s messages)."""
    h = helm()
    with h.Chart.load(str(chart)) as ch:
        return ch.render(
            values=values,
            name=kw.get("name", RELEASE),
            namespace=kw.get("namespace", NAMESPACE),
            is_install=True,
        )


def render(values: dict | None = None, chart: Path = CHART, **kw: Any) -> list[dict]:
    """Renders the chart and returns every manifest as a dict, in file order."""
    files = render_files(values, chart, **kw)
    docs: list[dict] = []
    for path in sorted(files):
        if not path.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(files[path]):
            if doc:
                doc.setdefault("_source", path)
                docs.append(doc)
    return docs


def strip_source(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != "_source"}


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


def one(docs: list[dict], kind: str) -> dict:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}: {[d['_source'] for d in found]}"
    return found[0]


def pod_spec(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]


def container(spec: dict, name: str) -> dict:
    for c in spec["containers"]:
        if c["name"] == name:
            return c
    raise AssertionError(f"no container {name!r} in {[c['name'] for c in spec['containers']]}")


def pod_env(c: dict, docs: list[dict], existing_secret_values: dict[str, str] | None = None) -> dict[str, str]:
    """The environment the kubelet would give container `c`: literal values with $(VAR)
    expanded, downward-API fields from FIELD_VALUES, secret keys from the rendered Secret
    (or `existing_secret_values` for a Secret the user manages; missing optional keys unset)."""
    secrets = {
        s["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in (s.get("data") or {}).items()}
        for s in by_kind(docs, "Secret")
    }
    env: dict[str, str] = {}
    for e in c.get("env", []):
        name = e["name"]
        if "value" in e:
            # Kubernetes expands $(VAR) from variables defined earlier; $$ escapes.
            def expand(m: re.Match) -> str:
                if m.group(0) == "$$":
                    return "$"
                return env.get(m.group(1), m.group(0))

            env[name] = re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", expand, str(e["value"]))
            continue
        src = e["valueFrom"]
        if "fieldRef" in src:
            path = src["fieldRef"]["fieldPath"]
            label = re.fullmatch(r"metadata\.labels\['(.+)'\]", path)
            if label:
                # A pod label (Datadog's unified service tagging): from the rendered pod template.
                pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
                env[name] = pod_labels[label.group(1)]
            else:
                env[name] = FIELD_VALUES[path]
        elif "secretKeyRef" in src:
            ref = src["secretKeyRef"]
            if ref["name"] in secrets:
                assert ref["key"] in secrets[ref["name"]], f"{name}: key {ref['key']} not in Secret {ref['name']}"
                env[name] = secrets[ref["name"]][ref["key"]]
            else:
                assert ref.get("optional"), f"{name}: Secret {ref['name']} is not rendered and the ref is not optional"
                value = (existing_secret_values or {}).get(ref["key"])
                if value is not None:
                    env[name] = value
        else:
            raise AssertionError(f"{name}: unexpected valueFrom {src}")
    return env


def configmap_json(docs: list[dict]) -> dict:
    cm = one(docs, "ConfigMap")
    return json.loads(cm["data"]["monitoring.json"])


@pytest.fixture(scope="session")
def sentinel_bin() -> Path:
    """The codex-sentinel binary: CODEX_SENTINEL_BIN (set by tests/helm_chart.rs to the binary
    cargo just built), else built here with cargo."""
    given = os.environ.get("CODEX_SENTINEL_BIN")
    if given:
        path = Path(given)
        assert path.is_file(), f"CODEX_SENTINEL_BIN={given} does not exist"
        return path
    cargo = shutil.which("cargo")
    assert cargo, "cargo not found: set CODEX_SENTINEL_BIN or put cargo on PATH"
    subprocess.run([cargo, "build", "--quiet", "--bin", "codex-sentinel"], cwd=REPO, check=True)
    meta = json.loads(
        subprocess.run(
            [cargo, "metadata", "--format-version", "1", "--no-deps"],
            cwd=REPO, check=True, capture_output=True, text=True,
        ).stdout
    )
    path = Path(meta["target_directory"]) / "debug" / "codex-sentinel"
    assert path.is_file(), f"cargo build did not produce {path}"
    return path


def run_sentinel(binary: Path, args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """Runs the binary with exactly `env` (plus PATH), as the pod would: nothing inherited."""
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    return subprocess.run(
        [str(binary), *args], env=full_env, cwd=cwd, capture_output=True, text=True, timeout=60
    )
