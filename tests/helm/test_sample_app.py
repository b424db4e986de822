"""The named templates in a user's own chart: tests/helm/sample-app has codex-sentinel as a
dependency and includes `codex-sentinel.container`, `.volumes`, `.initContainers`,
`.appVolumeMounts`, `.selectorLabels` and `.podAnnotations` in its pod spec, as the chart's
README shows."""

from __future__ import annotations

import shutil

import kubernetes_validate
import pytest

from chartkit import (
    CHART,
    KUBE_VERSION,
    SAMPLE_APP,
    by_kind,
    container,
    helm,
    one,
    pod_env,
    pod_spec,
    render,
    run_sentinel,
    strip_source,
)


@pytest.fixture(scope="module")
def sample_chart(tmp_path_factory):
    """The sample chart with its dependency in charts/, as `helm dependency build` leaves it."""
    root = tmp_path_factory.mktemp("sample") / "sample-app"
    shutil.copytree(SAMPLE_APP, root)
    shutil.copytree(CHART, root / "charts" / "codex-sentinel")
    return root


@pytest.fixture(scope="module")
def docs(sample_chart):
    return render(chart=sample_chart, name="audit")


def test_pod_has_both_containers_and_one_pid_namespace(docs):
    deployments = by_kind(docs, "Deployment")
    assert [d["metadata"]["name"] for d in deployments] == ["audit-audit-api"], "the dependency renders no Deployment of its own"
    spec = pod_spec(deployments[0])
    assert spec["shareProcessNamespace"] is True
    assert [c["name"] for c in spec["containers"]] == ["audit-api", "codex-sentinel"]
    assert [c["name"] for c in spec["initContainers"]] == ["codex-sentinel-copy-codex"]
    assert spec["initContainers"][0]["image"] == "registry.example.com/audit-api:1.4.2"

    agent = container(spec, "codex-sentinel")
    assert agent["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert agent["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert agent["securityContext"]["readOnlyRootFilesystem"] is True

    # The shared operations-log directory: the app's mount and the agent's are one volume.
    app_mount = container(spec, "audit-api")["volumeMounts"][0]
    assert app_mount == {"name": "codex-operations-log", "mountPath": "/srv/audit-api/logs/codex"}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes["codex-operations-log"]
    for c in spec["containers"] + spec["initContainers"]:
        for m in c.get("volumeMounts", []):
            assert m["name"] in volumes, f"{c['name']} mounts {m['name']}, which is no volume"


def test_names_agree_between_the_pod_and_the_dependency(docs):
    spec = pod_spec(one(docs, "Deployment"))
    cm = one(docs, "ConfigMap")
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["codex-sentinel-config"]["configMap"]["name"] == cm["metadata"]["name"] == "audit-codex-sentinel-config"
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["app.kubernetes.io/name"] == "audit-api", "the application keeps its own labels"
    svc = one(docs, "Service")
    assert svc["spec"]["selector"].items() <= pod_labels.items()


def test_every_manifest_validates(docs):
    for doc in docs:
        problem = None
        try:
            kubernetes_validate.validate(strip_source(doc), KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            problem = f"{doc['_source']}: {e.message} at {list(e.path)}"
        assert problem is None, problem


def test_lint_strict_is_clean(sample_chart):
    report = helm().lint(str(sample_chart), None, strict=True, with_subcharts=True, kube_version="v" + KUBE_VERSION)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems and not report["errors"], report


def test_monitoring_json_is_accepted_by_the_binary(docs, sentinel_bin, tmp_path):
    cfg_file = tmp_path / "monitoring.json"
    cfg_file.write_text(one(docs, "ConfigMap")["data"]["monitoring.json"])
    agent = container(pod_spec(one(docs, "Deployment")), "codex-sentinel")
    env = pod_env(agent, docs)
    args = ["--config", str(cfg_file), *agent["args"][2:]]
    result = run_sentinel(sentinel_bin, [*args, "config", "validate"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    shown = run_sentinel(sentinel_bin, [*args, "config", "show", "--format", "json"], env, tmp_path)
    import json

    cfg = {k: v["value"] for k, v in json.loads(shown.stdout).items()}
    assert cfg["codex.executable"] == "/opt/codex/bin/codex"
    assert cfg["export.otlp.preset"] == "collector"
    assert cfg["healthMonitoring.endpoints.host"] == "0.0.0.0"


def test_named_templates_work_under_an_alias(sample_chart, tmp_path):
    """The README's alias form: values under the alias, passed as (dict "Values" … "Release" …)."""
    root = tmp_path / "sample-app"
    shutil.copytree(sample_chart, root)
    chart_yaml = (root / "Chart.yaml").read_text()
    (root / "Chart.yaml").write_text(chart_yaml.replace("    version: 0.1.0\n    repository", "    version: 0.1.0\n    alias: sentinel\n    repository"))
    values = (root / "values.yaml").read_text()
    (root / "values.yaml").write_text(values.replace("\ncodex-sentinel:\n", "\nsentinel:\n"))
    deployment = root / "templates" / "deployment.yaml"
    text = deployment.read_text()
    for name in ["selectorLabels", "podAnnotations", "initContainers", "appVolumeMounts", "container", "volumes"]:
        text = text.replace(f'include "codex-sentinel.{name}" .', f'include "codex-sentinel.{name}" (dict "Values" .Values.sentinel "Release" .Release)')
    assert text.count(".Values.sentinel") == 6
    deployment.write_text(text)

    docs = render(chart=root, name="audit")
    spec = pod_spec(one(docs, "Deployment"))
    assert [c["name"] for c in spec["containers"]] == ["audit-api", "codex-sentinel"]
    assert spec["initContainers"][0]["image"] == "registry.example.com/audit-api:1.4.2"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["codex-sentinel-config"]["configMap"]["name"] == one(docs, "ConfigMap")["metadata"]["name"]


def test_readme_example_is_the_sample_chart():
    """Every include line of the README's pod-template example is in the sample chart, which the
    tests above render and validate: the copy-paste example stays a working one."""
    readme = (CHART / "README.md").read_text()
    block = next(b for b in readme.split("```yaml")[1:] if 'include "codex-sentinel.container"' in b).split("```")[0]
    sample = (SAMPLE_APP / "templates" / "deployment.yaml").read_text()
    sample_lines = {line.split("#")[0].strip() for line in sample.splitlines()}
    includes = [line.split("#")[0].strip() for line in block.splitlines() if "include" in line or "shareProcessNamespace" in line]
    assert len(includes) == 7, includes
    for line in includes:
        assert line in sample_lines, f"README line not in tests/helm/sample-app: {line}"
