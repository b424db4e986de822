"""The codex-sentinel chart, rendered by Helm's own engine, for the defaults and every preset and
option: lint clean in strict mode, every manifest valid for a current Kubernetes, the pod wired
as documented, and the rendered monitoring.json accepted by the real binary with the
environment the pod would get."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from cloudcoil.models.prometheus_operator import v1 as promop

from chartkit import (
    CHART,
    FIELD_VALUES,
    KUBE_VERSION,
    REPO,
    by_kind,
    configmap_json,
    container,
    helm,
    one,
    pod_env,
    pod_spec,
    render,
    render_files,
    run_sentinel,
    strip_source,
)

AGENT = "codex-sentinel"

#: Every preset and option worth a combination: (id, values, values of a user-managed Secret).
COMBINATIONS = [
    ("defaults", None, None),
    ("collector", {"export": {"preset": "collector"}}, None),
    (
        "collector-http",
        {"export": {"preset": "collector", "collector": {"endpoint": "http://otel.monitoring:4318", "protocol": "http/protobuf"}}},
        None,
    ),
    ("newrelic", {"export": {"preset": "newrelic"}, "secrets": {"newRelicLicenseKey": "nr-license-0123456789"}}, None),
    (
        "newrelic-eu-existing-secret",
        {"export": {"preset": "newrelic-eu"}, "existingSecret": "codex-keys"},
        {"NEW_RELIC_LICENSE_KEY": "eu-license-0123456789"},
    ),
    (
        "datadog-dogstatsd",
        {
            "export": {"preset": "datadog", "datadog": {"env": "prod", "service": "audit-api", "version": "1.4.2"}},
        },
        None,
    ),
    ("datadog-otlp", {"export": {"preset": "datadog", "datadog": {"mode": "otlp"}}}, None),
    (
        "datadog-socket-autodiscovery",
        {"export": {"preset": "datadog", "datadog": {"dogstatsdTransport": "socket", "env": "prod", "service": "audit-api", "version": "1.4.2", "autodiscovery": True}}},
        None,
    ),
    ("service-monitor", {"serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}}, "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}}}, None),
    ("pod-monitor-no-service", {"podMonitor": {"enabled": True, "interval": "15s"}, "service": {"enabled": False}}, None),
    (
        "alerting-all-secrets",
        {
            "config": {
                "alerting": {
                    "enabled": True,
                    "cooldown": 60000,
                    "webhook": {"format": "slack"},
                    "email": {"smtpHost": "smtp.example.com", "smtpPort": 587, "smtpUser": "alerts", "smtpFrom": "codex@example.com", "recipients": ["oncall@example.com"], "tls": "starttls"},
                }
            },
            "secrets": {
                "alertWebhookUrl": "https://hooks.slack.com/services/T000/B000/XXXXSECRET",
                "smtpPassword": "smtp-secret-password",
                "alertmanagerUrl": "http://alertmanager.monitoring:9093",
                "alertMaintenanceToken": "maintenance-token-0123456789",
                "alertWebhookHeaders": "X-Receiver-Key=receiver-key-0123456789",
                "newRelicLicenseKey": "nr-license-0123456789",
            },
        },
        None,
    ),
    ("existing-secret", {"existingSecret": "codex-keys"}, {"CODEX_ALERT_WEBHOOK_URL": "https://example.com/hook"}),
    ("codex-binary-copy", {"codexBinary": {"copyFrom": {"enabled": True}}}, None),
    (
        "codex-binary-copy-other-image",
        {"codexBinary": {"copyFrom": {"enabled": True, "image": {"repository": "registry.example.com/codex-cli", "tag": "0.171.0"}, "path": "/opt/codex/codex"}}},
        None,
    ),
    ("codex-from-application", {"codexBinary": {"fromApplication": {"enabled": True}}}, None),
    ("oplog-existing-claim", {"operationsLog": {"volume": {"type": "existingClaim", "existingClaim": "codex-logs"}}}, None),
    (
        "oplog-existing-volume",
        {
            "operationsLog": {"volume": {"type": "existingVolume", "name": "shared-logs"}, "appMountPath": "/srv/app/logs/codex"},
            "extraVolumes": [{"name": "shared-logs", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}],
        },
        None,
    ),
    ("sidecar-only", {"deployment": {"enabled": False}}, None),
    (
        # The README's "Try it" command line.
        "readme-try-it",
        {"app": {"image": {"repository": "registry.example.com/audit-api", "tag": "1.4.2"}, "command": None}, "codexBinary": {"copyFrom": {"enabled": True}}},
        None,
    ),
    (
        "tuned-config",
        {
            "agent": {"port": 9464, "logFormat": "text"},
            "service": {"port": 9464},
            "config": {
                "healthMonitoring": {"checkInterval": 60000, "retries": 2, "thresholds": {"minSuccessRate": 95, "maxMemoryUsage": 800}},
                "codex": {"maxRetries": 5, "probes": [{"name": "codex-login", "command": ["codex", "login", "status"], "failureStatus": "critical"}]},
                "processes": {"names": ["codex", "codex-linux"], "sampleInterval": 2000, "window": 600000},
                "operationsLog": {"backfill": True},
                "auditLog": {"enabled": True, "dir": "/var/lib/codex-sentinel/audit"},
                "baselines": {"p95Time": 20000, "successRate": 97.5},
                "logging": {"debug": True},
            },
        },
        None,
    ),
    (
        "overrides",
        {
            "fullnameOverride": "sentinel",
            "image": {"repository": "registry.example.com/codex-sentinel", "digest": "sha256:" + "ab" * 32},
            "deployment": {"podLabels": {"team": "audit"}, "podAnnotations": {"example.com/owner": "audit"}, "replicas": 2},
        },
        None,
    ),
]

IDS = [c[0] for c in COMBINATIONS]


@pytest.fixture(scope="module", params=COMBINATIONS, ids=IDS)
def case(request):
    name, values, existing = request.param
    return name, values, existing, render(values)


# ——— Kubernetes validity ——————————————————————————————————————————————————————————————————


#: Prometheus Operator kinds: not in Kubernetes' schemas; checked against the operator's own
#: generated models (which ignore unknown fields, so a round trip must give the input back).
CRD_MODELS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): promop.ServiceMonitor,
    ("monitoring.coreos.com/v1", "PodMonitor"): promop.PodMonitor,
    ("monitoring.coreos.com/v1", "PrometheusRule"): promop.PrometheusRule,
}


def test_every_manifest_validates(case):
    name, _, _, docs = case
    assert docs, "nothing rendered"
    for doc in docs:
        data = strip_source(doc)
        model = CRD_MODELS.get((data["apiVersion"], data["kind"]))
        if model:
            parsed = model.model_validate(data)
            assert parsed.model_dump(by_alias=True, exclude_unset=True, mode="json") == data, f"{doc['_source']}: fields the {data['kind']} schema does not know"
            continue
        problem = None
        try:
            kubernetes_validate.validate(data, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            problem = f"{doc['_source']} ({data['kind']}): {e.message} at {list(e.path)}"
        assert problem is None, problem


def test_lint_strict_is_clean(case):
    _, values, _, _ = case
    report = helm().lint(str(CHART), values, strict=True, namespace="apps", kube_version="v" + KUBE_VERSION)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems and not report["errors"], report


# ——— monitoring.json, judged by the binary ————————————————————————————————————————————————


def agent_container_and_env(docs, existing):
    deployments = by_kind(docs, "Deployment")
    if not deployments:
        return None, {}
    spec = pod_spec(deployments[0])
    agent = container(spec, AGENT if AGENT in [c["name"] for c in spec["containers"]] else spec["containers"][-1]["name"])
    return agent, pod_env(agent, docs, existing)


def effective_config(sentinel_bin, docs, existing, tmp_path):
    """`config validate` and `config show` with the rendered file, the container's args and the
    environment the kubelet would set. Returns the shown configuration as {key: value}."""
    cfg_file = tmp_path / "monitoring.json"
    cfg_file.write_text(one(docs, "ConfigMap")["data"]["monitoring.json"])
    agent, env = agent_container_and_env(docs, existing)
    args = ["--config", str(cfg_file)]
    if agent is not None:
        # The container's own arguments, with the ConfigMap's mount path swapped for the file.
        assert agent["args"][0] == "--config" and agent["args"][1].endswith("/monitoring.json"), agent["args"]
        args = ["--config", str(cfg_file), *agent["args"][2:]]
    result = run_sentinel(sentinel_bin, [*args, "config", "validate"], env, tmp_path)
    assert result.returncode == 0, f"config validate rejected the rendered monitoring.json:\n{result.stderr}\n{cfg_file.read_text()}\nenv={env}"
    shown = run_sentinel(sentinel_bin, [*args, "config", "show", "--format", "json"], env, tmp_path)
    assert shown.returncode == 0, shown.stderr
    return {k: v["value"] for k, v in json.loads(shown.stdout).items()}, env


def test_monitoring_json_is_accepted_by_the_binary(case, sentinel_bin, tmp_path):
    name, values, existing, docs = case
    values = values or {}
    cfg, _ = effective_config(sentinel_bin, docs, existing, tmp_path)
    agent = values.get("agent", {})
    # The keys the chart owns come out as the pod needs them.
    assert cfg["healthMonitoring.endpoints.host"] == "0.0.0.0"
    assert cfg["healthMonitoring.endpoints.port"] == agent.get("port", 3000)
    assert cfg["healthMonitoring.endpoints.enabled"] is True
    assert cfg["stateDir"] == "/var/lib/codex-sentinel"
    assert cfg["operationsLog.dir"] == "/var/log/codex"
    # The disk-usage check's limits are the volumes' sizeLimits (statvfs on an emptyDir would
    # report the node's disk): the operations log's emptyDir (256Mi), and the state volume's
    # (32Mi) when the audit files live on it. A claim's or the user's own volume: not known.
    volume = values.get("operationsLog", {}).get("volume", {})
    emptydir = volume.get("type", "emptyDir") == "emptyDir"
    assert cfg["operationsLog.sizeLimit"] == (256 * 2**20 if emptydir else None)
    audit = values.get("config", {}).get("auditLog", {})
    on_state_volume = audit.get("enabled") and audit.get("dir", "").startswith("/var/lib/codex-sentinel/")
    assert cfg["auditLog.sizeLimit"] == (32 * 2**20 if on_state_volume else None)
    assert cfg["logging.format"] == agent.get("logFormat", "json")
    # The user's own settings pass through untouched.
    for section, settings in values.get("config", {}).items():
        for key, value in flatten(settings, section).items():
            if key in cfg and not key.endswith(("url", "smtpPass", "apiKey")):
                assert includes(cfg[key], value), f"{key}: {cfg[key]!r} does not include {value!r}"


def includes(actual, expected) -> bool:
    """`expected` is `actual` with defaults left out (objects in lists gain default fields)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and includes(actual[k], v) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(map(includes, actual, expected))
    return actual == expected


