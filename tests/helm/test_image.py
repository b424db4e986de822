"""The agent's image, built here with podman (scripts/build-image) and run as a container: FROM
scratch with the static binary, non-root, no shell; its endpoints through a published port; a
missing Codex reported with its path; a clean stop; an OCI archive podman loads back."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import time

import pytest

from chartkit import CHART, REPO
from podkit import (
    free_port,
    get,
    health_check,
    host_uids,
    metric,
    podman,
    podman_env,
    wait_for,
)

import yaml

#: Where the chart points codex.executable when it copies Codex into the pod; absent here.
MISSING_CODEX = "/opt/codex/bin/codex"


@pytest.fixture
def container_name(request):
    """A name of this test's own; the container is removed whatever the outcome."""
    name = f"codex-sentinel-{request.node.name.replace('_', '-')[:40]}-{os.getpid()}"
    podman("rm", "--force", "--ignore", name)
    yield name
    podman("rm", "--force", "--ignore", name, check=False)


def test_image_is_static_non_root_without_shell(agent_image):
    (info,) = json.loads(podman("image", "inspect", agent_image).stdout)
    cfg = info["Config"]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    sc = values["agent"]["securityContext"]
    assert cfg["User"] == f"{sc['runAsUser']}:{sc['runAsGroup']}" == "65532:65532"
    assert cfg["Entrypoint"] == ["/usr/local/bin/codex-sentinel"]
    assert cfg["WorkingDir"] == "/home/nonroot"
    assert "3000/tcp" in cfg["ExposedPorts"]
    assert info["Labels"]["org.opencontainers.image.version"] == agent_image.rsplit(":", 1)[1]
    # Two layers: the root filesystem (binary, CA certificates, passwd/group, /tmp) and the
    # user's home. The binary's budget is 10 MiB (scripts/build-static); certificates add 0.2 MiB.
    assert len(info["RootFS"]["Layers"]) == 2
    assert info["Size"] < 11 * 1024 * 1024, info["Size"]

    # No shell to run: the entry point is the only program in the image.
    shell = podman("run", "--rm", "--entrypoint", "/bin/sh", agent_image, "-c", "true", check=False)
    assert shell.returncode != 0 and "no such file" in shell.stderr.lower(), shell.stderr
    # The binary itself runs and knows the version the tag carries.
    version = podman("run", "--rm", agent_image, "--version").stdout
    assert agent_image.rsplit(":", 1)[1] in version


def test_container_serves_reports_missing_codex_and_stops_cleanly(agent_image, container_name):
    port = free_port()
    podman(
        "run", "--detach", "--name", container_name,
        "--publish", f"127.0.0.1:{port}:3000",
        # In a container the agent must listen beyond its own loopback (its default).
        "--env", "CODEX_HEALTH_HOST=0.0.0.0",
        "--env", f"CODEX_EXECUTABLE={MISSING_CODEX}",
        agent_image,
    )
    pid = int(podman("inspect", "--format", "{{.State.Pid}}", container_name).stdout)
    assert host_uids(pid) == [65532] * 4, "the agent runs as the image's non-root user"

    assert wait_for("/livez through the published port", lambda: get(port, "/livez")) == (200, '{"status":"ok"}')
    assert wait_for("/readyz", lambda: get(port, "/readyz")[0] == 200 and get(port, "/readyz"))

    # Bad input: the Codex path does not exist. The agent keeps serving and says which path.
    check = wait_for("the availability check", lambda: health_check(port, "codex-availability"))
    assert check["status"] == "unavailable", check
    assert MISSING_CODEX in check["message"], check
    assert metric(get(port, "/metrics")[1], "codex_availability_status") == 0

    # podman stop sends SIGTERM; the agent must exit 0 well before the grace period's SIGKILL.
    grace = 10
    started = time.monotonic()
    podman("stop", "--time", str(grace), container_name)
    took = time.monotonic() - started
    state = json.loads(podman("inspect", "--format", "{{json .State}}", container_name).stdout)
    assert state["ExitCode"] == 0, (state, podman("logs", container_name).stderr)
    assert took < grace / 2, f"podman stop took {took:.1f}s: the agent did not stop on SIGTERM"
    logs = podman("logs", container_name).stderr
    assert "ermission denied" not in logs, logs


def test_oci_archive_loads_back(agent_image, tmp_path):
    archive = tmp_path / "codex-sentinel.oci.tar"
    result = subprocess.run(
        [str(REPO / "scripts" / "build-image"), "--oci-archive", str(archive)],
        cwd=REPO, env=podman_env(), capture_output=True, text=True, timeout=3600,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == agent_image

    # An OCI image layout: index.json → manifest → config with the image's user and entry point.
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        assert {"oci-layout", "index.json"} <= names, sorted(names)
        blob = lambda digest: json.load(tar.extractfile("blobs/" + digest.replace(":", "/")))  # noqa: E731
        (entry,) = json.load(tar.extractfile("index.json"))["manifests"]
        assert entry["annotations"]["org.opencontainers.image.ref.name"] == agent_image
        manifest = blob(entry["digest"])
        config = blob(manifest["config"]["digest"])
    assert config["config"]["User"] == "65532:65532"
    assert config["config"]["Entrypoint"] == ["/usr/local/bin/codex-sentinel"]
    assert config["architecture"] == "amd64" and config["os"] == "linux"

    # podman loads it back as the same image (what `skopeo copy oci-archive:…` pushes).
    built = podman("image", "inspect", "--format", "{{.Id}}", agent_image).stdout.strip()
    loaded = podman("load", "--input", str(archive)).stdout
    assert built[:12] in loaded or agent_image in loaded, loaded
    assert podman("image", "inspect", "--format", "{{.Id}}", agent_image).stdout.strip() == built


def test_codex_from_an_application_without_one_reports_the_path(agent_image, container_name):
    """codex.executableIn=application in a container of its own (no pod, no application
    process): the agent serves and reports the path unavailable, saying why."""
    port = free_port()
    podman(
        "run", "--detach", "--name", container_name, "--publish", f"127.0.0.1:{port}:3000",
        "--env", "CODEX_HEALTH_HOST=0.0.0.0",
        "--env", "CODEX_EXECUTABLE=/usr/local/bin/codex", "--env", "CODEX_EXECUTABLE_IN=application",
        agent_image,
    )
    check = wait_for("the availability check", lambda: health_check(port, "codex-availability"))
    assert check["status"] == "unavailable", check
    assert "/usr/local/bin/codex: no application process to find it in: the agent sees no other process" in check["message"], check
    assert get(port, "/readyz")[0] == 200
