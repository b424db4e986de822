"""Shared machinery of the container tests (test_image.py, test_pod_play.py): podman with the
project's containers.conf, the agent's image (scripts/build-image) and the Codex application
image (tests/helm/codex-app), each built once per session and cached by content.

Peers: Debian's podman 4.3 with runc and busybox-static (scripts/setup.d/55-podman.sh), the real
Codex CLI's static binary from npm (scripts/setup.d/10-codex.sh). podman needs root here."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, TypeVar

import pytest

from chartkit import REPO

CONTAINERS_CONF = REPO / "scripts" / "podman" / "containers.conf"
CODEX_APP = Path(__file__).resolve().parent / "codex-app"
#: The Codex CLI's static musl binary from the npm package scripts/setup.d/10-codex.sh installs.
CODEX_STATIC = REPO / ".tools/codex/node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex"
BUSYBOX = Path("/bin/busybox")
#: Applets the application image links to busybox: the workload's and the chart's init container's.
BUSYBOX_APPLETS = ["sh", "cp", "cat", "date", "echo", "kill", "ls", "mkdir", "printf", "ps", "sleep", "timeout", "awk"]

T = TypeVar("T")


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def podman(*args: str, check: bool = True, timeout: float = 300, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Runs podman with the project's containers.conf; on failure the error names the command."""
    result = subprocess.run(
        ["podman", *args], env=podman_env(), capture_output=True, text=True, timeout=timeout, cwd=cwd
    )
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def require_podman() -> None:
    assert os.geteuid() == 0, "the container tests run podman as root (as CI does)"
    assert shutil.which("podman"), "podman missing: run scripts/setup.d/55-podman.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str, timeout: float = 5) -> tuple[int, str]:
    """GET http://127.0.0.1:port/path: (status, body); connection errors raise OSError."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60, interval: float = 0.25) -> T:
    """Polls `probe` until it returns something truthy (the event that proves the point); fails
    with `what` and the last exception after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
        except (OSError, ValueError, KeyError, StopIteration) as e:
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last!r})")


def health_check(port: int, name: str) -> dict | None:
    """The named check of /health/codex, once the agent has run it: None before, including
    while the availability check still holds its placeholder (present from the first
    snapshot, before the first probe's verdict)."""
    _, body = get(port, "/health/codex")
    check = next((c for c in json.loads(body).get("checks", []) if c["name"] == name), None)
    if check is None or check["message"].startswith(PLACEHOLDER_PREFIX):
        return None
    return check


# What the availability check says until the first probe has run (src/monitor/health.rs).
PLACEHOLDER_PREFIX = "Waiting for the first"


def metric(text: str, name: str) -> float | None:
    """Value of an unlabelled sample `name` in Prometheus exposition text."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def host_uids(pid: int) -> list[int]:
    """Real, effective, saved and filesystem uid of a host process (/proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return [int(x) for x in line.split()[1:]]
    raise AssertionError(f"no Uid line in /proc/{pid}/status")


def cargo_version() -> str:
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--no-deps"],
            cwd=REPO, check=True, capture_output=True, text=True,
        ).stdout
    )
    return next(p["version"] for p in meta["packages"] if p["name"] == "codex-sentinel")


@pytest.fixture(scope="session")
def agent_image() -> str:
    """localhost/codex-sentinel:<version>, built by scripts/build-image (cargo's own cache keeps
    a rebuild cheap when nothing changed)."""
    require_podman()
    result = subprocess.run(
        [str(REPO / "scripts" / "build-image")], cwd=REPO, env=podman_env(), capture_output=True, text=True, timeout=3600
    )
    assert result.returncode == 0, f"scripts/build-image failed:\n{result.stderr}"
    ref = result.stdout.strip().splitlines()[-1]
    assert ref == f"localhost/codex-sentinel:{cargo_version()}"
    return ref


@pytest.fixture(scope="session")
def codex_app_image() -> str:
    """The application image (tests/helm/codex-app): tagged by a hash of everything in it, so it
    is built once and reused until the workload, the Containerfile or Codex changes."""
    require_podman()
    assert CODEX_STATIC.is_file(), f"{CODEX_STATIC} missing: run scripts/setup.d/10-codex.sh"
    assert BUSYBOX.is_file(), f"{BUSYBOX} missing: run scripts/setup.d/55-podman.sh (busybox-static)"
    digest = hashlib.sha256()
    for f in [CODEX_APP / "Containerfile", CODEX_APP / "workload.sh", BUSYBOX]:
        digest.update(f.read_bytes())
    stat = CODEX_STATIC.stat()  # 300 MB: its size and mtime stand for its content
    digest.update(f"{stat.st_size}:{stat.st_mtime_ns}:{','.join(BUSYBOX_APPLETS)}".encode())
    ref = f"localhost/codex-sentinel-test-app:{digest.hexdigest()[:16]}"
    if podman("image", "exists", ref, check=False).returncode == 0:
        return ref
    with tempfile.TemporaryDirectory() as ctx:
        root = Path(ctx) / "rootfs"
        (root / "bin").mkdir(parents=True)
        (root / "usr/local/bin").mkdir(parents=True)
        (Path(ctx) / "app" / "logs" / "codex").mkdir(parents=True)
        (Path(ctx) / "app" / "codex-home").mkdir()
        shutil.copy2(BUSYBOX, root / "bin/busybox")
        for applet in BUSYBOX_APPLETS:
            (root / "bin" / applet).symlink_to("busybox")
        shutil.copy2(CODEX_STATIC, root / "usr/local/bin/codex")
        shutil.copy2(CODEX_APP / "workload.sh", root / "usr/local/bin/workload.sh")
        shutil.copy2(CODEX_APP / "Containerfile", Path(ctx) / "Containerfile")
        podman("build", "--quiet", "-t", ref, ctx, timeout=900)
    return ref