def flatten(tree, prefix):
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}.{k}"))
        return out
    return {prefix: tree}


def test_presets_configure_the_exporters(sentinel_bin, tmp_path):
    """Each preset, as the binary sees it (file + the pod's environment)."""
    cases = {c[0]: c for c in COMBINATIONS}

    def cfg_of(name):
        _, values, existing = cases[name]
        d = tmp_path / name
        d.mkdir()
        return effective_config(sentinel_bin, render(values), existing, d)

    cfg, env = cfg_of("defaults")
    # config show resolves what the exporters will do: both off, nothing pushed anywhere.
    assert cfg["export.otlp.enabled"] is False and cfg["export.otlp.endpoint"] is None
    assert cfg["export.statsd.enabled"] is False and cfg["export.statsd.host"] is None
    assert "DD_AGENT_HOST" not in env

    cfg, _ = cfg_of("collector")
    assert (cfg["export.otlp.enabled"], cfg["export.otlp.preset"], cfg["export.otlp.protocol"]) == (True, "collector", "grpc")
    assert cfg["export.otlp.endpoint"] == "http://opentelemetry-collector.observability.svc.cluster.local:4317"

    cfg, _ = cfg_of("collector-http")
    assert (cfg["export.otlp.endpoint"], cfg["export.otlp.protocol"]) == ("http://otel.monitoring:4318", "http/protobuf")

    cfg, env = cfg_of("newrelic")
    assert (cfg["export.otlp.enabled"], cfg["export.otlp.preset"]) == (True, "newrelic")
    assert env["NEW_RELIC_LICENSE_KEY"] == "nr-license-0123456789"
    assert cfg["export.otlp.apiKey"] == "***redacted***"

    cfg, env = cfg_of("newrelic-eu-existing-secret")
    assert cfg["export.otlp.preset"] == "newrelic-eu"
    assert env["NEW_RELIC_LICENSE_KEY"] == "eu-license-0123456789"

    cfg, env = cfg_of("datadog-dogstatsd")
    assert env["DD_AGENT_HOST"] == FIELD_VALUES["status.hostIP"]
    assert (cfg["export.statsd.enabled"], cfg["export.statsd.host"], cfg["export.statsd.port"]) == (True, "192.0.2.10", 8125)
    assert (cfg["export.statsd.env"], cfg["export.statsd.service"], cfg["export.statsd.version"]) == ("prod", "audit-api", "1.4.2")
    assert cfg["export.statsd.entityId"] == FIELD_VALUES["metadata.uid"]
    assert "export.statsd.apiKey" not in cfg, "no Datadog API key setting: the agent sends through the node's agent"
    assert cfg["export.otlp.enabled"] is False

    cfg, env = cfg_of("datadog-otlp")
    assert (cfg["export.otlp.enabled"], cfg["export.otlp.preset"]) == (True, "datadog")
    assert cfg["export.otlp.endpoint"] == "http://192.0.2.10:4317"
    # DD_AGENT_HOST alone would switch DogStatsD on: the file turns it off explicitly.
    assert cfg["export.statsd.enabled"] is False

    cfg, _ = cfg_of("codex-binary-copy")
    assert cfg["codex.executable"] == "/opt/codex/bin/codex"


