"""The Datadog preset in the pod: DogStatsD over the node agent's Unix socket (hostPath at the
Datadog chart's default /var/run/datadog/dsd.socket), unified service tagging labels with the
DD_* variables from the downward API, and the optional autodiscovery annotation. The rendered
monitoring.json and environment are run by the real binary, which sends DogStatsD datagrams to a
Unix datagram socket standing in for the node agent's."""

from __future__ import annotations

import json
import socket
import subprocess
import time

import kubernetes_validate

from chartkit import KUBE_VERSION, configmap_json, container, one, pod_env, pod_spec, render, strip_source

AGENT = "codex-sentinel"
VALUES = {
    "export": {
        "preset": "datadog",
        "datadog": {"dogstatsdTransport": "socket", "env": "prod", "service": "audit-api", "version": "1.4.2", "autodiscovery": True},
    },
    "config": {"healthMonitoring": {"enabled": False}, "export": {"statsd": {"interval": 200}}},
}


def test_socket_preset_wiring():
    docs = render(VALUES)
    deployment = one(docs, "Deployment")
    spec = pod_spec(deployment)
    agent = container(spec, AGENT)
    meta = deployment["spec"]["template"]["metadata"]
    assert {k: v for k, v in meta["labels"].items() if k.startswith("tags.datadoghq.com/")} == {
        "tags.datadoghq.com/env": "prod",
        "tags.datadoghq.com/service": "audit-api",
        "tags.datadoghq.com/version": "1.4.2",
    }
    refs = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in agent["env"] if "valueFrom" in e and "fieldRef" in e["valueFrom"]}
    assert refs["DD_ENV"] == "metadata.labels['tags.datadoghq.com/env']"
    assert refs["DD_SERVICE"] == "metadata.labels['tags.datadoghq.com/service']"
    assert refs["DD_VERSION"] == "metadata.labels['tags.datadoghq.com/version']"
    assert "DD_AGENT_HOST" not in refs  # no host port with the socket
    assert {"name": "codex-sentinel-dsd-socket", "mountPath": "/var/run/datadog", "readOnly": True} in agent["volumeMounts"]
    assert {"name": "codex-sentinel-dsd-socket", "hostPath": {"path": "/var/run/datadog", "type": "Directory"}} in spec["volumes"]
    assert configmap_json(docs)["export"]["statsd"]["url"] == "unix:///var/run/datadog/dsd.socket"
    check = json.loads(meta["annotations"][f"ad.datadoghq.com/{AGENT}.checks"])
    assert check == {"openmetrics": {"instances": [{"openmetrics_endpoint": "http://%%host%%:3000/metrics", "namespace": "codex_sentinel", "metrics": [".*"]}]}}
    for doc in docs:
        data = strip_source(doc)
        if not data["apiVersion"].startswith("monitoring.coreos.com"):
            kubernetes_validate.validate(data, KUBE_VERSION, strict=True)


def test_the_binary_sends_dogstatsd_to_the_socket_with_the_pods_tags(sentinel_bin, tmp_path):
    docs = render(VALUES)
    agent = container(pod_spec(one(docs, "Deployment")), AGENT)
    env = pod_env(agent, docs)
    sock_path = tmp_path / "dsd.socket"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(sock_path))
    receiver.settimeout(15)
    cfg = configmap_json(docs)
    cfg["export"]["statsd"]["url"] = f"unix://{sock_path}"
    cfg["healthMonitoring"]["endpoints"].update({"host": "127.0.0.1", "port": 0})
    cfg["stateDir"] = str(tmp_path / "state")
    cfg["operationsLog"]["dir"] = str(tmp_path / "oplog")
    (tmp_path / "monitoring.json").write_text(json.dumps(cfg))
    proc = subprocess.Popen([str(sentinel_bin), "--config", str(tmp_path / "monitoring.json")], cwd=tmp_path,
                            env={"PATH": "/usr/bin:/bin", **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        lines: list[str] = []
        while not any(l.startswith("codex.") for l in lines):
            assert time.monotonic() < deadline
            lines += receiver.recv(65536).decode().splitlines()
        tagged = [l for l in lines if l.startswith("codex.") and "|#" in l]
        assert tagged, lines
        for tag in ("env:prod", "service:audit-api", "version:1.4.2"):
            assert all(tag in l for l in tagged), (tag, tagged)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        receiver.close()
