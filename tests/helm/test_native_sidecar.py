"""The agent as a native sidecar (agent.nativeSidecar): an init container with
`restartPolicy: Always`, after the Codex copy, gated on Kubernetes 1.29 (`.Capabilities`), valid
against the 1.29 and the newest schemas. podman 4.3 cannot play it (docs/kubernetes.md), so no
pod test covers it; tests/last_words.rs covers what a Job needs from the binary (the last
executions exported on SIGTERM)."""

from __future__ import annotations

import kubernetes_validate
import pytest

from chartkit import CHART, KUBE_VERSION, container, helm, one, pod_spec, render, strip_source

AGENT = "codex-sentinel"
NATIVE = {"agent": {"nativeSidecar": True}, "codexBinary": {"copyFrom": {"enabled": True}}}


def test_the_agent_is_an_always_restarting_init_container_after_the_copy():
    docs = render(NATIVE)
    spec = pod_spec(one(docs, "Deployment"))
    assert [(c["name"], c.get("restartPolicy")) for c in spec["initContainers"]] == [
        ("codex-sentinel-copy-codex", None),
        (AGENT, "Always"),
    ]
    assert AGENT not in [c["name"] for c in spec["containers"]]
    agent = next(c for c in spec["initContainers"] if c["name"] == AGENT)
    # The same container as in sidecar-container mode, plus the restart policy.
    plain = container(pod_spec(one(render({"codexBinary": {"copyFrom": {"enabled": True}}}), "Deployment")), AGENT)
    assert {k: v for k, v in agent.items() if k != "restartPolicy"} == plain
    assert agent["livenessProbe"]["httpGet"]["path"] == "/livez"


@pytest.mark.parametrize("kube_version", ["1.29.0", KUBE_VERSION])
def test_native_sidecar_validates_and_lints(kube_version):
    for doc in render(NATIVE):
        data = strip_source(doc)
        if data["apiVersion"].startswith("monitoring.coreos.com"):
            continue
        kubernetes_validate.validate(data, kube_version, strict=True)
    report = helm().lint(str(CHART), NATIVE, strict=True, namespace="apps", kube_version="v" + kube_version)
    assert not [m for m in report["messages"] if m["severity"] >= 2] and not report["errors"], report


def test_an_older_cluster_is_refused(capfd):
    """Helm's lint runs `fail` as a logged no-op (lint mode): its message on Helm's log is what
    `helm install` on a 1.28 cluster would stop with."""
    helm().lint(str(CHART), NATIVE, strict=True, namespace="apps", kube_version="v1.28.9")
    err = capfd.readouterr().err
    assert "agent.nativeSidecar needs Kubernetes 1.29 or later" in err and "v1.28.9" in err, err
    capfd.readouterr()
    helm().lint(str(CHART), NATIVE, strict=True, namespace="apps", kube_version="v1.29.0")
    assert "nativeSidecar needs" not in capfd.readouterr().err