# ——— pod wiring and hardening ————————————————————————————————————————————————————————————


def test_pod_is_wired_and_hardened(case):
    name, values, _, docs = case
    values = values or {}
    deployments = by_kind(docs, "Deployment")
    if (values.get("deployment") or {}).get("enabled") is False:
        assert not deployments
        return
    spec = pod_spec(one(docs, "Deployment"))
    assert spec["shareProcessNamespace"] is True
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    names = [c["name"] for c in spec["containers"]]
    assert names == ["app", AGENT]

    for c in spec["containers"] + spec.get("initContainers", []):
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] is True, c["name"]
        assert sc["allowPrivilegeEscalation"] is False, c["name"]
        assert sc["readOnlyRootFilesystem"] is True, c["name"]
        assert sc["capabilities"]["drop"] == ["ALL"], c["name"]
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, c["name"]

    agent = container(spec, AGENT)
    port = (values.get("agent") or {}).get("port", 3000)
    assert agent["ports"] == [{"name": "http-metrics", "containerPort": port, "protocol": "TCP"}]
    assert agent["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http-metrics"}
    assert agent["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-metrics"}
    assert agent["resources"]["requests"] == {"cpu": "10m", "memory": "16Mi"}
    # With fromApplication the agent runs as the application's user (test_codex_from_application.py).
    as_app = bool(((values.get("codexBinary") or {}).get("fromApplication") or {}).get("enabled"))
    assert agent["securityContext"]["runAsUser"] == (1000 if as_app else 65532)
    env_names = [e["name"] for e in agent["env"]]
    for var in ["K8S_POD_NAME", "K8S_NAMESPACE_NAME", "K8S_NODE_NAME", "K8S_CONTAINER_NAME", "DD_ENTITY_ID"]:
        assert var in env_names, var
    assert len(env_names) == len(set(env_names)), env_names

    # Every mount has its volume; the state directory and /tmp are writable volumes.
    volumes = {v["name"]: v for v in spec["volumes"]}
    for c in spec["containers"] + spec.get("initContainers", []):
        for m in c.get("volumeMounts", []):
            assert m["name"] in volumes, f"{c['name']} mounts {m['name']}, which is no volume"
    mounts = {m["mountPath"]: m for m in agent["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/var/lib/codex-sentinel"]["name"]]
    assert not mounts["/var/lib/codex-sentinel"].get("readOnly")
    assert volumes[mounts["/etc/codex-sentinel"]["name"]]["configMap"]["name"] == one(docs, "ConfigMap")["metadata"]["name"]

    # The operations-log directory: one volume, written by the app, read by the agent.
    log_mount = mounts["/var/log/codex"]
    assert log_mount["readOnly"] is True
    app_mounts = [m for m in container(spec, "app")["volumeMounts"] if m["name"] == log_mount["name"]]
    assert len(app_mounts) == 1 and not app_mounts[0].get("readOnly")
    assert app_mounts[0]["mountPath"] == (values.get("operationsLog") or {}).get("appMountPath", "/app/logs/codex")
    kind = ((values.get("operationsLog") or {}).get("volume") or {}).get("type", "emptyDir")
    expected_source = {"emptyDir": "emptyDir", "existingClaim": "persistentVolumeClaim", "existingVolume": "emptyDir"}[kind]
    assert expected_source in volumes[log_mount["name"]]

    # The config checksum rolls the pod when monitoring.json changes.
    annotations = one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert re.fullmatch(r"[0-9a-f]{64}", annotations["checksum/codex-sentinel-config"])


