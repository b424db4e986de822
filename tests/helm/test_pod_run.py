"""The agent run the way the chart's pod runs it: the rendered monitoring.json, the container's
arguments and environment, the chart's user (65532) with no writable path but its state
volume, and the probe pointed at Codex's own static binary (what codexBinary.copyFrom copies).
The kubelet's probes, /livez and /readyz, must answer 200."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from chartkit import REPO, container, one, pod_env, pod_spec, render

#: The Codex CLI's static binary from the npm package that scripts/setup.d/10-codex.sh installs.
CODEX_STATIC = REPO / ".tools/codex/node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.fixture
def pod_dir():
    """A directory the chart's user can traverse (pytest's own tmp_path is private to root)."""
    d = Path(tempfile.mkdtemp(prefix="codex-sentinel-pod-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_agent_runs_as_the_pod_runs_it(sentinel_bin, pod_dir):
    assert os.geteuid() == 0, "this test switches to the chart's user 65532 with setpriv: run it as root (as CI does)"
    assert shutil.which("setpriv"), "setpriv (util-linux) is needed to run as the chart's user"
    assert CODEX_STATIC.is_file(), f"{CODEX_STATIC} missing: run scripts/setup.d/10-codex.sh"

    docs = render({"codexBinary": {"copyFrom": {"enabled": True}}})
    spec = pod_spec(one(docs, "Deployment"))
    agent = container(spec, "codex-sentinel")
    uid = agent["securityContext"]["runAsUser"]
    gid = agent["securityContext"]["runAsGroup"]
    cfg = json.loads(one(docs, "ConfigMap")["data"]["monitoring.json"])

    # The pod's volumes, as directories: the state volume writable by the agent's user, the
    # operations log read-only for it (the app writes it), the copied Codex binary.
    state = pod_dir / "state"
    state.mkdir()
    os.chown(state, uid, gid)
    oplog = pod_dir / "oplog"
    oplog.mkdir(mode=0o755)
    assert cfg["stateDir"] == "/var/lib/codex-sentinel" and cfg["operationsLog"]["dir"] == "/var/log/codex"
    assert cfg["codex"]["executable"] == "/opt/codex/bin/codex"
    port = free_port()
    cfg["stateDir"] = str(state)
    cfg["operationsLog"]["dir"] = str(oplog)
    cfg["codex"]["executable"] = str(CODEX_STATIC)
    cfg["healthMonitoring"]["endpoints"]["port"] = port
    cfg_file = pod_dir / "monitoring.json"
    cfg_file.write_text(json.dumps(cfg))
    cfg_file.chmod(0o644)

    args = ["--config", str(cfg_file), *agent["args"][2:]]
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", **pod_env(agent, docs)}
    proc = subprocess.Popen(
        ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--no-new-privs", "--", str(sentinel_bin), *args],
        cwd="/",  # not writable for the agent's user, like the read-only root filesystem
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        ready = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                ready = get(port, "/readyz")
            except OSError:
                ready = None
            if ready and ready[0] == 200:
                break
            time.sleep(0.2)
        assert ready == (200, '{"status":"ready"}'), f"not ready: {ready}; exit={proc.poll()}"
        assert get(port, "/livez") == (200, '{"status":"ok"}')

        # The probe ran the static Codex binary as the agent's user.
        deadline = time.monotonic() + 30
        health = {}
        while time.monotonic() < deadline:
            status, body = get(port, "/health/codex")
            health = json.loads(body)
            # The check exists from the first snapshot as a placeholder: wait for the probe's verdict.
            if any(
                c["name"] == "codex-availability" and c["message"] != "Waiting for the first availability probe"
                for c in health.get("checks", [])
            ):
                break
            time.sleep(0.2)
        check = next(c for c in health["checks"] if c["name"] == "codex-availability")
        assert check["status"] == "healthy", check
        status, metrics = get(port, "/metrics")
        assert status == 200 and "codex_availability_status 1" in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    assert proc.returncode == 0, f"exit {proc.returncode}\n{err}"
    logs = out + err
    assert "ermission denied" not in logs and "Read-only" not in logs, logs
    # JSON logs (agent.logFormat) on stderr: every line parses.
    for line in err.splitlines():
        if line.strip():
            json.loads(line)
