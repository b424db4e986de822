"""codexBinary.fromApplication: the agent runs the application image's own Codex through the
shared process namespace (/proc/<pid>/root/<path>), without an init container or a copy, as the
application's user. test_pod_play.py plays it with podman and the real Codex CLI; here: what the
chart renders, and what its NOTES tell a user whose probe reports the path unavailable."""

from __future__ import annotations

import kubernetes_validate

from chartkit import KUBE_VERSION, configmap_json, container, one, pod_spec, render, render_files, strip_source

AGENT = "codex-sentinel"
PATH = "/usr/local/bin/codex"
VALUES = {"codexBinary": {"fromApplication": {"enabled": True, "path": PATH}}}


def test_no_copy_the_agent_runs_the_applications_codex_as_its_user():
    docs = render(VALUES)
    spec = pod_spec(one(docs, "Deployment"))
    assert "initContainers" not in spec
    assert [v["name"] for v in spec["volumes"] if "codex-bin" in v["name"]] == []
    agent, app = container(spec, AGENT), container(spec, "app")
    assert [m["name"] for m in agent["volumeMounts"]] == [
        "codex-sentinel-config", "codex-sentinel-state", "codex-sentinel-tmp", "codex-operations-log",
    ], "no volume holds a Codex for the agent"
    # Only the application's user may enter /proc/<pid>/root of its processes (no CAP_SYS_PTRACE).
    sc = agent["securityContext"]
    assert (sc["runAsUser"], sc["runAsGroup"]) == (app["securityContext"]["runAsUser"], app["securityContext"]["runAsGroup"])
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["allowPrivilegeEscalation"] is False
    assert spec["shareProcessNamespace"] is True
    assert configmap_json(docs)["codex"] == {"executable": PATH, "executableIn": "application"}
    for doc in docs:
        data = strip_source(doc)
        if not data["apiVersion"].startswith("monitoring.coreos.com"):
            kubernetes_validate.validate(data, KUBE_VERSION, strict=True)


def test_notes_say_how_to_fix_an_unavailable_path():
    notes = render_files(VALUES)["codex-sentinel/templates/NOTES.txt"]
    assert f"The agent runs the application's own Codex, {PATH}," in notes
    assert "set codexBinary.fromApplication.path to the static Codex" in notes
    assert "runs as another user" in notes
    assert "WARNING: the availability probe" not in notes
    assert "fromApplication" not in render_files({"codexBinary": {"copyFrom": {"enabled": True}}})["codex-sentinel/templates/NOTES.txt"]