def test_service_and_monitors_select_the_agent(case):
    name, values, _, docs = case
    values = values or {}
    services = by_kind(docs, "Service")
    deployments = by_kind(docs, "Deployment")
    assert len(services) == (0 if (values.get("service") or {}).get("enabled") is False else 1)
    pod_labels = deployments[0]["spec"]["template"]["metadata"]["labels"] if deployments else None
    if deployments:
        selector = deployments[0]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod_labels.items()
    for svc in services:
        assert svc["spec"]["ports"][0]["targetPort"] == "http-metrics"
        if pod_labels is not None:
            assert svc["spec"]["selector"].items() <= pod_labels.items()
    for sm in by_kind(docs, "ServiceMonitor"):
        assert sm["spec"]["selector"]["matchLabels"].items() <= services[0]["metadata"]["labels"].items()
        assert sm["spec"]["endpoints"][0]["port"] == services[0]["spec"]["ports"][0]["name"]
        assert sm["spec"]["endpoints"][0]["path"] == "/metrics"
        assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    for pm in by_kind(docs, "PodMonitor"):
        assert pm["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        assert pm["spec"]["podMetricsEndpoints"][0] == {"port": "http-metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}
    expect_sm = bool((values.get("serviceMonitor") or {}).get("enabled"))
    expect_pm = bool((values.get("podMonitor") or {}).get("enabled"))
    assert len(by_kind(docs, "ServiceMonitor")) == int(expect_sm)
    assert len(by_kind(docs, "PodMonitor")) == int(expect_pm)


