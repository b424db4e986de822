"""The chart played as a pod with `podman kube play`: the chart's Deployment (Helm's engine)
with the application image of tests/helm/codex-app (the real Codex CLI and a workload writing
the operations log) and the agent's image from scripts/build-image, beside each other as the
chart lays them out (shared process namespace, shared operations-log volume, Codex copied by the
init container of codexBinary.copyFrom).

podman 4.3 is not a kubelet. The rendered YAML is changed only where podman cannot follow it,
and `podman_rewrites` lists each change (the test asserts that list, so a chart change that
adds another shows up here):
- fieldRefs other than metadata.name/uid/labels/annotations (metadata.namespace, spec.nodeName)
  make `kube play` fail: they become literal values;
- httpGet liveness probes become a podman healthcheck `curl … || exit 1` run by a shell inside
  the container (the agent's image has neither) on systemd timers (none here); readiness probes
  are ignored: both are dropped and this test calls /livez and /readyz through the hostPort;
- the agent's port gets a hostPort (a cluster reaches it through the Service, which podman
  does not play);
- podman removes a finished init container right after it exits ("once" type) and, on a loaded
  machine, races its own state ("cannot remove container … as it is running"): the pod
  annotation io.podman.annotations.init.container.type=always keeps it until `kube down`.
podman also ignores fsGroup: an emptyDir belongs to the user of the first container that mounts
it, which with the chart's layout is the writer of each volume (application: operations log;
agent: state; init container: the Codex copy), so no rewrite is needed for it."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
import yaml

from chartkit import FIELD_VALUES, by_kind, container, one, pod_spec, render, strip_source
from podkit import free_port, get, health_check, metric, podman, wait_for

#: fieldRefs podman 4.3's kube play resolves (its downward API).
PODMAN_FIELD_REFS = {"metadata.name", "metadata.uid", "metadata.labels", "metadata.annotations"}
AGENT = "codex-sentinel"
APP = "app"


def podman_rewrites(deployment: dict, host_port: int) -> list[str]:
    """Changes `deployment` in place so podman 4.3 plays it; returns what it changed."""
    done: list[str] = []
    template = deployment["spec"]["template"]
    spec = template["spec"]
    for c in spec.get("initContainers", []) + spec["containers"]:
        for e in c.get("env", []):
            field = e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
            if field and field not in PODMAN_FIELD_REFS:
                e.pop("valueFrom")
                e["value"] = FIELD_VALUES[field]
                done.append(f"{c['name']}: {e['name']} fieldRef {field} -> literal")
        for probe in ["livenessProbe", "readinessProbe"]:
            if probe in c:
                assert "httpGet" in c.pop(probe), f"{c['name']}: only httpGet probes are expected"
                done.append(f"{c['name']}: {probe} httpGet dropped")
    for port in container(spec, AGENT)["ports"]:
        port["hostPort"] = host_port
        done.append(f"{AGENT}: hostPort {host_port}")
    template["metadata"].setdefault("annotations", {})["io.podman.annotations.init.container.type"] = "always"
    done.append("pod: init containers kept until kube down")
    return done


def host_processes(ctr: str) -> dict[int, str]:
    """Host PID → start time (jiffies after boot) of every process in container `ctr`: a PID
    that is reused later has another start time."""
    out = podman("top", ctr, "hpid").stdout.split()[1:]
    procs = {}
    for pid in map(int, out):
        try:
            procs[pid] = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        except FileNotFoundError:
            pass  # exited between podman top and now
    return procs


def still_running(procs: dict[int, str]) -> list[int]:
    alive = []
    for pid, started in procs.items():
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19] == started:
                alive.append(pid)
        except FileNotFoundError:
            pass
    return alive


@pytest.fixture
def play_dir(tmp_path):
    """An empty directory to run kube play from: podman would try to build an image from a
    folder named like one."""
    d = tmp_path / "play"
    d.mkdir()
    return d


def test_chart_plays_as_a_pod(agent_image, codex_app_image, play_dir):
    app_repo, app_tag = codex_app_image.rsplit(":", 1)
    agent_repo, agent_tag = agent_image.rsplit(":", 1)
    release = f"play{os.getpid()}"
    values = {
        "image": {"repository": agent_repo, "tag": agent_tag},
        "app": {
            "image": {"repository": app_repo, "tag": app_tag},
            "command": ["/bin/sh", "/usr/local/bin/workload.sh"],
            # Codex writes auth.json into its home; the root filesystem is read-only.
            "extraVolumeMounts": [{"name": "codex-home", "mountPath": "/app/codex-home"}],
        },
        "extraVolumes": [{"name": "codex-home", "emptyDir": {}}],
        # The init container copies the app image's Codex for the agent's availability probe.
        "codexBinary": {"copyFrom": {"enabled": True, "path": "/usr/local/bin/codex"}},
        # Probe and sample often, and count the lines written before the agent started.
        "config": {
            "healthMonitoring": {"checkInterval": 2000},
            "processes": {"sampleInterval": 500},
            "operationsLog": {"backfill": True},
        },
    }
    docs = render(values, name=release)
    deployment = one(docs, "Deployment")
    host_port = free_port()
    rewrites = podman_rewrites(deployment, host_port)
    assert rewrites == [
        f"{AGENT}: K8S_NAMESPACE_NAME fieldRef metadata.namespace -> literal",
        f"{AGENT}: K8S_NODE_NAME fieldRef spec.nodeName -> literal",
        f"{AGENT}: livenessProbe httpGet dropped",
        f"{AGENT}: readinessProbe httpGet dropped",
        f"{AGENT}: hostPort {host_port}",
        "pod: init containers kept until kube down",
    ]
    # podman plays ConfigMaps and Deployments; the Service is for a cluster.
    manifest = play_dir / "pod.yaml"
    manifest.write_text(yaml.safe_dump_all([strip_source(one(docs, "ConfigMap")), strip_source(deployment)], sort_keys=False))
    pod = f"{deployment['metadata']['name']}-pod-0"  # podman names replica 0 of a Deployment so
    volumes_before = set(podman("volume", "ls", "--quiet").stdout.split())

    podman("kube", "play", "--start", str(manifest), cwd=play_dir, timeout=600)
    try:
        agent_ctr, app_ctr = f"{pod}-{AGENT}", f"{pod}-{APP}"
        names = set(podman("ps", "--all", "--filter", f"pod={pod}", "--format", "{{.Names}}").stdout.split())
        assert {agent_ctr, app_ctr, f"{pod}-codex-sentinel-copy-codex"} <= names, names

        # The kubelet's endpoints through the hostPort.
        assert wait_for("/readyz through the hostPort", lambda: get(host_port, "/readyz")[0] == 200, timeout=120)
        assert get(host_port, "/livez") == (200, '{"status":"ok"}')

        # The copied Codex answers the agent's availability probe.
        check = wait_for(
            "a healthy availability check",
            lambda: (c := health_check(host_port, "codex-availability")) and c["status"] == "healthy" and c,
            timeout=120,
        )
        assert check["status"] == "healthy", check

        # Shared process namespace: the application's `codex exec` (a long-lived process while
        # Codex retries without network) is sampled by the agent.
        def codex_processes():
            return metric(get(host_port, "/metrics")[1], "codex_active_processes")

        assert wait_for("the app's Codex process in the agent's metrics", codex_processes, timeout=120) >= 1
        app_comms = podman("top", app_ctr, "comm").stdout.split()
        assert "codex" in app_comms, app_comms

        # Shared volume: the agent counts the operations log the application writes, both kinds
        # of line the workload writes (version: success; exec: timed out).
        def executions():
            m = json.loads(get(host_port, "/health/codex")[1])["performance"]["execution_metrics"]
            return m["successful_executions"] >= 1 and m["timed_out_executions"] >= 1 and m

        counted = wait_for("operations-log lines counted by the agent", executions, timeout=120)
        written = podman("exec", app_ctr, "cat", "/app/logs/codex/" + only_log_file(app_ctr)).stdout.splitlines()
        lines = [json.loads(line) for line in written]
        assert counted["total_executions"] <= len(lines)
        assert counted["timed_out_executions"] <= sum(1 for l in lines if l["result"]["timedOut"])
        status, metrics = get(host_port, "/metrics")
        assert status == 200 and "codex_availability_status 1" in metrics

        # Both containers run as the chart's users.
        assert set(podman("top", agent_ctr, "user").stdout.split()[1:]) == {"65532"}
        assert set(podman("top", app_ctr, "user").stdout.split()[1:]) == {"1000"}
        processes = {**host_processes(agent_ctr), **host_processes(app_ctr)}
        assert len(processes) >= 3, processes  # agent, workload shell, codex
    finally:
        down = podman("kube", "down", str(manifest), cwd=play_dir, check=False, timeout=300)
    assert down.returncode == 0, down.stderr
    assert podman("pod", "exists", pod, check=False).returncode != 0, f"pod {pod} left behind"
    assert podman("ps", "--all", "--filter", f"pod={pod}", "--quiet").stdout.strip() == ""
    assert still_running(processes) == [], "processes of the pod outlived kube down"
    assert set(podman("volume", "ls", "--quiet").stdout.split()) <= volumes_before, "emptyDir volumes left behind"


def only_log_file(app_ctr: str) -> str:
    (name,) = podman("exec", app_ctr, "ls", "/app/logs/codex").stdout.split()
    assert name.startswith("codex-operations-") and name.endswith(".jsonl"), name
    return name
