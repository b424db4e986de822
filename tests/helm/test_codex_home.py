"""codexHome: the application's Codex home shared read-only with the agent, which then runs as
the application's user (auth.json is 0600). tests/codex_home.rs shows with the real Codex CLI
that `codex login status` works from a read-only home as that user and fails as another."""

from __future__ import annotations

import kubernetes_validate

from chartkit import KUBE_VERSION, container, one, pod_spec, render, strip_source

AGENT = "codex-sentinel"
VALUES = {
    "codexHome": {"enabled": True},
    "config": {"codex": {"probes": [{"name": "codex-login", "command": ["codex", "login", "status"], "failureStatus": "critical"}]}},
}


def test_the_agent_reads_the_applications_codex_home_as_its_user():
    docs = render(VALUES)
    spec = pod_spec(one(docs, "Deployment"))
    agent, app = container(spec, AGENT), container(spec, "app")
    env = {e["name"]: e.get("value") for e in agent["env"]}
    assert env["CODEX_HOME"] == "/var/lib/codex-home"
    assert {"name": "CODEX_HOME", "value": "/home/app/.codex"} in app["env"]
    agent_mount = next(m for m in agent["volumeMounts"] if m["name"] == "codex-home")
    app_mount = next(m for m in app["volumeMounts"] if m["name"] == "codex-home")
    assert agent_mount == {"name": "codex-home", "mountPath": "/var/lib/codex-home", "readOnly": True}
    assert app_mount == {"name": "codex-home", "mountPath": "/home/app/.codex"}
    assert {"name": "codex-home", "emptyDir": {"sizeLimit": "64Mi"}} in spec["volumes"]
    sc = agent["securityContext"]
    assert (sc["runAsUser"], sc["runAsGroup"]) == (app["securityContext"]["runAsUser"], app["securityContext"]["runAsGroup"]) == (1000, 1000)
    assert sc["readOnlyRootFilesystem"] and sc["capabilities"] == {"drop": ["ALL"]}
    for doc in docs:
        data = strip_source(doc)
        if not data["apiVersion"].startswith("monitoring.coreos.com"):
            kubernetes_validate.validate(data, KUBE_VERSION, strict=True)


def test_off_by_default_the_agent_keeps_its_own_user():
    spec = pod_spec(one(render(), "Deployment"))
    agent = container(spec, AGENT)
    assert agent["securityContext"]["runAsUser"] == 65532
    assert "CODEX_HOME" not in {e["name"] for e in agent["env"]}
    assert "codex-home" not in {v["name"] for v in spec["volumes"]}