def test_secrets_stay_out_of_the_configmap(case):
    name, values, _, docs = case
    values = values or {}
    given = {k: v for k, v in (values.get("secrets") or {}).items() if v}
    cm_text = yaml.safe_dump(strip_source(one(docs, "ConfigMap")))
    for v in given.values():
        assert v not in cm_text
    secrets = by_kind(docs, "Secret")
    if values.get("existingSecret") or not given:
        assert not secrets
    else:
        import base64

        data = {k: base64.b64decode(v).decode() for k, v in one(docs, "Secret")["data"].items()}
        expected = {
            "alertWebhookUrl": "CODEX_ALERT_WEBHOOK_URL",
            "smtpPassword": "CODEX_ALERT_SMTP_PASS",
            "alertmanagerUrl": "CODEX_ALERTMANAGER_URL",
            "alertMaintenanceToken": "CODEX_ALERT_MAINTENANCE_TOKEN",
            "alertWebhookHeaders": "CODEX_ALERT_WEBHOOK_HEADERS",
            "newRelicLicenseKey": "NEW_RELIC_LICENSE_KEY",
        }
        assert data == {expected[k]: v for k, v in given.items()}


def test_init_container_copies_the_codex_binary():
    spec = pod_spec(one(render({"codexBinary": {"copyFrom": {"enabled": True}}}), "Deployment"))
    (init,) = spec["initContainers"]
    assert init["image"] == "node:22-bookworm-slim", "defaults to the application image"
    assert init["command"][0] == "cp" and init["command"][-1] == "/codex-bin/codex"
    agent_mount = next(m for m in container(spec, AGENT)["volumeMounts"] if m["name"] == "codex-sentinel-codex-bin")
    assert agent_mount == {"name": "codex-sentinel-codex-bin", "mountPath": "/opt/codex/bin", "readOnly": True}
    assert spec["initContainers"][0]["volumeMounts"][0]["name"] == "codex-sentinel-codex-bin"


