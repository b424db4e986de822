"""Endpoint security in the chart (webConfig, networkPolicy): rendered by Helm's engine, valid
for Kubernetes and the Prometheus Operator, the kubelet probes on HTTPS, the certificates mounted
from their Secret, and the rendered web config file served by the real binary (TLS with a
certificate made by openssl, 401 without credentials, 200 with them)."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import time

import kubernetes_validate
import pytest
import yaml
from cloudcoil.models.prometheus_operator import v1 as promop

from chartkit import KUBE_VERSION, by_kind, configmap_json, container, helm, one, pod_spec, render, render_files, strip_source, CHART

AGENT = "codex-sentinel"
#: bcrypt (cost 4) of "scrape-pass", made with libxcrypt: `crypt.crypt("scrape-pass", "$2b$04$...")`.
HASH = "$2b$04$ElJ6UMybYMFFY8MBsOClJe.uCnUhK7qjietN1ICXk4V1KACOKziLS"
PASSWORD = "scrape-pass"

SECURED = {
    "webConfig": {
        "tls": {"enabled": True, "secretName": "codex-sentinel-tls"},
        "basicAuthUsers": {"prometheus": HASH},
        "bearerTokens": {"ci": HASH},
    },
    "networkPolicy": {
        "enabled": True,
        "metricsFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
    },
    "app": {"ports": [{"name": "http", "containerPort": 8080}]},
    "serviceMonitor": {
        "enabled": True,
        "tlsConfig": {"ca": {"secret": {"name": "codex-sentinel-tls", "key": "ca.crt"}}, "serverName": "demo-codex-sentinel"},
        "basicAuth": {"username": {"name": "scrape-creds", "key": "user"}, "password": {"name": "scrape-creds", "key": "password"}},
    },
}

CRD_MODELS = {"ServiceMonitor": promop.ServiceMonitor, "PodMonitor": promop.PodMonitor}


def web_config(docs) -> dict:
    secret = next(d for d in by_kind(docs, "Secret") if d["metadata"]["name"].endswith("-web-config"))
    return yaml.safe_load(base64.b64decode(secret["data"]["web.yml"]))


def test_secured_render_validates_and_lints():
    docs = render(SECURED)
    for doc in docs:
        data = strip_source(doc)
        model = CRD_MODELS.get(data["kind"])
        if model:
            assert model.model_validate(data).model_dump(by_alias=True, exclude_unset=True, mode="json") == data
        else:
            kubernetes_validate.validate(data, KUBE_VERSION, strict=True)
    report = helm().lint(str(CHART), SECURED, strict=True, namespace="apps", kube_version="v" + KUBE_VERSION)
    assert not [m for m in report["messages"] if m["severity"] >= 2] and not report["errors"], report


def test_secured_pod_wiring():
    docs = render(SECURED)
    spec = pod_spec(one(docs, "Deployment"))
    agent = container(spec, AGENT)
    for probe in ("livenessProbe", "readinessProbe"):
        assert agent[probe]["httpGet"]["scheme"] == "HTTPS", agent[probe]
    mounts = {m["mountPath"]: m for m in agent["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    tls = mounts["/etc/codex-sentinel-tls"]
    assert tls["readOnly"] and volumes[tls["name"]]["secret"]["secretName"] == "codex-sentinel-tls"
    web = mounts["/etc/codex-sentinel-web"]
    assert volumes[web["name"]]["secret"]["secretName"] == "demo-codex-sentinel-web-config"
    assert configmap_json(docs)["healthMonitoring"]["endpoints"]["webConfigFile"] == "/etc/codex-sentinel-web/web.yml"
    assert web_config(docs) == {
        "tls_server_config": {"cert_file": "/etc/codex-sentinel-tls/tls.crt", "key_file": "/etc/codex-sentinel-tls/tls.key"},
        "basic_auth_users": {"prometheus": HASH},
        "bearer_tokens": {"ci": HASH},
    }
    # Hashes stay out of the ConfigMap.
    assert HASH not in json.dumps(one(docs, "ConfigMap"))
    endpoint = one(docs, "ServiceMonitor")["spec"]["endpoints"][0]
    assert endpoint["scheme"] == "https" and endpoint["basicAuth"]["username"]["name"] == "scrape-creds"
    policy = one(docs, "NetworkPolicy")["spec"]
    assert policy["podSelector"]["matchLabels"] == one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    assert policy["ingress"] == [
        {"ports": [{"port": 3000, "protocol": "TCP"}], "from": SECURED["networkPolicy"]["metricsFrom"]},
        {"ports": [{"port": 8080, "protocol": "TCP"}]},
    ]
    notes = render_files(SECURED)["codex-sentinel/templates/NOTES.txt"]
    assert "curl -s -k -u USER:PASSWORD https://localhost:3000/health/codex" in notes


def test_defaults_stay_plain_http_without_policy():
    docs = render()
    agent = container(pod_spec(one(docs, "Deployment")), AGENT)
    assert "scheme" not in agent["livenessProbe"]["httpGet"]  # HTTP, Kubernetes' default
    assert "webConfigFile" not in configmap_json(docs)["healthMonitoring"]["endpoints"]
    assert not by_kind(docs, "NetworkPolicy")
    assert not [d for d in by_kind(docs, "Secret") if d["metadata"]["name"].endswith("-web-config")]


@pytest.mark.parametrize(
    "values, message",
    [
        ({"webConfig": {"tls": {"enabled": True}}}, "webConfig.tls.secretName"),
        ({"networkPolicy": {"enabled": True}, "deployment": {"enabled": False}}, "networkPolicy.enabled needs deployment.enabled"),
        ({"webConfig": {"basicAuthUsers": {"prometheus": "plain-password"}}}, "/webConfig/basicAuthUsers/prometheus"),
    ],
)
def test_bad_values_are_refused(values, message):
    with pytest.raises(Exception) as e:
        render(values)
    assert message in str(e.value)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_binary_serves_the_rendered_web_config(sentinel_bin, tmp_path):
    """The rendered web.yml and monitoring.json, with the Secret mount paths moved into tmp_path,
    run by the real binary; curl checks TLS and credentials."""
    docs = render(SECURED)
    tls_dir = tmp_path / "tls"
    tls_dir.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", tls_dir / "tls.key", "-out", tls_dir / "tls.crt"],
        check=True, capture_output=True,
    )
    web = yaml.safe_dump(web_config(docs)).replace("/etc/codex-sentinel-tls", str(tls_dir))
    (tmp_path / "web.yml").write_text(web)
    cfg = configmap_json(docs)
    port = free_port()
    cfg["healthMonitoring"].update({"enabled": False})
    cfg["healthMonitoring"]["endpoints"].update({"host": "127.0.0.1", "port": port, "webConfigFile": str(tmp_path / "web.yml")})
    cfg["stateDir"] = str(tmp_path / "state")
    cfg["operationsLog"]["dir"] = str(tmp_path / "oplog")
    (tmp_path / "monitoring.json").write_text(json.dumps(cfg))
    agent = subprocess.Popen([str(sentinel_bin), "--config", str(tmp_path / "monitoring.json")], cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        def curl(path, *extra):
            r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(tls_dir / "tls.crt"),
                                *extra, f"https://localhost:{port}{path}"], capture_output=True, text=True)
            return r.stdout

        deadline = time.monotonic() + 20
        while curl("/readyz") != "200":
            assert agent.poll() is None, agent.stderr.read()
            assert time.monotonic() < deadline, "agent not ready over HTTPS"
            time.sleep(0.05)
        assert curl("/livez") == "200"
        assert curl("/health/codex") == "401"
        assert curl("/health/codex", "-u", "prometheus:wrong") == "401"
        assert curl("/health/codex", "-u", f"prometheus:{PASSWORD}") in ("200", "503")
        assert curl("/metrics", "-H", f"Authorization: Bearer {PASSWORD}") == "200"
    finally:
        agent.terminate()
        agent.wait(timeout=10)
