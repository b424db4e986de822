"""docs/kubernetes.md's walk from `helm install` to a dashboard stays true to the chart: every
value it sets (`--set`, `--set-json`) exists in values.yaml, and the documented install renders."""

from __future__ import annotations

import re

import yaml

from chartkit import CHART, REPO, one, render

DOC = REPO / "docs" / "kubernetes.md"


def walkthrough() -> str:
    text = DOC.read_text()
    start = text.index("## From `helm install` to a dashboard")
    return text[start : text.index("\n## ", start + 1)]


def set_keys(text: str) -> list[str]:
    # `--set a.b=…` and `--set-json 'a.b=…'`, also across the Markdown's line breaks.
    return re.findall(r"--set(?:-json)?\s+'?([A-Za-z][\w.]*)=", text)


def exists(values: dict, key: str) -> bool:
    node = values
    for part in key.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, dict) and not node:
            return True  # a free-form map such as serviceMonitor.labels
        else:
            return False
    return True


def test_every_value_the_walkthrough_sets_is_in_values_yaml():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    keys = set_keys(walkthrough())
    assert {"codexBinary.fromApplication.enabled", "export.datadog.dogstatsdTransport", "serviceMonitor.labels.release"} <= set(keys), keys
    assert [k for k in keys if not exists(values, k)] == []


def test_the_documented_install_renders():
    docs = render(
        {
            "image": {"repository": "registry.example.com/tools/codex-sentinel"},
            "app": {"image": {"repository": "registry.example.com/audit-api", "tag": "1.4.2"}, "command": None},
            "codexBinary": {"fromApplication": {"enabled": True}},
            "export": {"preset": "datadog", "datadog": {"dogstatsdTransport": "socket", "env": "prod", "service": "audit-api", "version": "1.4.2"}},
        },
        name="audit",
    )
    assert one(docs, "Deployment")["metadata"]["name"] == "audit-codex-sentinel"  # kubectl port-forward deploy/…