def test_image_tag_defaults_to_the_app_version():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    cargo = tomllib.loads((REPO / "Cargo.toml").read_text())
    assert chart["appVersion"] == cargo["package"]["version"], "Chart.yaml appVersion follows Cargo.toml"
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    assert '{{- define "codex-sentinel.appVersion" -}}' + chart["appVersion"] + "{{- end }}" in helpers
    agent = container(pod_spec(one(render(), "Deployment")), AGENT)
    assert agent["image"] == f"localhost/codex-sentinel:{chart['appVersion']}", "the default is what scripts/build-image tags"
    agent = container(pod_spec(one(render({"image": {"digest": "sha256:" + "ab" * 32}}), "Deployment")), AGENT)
    assert agent["image"] == "localhost/codex-sentinel@sha256:" + "ab" * 32


# ——— values that must be refused, with a message that says why ————————————————————————————


SCHEMA_REJECTIONS = [
    ({"export": {"preset": "prometheus"}}, "at '/export/preset': value must be one of 'none', 'collector', 'newrelic', 'newrelic-eu', 'datadog'"),
    ({"export": {"datadog": {"mode": "agent"}}}, "at '/export/datadog/mode': value must be one of 'dogstatsd', 'otlp'"),
    ({"agent": {"port": 70000}}, "at '/agent/port': maximum: got 70,000, want 65,535"),
    ({"agent": {"port": "3000"}}, "at '/agent/port': got string, want integer"),
    ({"sevice": {"enabled": False}}, "additional properties 'sevice' not allowed"),
    ({"config": {"healthMonitoring": {"checkIntervall": 5000}}}, "at '/config/healthMonitoring': additional properties 'checkIntervall' not allowed"),
    ({"config": {"healthMonitoring": {"checkInterval": "30s"}}}, "at '/config/healthMonitoring/checkInterval': got string, want integer"),
    ({"config": {"healthMonitoring": {"thresholds": {"minSuccessRate": 120}}}}, "at '/config/healthMonitoring/thresholds/minSuccessRate': maximum: got 120, want 100"),
    ({"config": {"logging": {"format": "yaml"}}}, "at '/config/logging/format': value must be one of 'text', 'json'"),
    ({"config": {"export": {"otlp": {"protocol": "http"}}}}, "at '/config/export/otlp/protocol': value must be one of"),
    ({"operationsLog": {"volume": {"type": "hostPath"}}}, "at '/operationsLog/volume/type': value must be one of 'emptyDir', 'existingClaim', 'existingVolume'"),
    ({"image": {"digest": "latest"}}, "at '/image/digest'"),
    ({"serviceMonitor": {"interval": "30 seconds"}}, "at '/serviceMonitor/interval'"),
    ({"agent": {"stateDir": {"mountPath": "state"}}}, "at '/agent/stateDir/mountPath'"),
]


@pytest.mark.parametrize("values,message", SCHEMA_REJECTIONS, ids=[m.split(":")[0] for _, m in SCHEMA_REJECTIONS])
def test_schema_rejects_wrong_values(values, message):
    h = helm()
    with pytest.raises(h.HelmValuesError) as err:
        render(values)
    assert message in str(err.value)
    # `helm lint` reports the same problem as an error.
    report = h.lint(str(CHART), values, strict=True)
    assert any(message in e for e in report["errors"]), report


TEMPLATE_REJECTIONS = [
    ({"export": {"preset": "newrelic"}}, "export.preset=newrelic needs the license key: set secrets.newRelicLicenseKey or existingSecret"),
    ({"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}}, "enable serviceMonitor or podMonitor, not both"),
    ({"serviceMonitor": {"enabled": True}, "service": {"enabled": False}}, "serviceMonitor.enabled needs service.enabled"),
    ({"existingSecret": "keys", "secrets": {"smtpPassword": "x"}}, 'secrets.smtpPassword is set together with existingSecret "keys"'),
    ({"operationsLog": {"volume": {"type": "existingClaim"}}}, "operationsLog.volume.type=existingClaim needs operationsLog.volume.existingClaim"),
    ({"operationsLog": {"volume": {"type": "existingVolume"}}}, 'needs a volume named "codex-operations-log" in extraVolumes'),
    ({"config": {"alerting": {"webhook": {"url": "https://hooks.slack.com/services/T/B/X"}}}}, "config.alerting.webhook.url is a secret and would land in a ConfigMap: set secrets.alertWebhookUrl"),
    ({"config": {"export": {"otlp": {"apiKey": "k"}}}}, "config.export.otlp.apiKey is a secret and would land in a ConfigMap: set secrets.newRelicLicenseKey"),
    ({"codexBinary": {"copyFrom": {"enabled": True}}, "deployment": {"enabled": False}}, "codexBinary.copyFrom.image.repository is needed when deployment.enabled is false"),
    ({"codexBinary": {"copyFrom": {"enabled": True}, "fromApplication": {"enabled": True}}}, "enable codexBinary.fromApplication or codexBinary.copyFrom, not both"),
]


@pytest.mark.parametrize("values,message", TEMPLATE_REJECTIONS, ids=[m.split(":")[0][:40] for _, m in TEMPLATE_REJECTIONS])
def test_inconsistent_values_fail_with_a_reason(values, message):
    h = helm()
    with pytest.raises(h.HelmRenderError) as err:
        render(values)
    assert message in str(err.value)


def schema_leaves(node, prefix=""):
    props = node.get("properties")
    if not props:
        return {prefix}
    out = set()
    for k, v in props.items():
        out |= schema_leaves(v, f"{prefix}.{k}" if prefix else k)
    return out


def test_schema_config_matches_the_binary(sentinel_bin, tmp_path):
    """values.schema.json's `config` lists exactly the keys the binary knows: a typo fails at
    install, and a new key in src/config needs the schema too."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    shown = run_sentinel(sentinel_bin, ["config", "show", "--format", "json"], {}, tmp_path)
    assert shown.returncode == 0, shown.stderr
    binary_keys = set(json.loads(shown.stdout))
    assert schema_leaves(schema["properties"]["config"]) == binary_keys


def test_chart_defaults_satisfy_the_schema():
    h = helm()
    with h.Chart.load(str(CHART)) as ch:
        ch.validate_schema(None)
        assert ch.schema is not None
        assert ch.metadata["apiVersion"] == "v2"


@pytest.mark.parametrize(
    "values,warns",
    [
        (None, True),
        ({"codexBinary": {"copyFrom": {"enabled": True}}}, False),
        ({"codexBinary": {"fromApplication": {"enabled": True}}}, False),
        ({"config": {"codex": {"executable": "/opt/tools/codex"}}}, False),
        ({"config": {"healthMonitoring": {"enabled": False}}}, False),
    ],
    ids=["no-codex-binary", "copy-from", "from-application", "own-executable", "probes-off"],
)
def test_install_notes_warn_when_the_probe_has_no_codex(values, warns):
    notes = render_files(values)["codex-sentinel/templates/NOTES.txt"]
    assert "kubectl -n apps port-forward svc/demo-codex-sentinel 3000" in notes
    assert ("WARNING: the availability probe runs `codex` inside the agent container" in notes) == warns


def test_install_notes_say_how_to_push_the_local_image():
    notes = render_files({})["codex-sentinel/templates/NOTES.txt"]
    assert "The agent's image is localhost/codex-sentinel:0.1.0: a local build (scripts/build-image)" in notes
    assert "--set image.repository=REGISTRY/codex-sentinel" in notes
    pushed = render_files({"image": {"repository": "registry.example.com/tools/codex-sentinel"}})
    assert "scripts/build-image" not in pushed["codex-sentinel/templates/NOTES.txt"]


def test_prometheus_rule_ships_the_rules_file_unchanged(case):
    """The PrometheusRule holds exactly the groups of prometheus/alerts.yml (which promtool
    checks and unit-tests in tests/prometheus_rules.rs), and only when enabled."""
    name, values, _, docs = case
    values = values or {}
    rules = by_kind(docs, "PrometheusRule")
    enabled = bool((values.get("prometheusRule") or {}).get("enabled"))
    assert len(rules) == int(enabled)
    shipped = (REPO / "prometheus" / "alerts.yml").read_text()
    assert (CHART / "files" / "alerts.yml").read_text() == shipped, "helm/codex-sentinel/files/alerts.yml must be a copy of prometheus/alerts.yml"
    for rule in rules:
        assert strip_source(rule)["spec"] == yaml.safe_load(shipped)
        assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
