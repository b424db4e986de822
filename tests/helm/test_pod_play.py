"""The chart played as a pod with `podman kube play`: the chart's Deployment (Helm's engine)
with the application image of tests/helm/codex-app (the real Codex CLI and a workload writing
the operations log) and the agent's image from scripts/build-image, beside each other as the
chart lays them out (shared process namespace, shared operations-log volume, Codex copied by the
init container of codexBinary.copyFrom).

The Datadog preset pushes DogStatsD to "the node's agent": here Etsy's StatsD daemon on the host
(npm `statsd`, scripts/setup.d/40-export-peers.sh), reached from the pod at the podman network's
gateway, the address the pod sees its node at.

podman 4.3 is not a kubelet. The rendered YAML is changed only where podman cannot follow it,
and `podman_rewrites` lists each change (the test asserts that list, so a chart change that
adds another shows up here):
- fieldRefs other than metadata.name/uid/labels/annotations (metadata.namespace, spec.nodeName,
  status.hostIP) make `kube play` fail: they become literal values (status.hostIP: the podman
  network's gateway, where the StatsD daemon listens);
- httpGet liveness probes become a podman healthcheck `curl … || exit 1` run by a shell inside
  the container (the agent's image has neither) on systemd timers (none here); readiness probes
  are ignored: both are dropped and this test calls /livez and /readyz through the hostPort;
- the agent's port gets a hostPort (a cluster reaches it through the Service, which podman
  does not play);
- podman applies the pod's restartPolicy (a Deployment's is Always) to init containers too (only
  rewritten when the pod has one): the
  one that copies Codex is restarted again and again (RestartCount 81 in a minute), the agent's
  probe then meets a binary being rewritten ("Text file busy"), and podman fails to remove the
  finished init container ("cannot remove container … as it is running"): restartPolicy becomes
  OnFailure;
- podman ignores fsGroup and hands an empty volume to the user of one of the containers that
  mount it, not always the same: the shared operations-log emptyDir went to the agent (65532) in one run and to the
  application (1000) in another: it becomes a hostPath directory owned by the application's user,
  which is what fsGroup's group-writable emptyDir gives the application in a cluster."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from chartkit import FIELD_VALUES, REPO, container, one, pod_spec, render, strip_source
from podkit import CODEX_STATIC, free_port, get, health_check, host_uids, metric, podman, wait_for

#: fieldRefs podman 4.3's kube play resolves (its downward API).
PODMAN_FIELD_REFS = {"metadata.name", "metadata.uid", "metadata.labels", "metadata.annotations"}
AGENT = "codex-sentinel"
APP = "app"


def podman_rewrites(deployment: dict, host_port: int, oplog_dir: Path, node_ip: str) -> list[str]:
    """Changes `deployment` in place so podman 4.3 plays it; returns what it changed."""
    fields = {**FIELD_VALUES, "status.hostIP": node_ip}
    done: list[str] = []
    template = deployment["spec"]["template"]
    spec = template["spec"]
    for c in spec.get("initContainers", []) + spec["containers"]:
        for e in c.get("env", []):
            field = e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
            if field and field not in PODMAN_FIELD_REFS:
                e.pop("valueFrom")
                e["value"] = fields[field]
                done.append(f"{c['name']}: {e['name']} fieldRef {field} -> literal")
        for probe in ["livenessProbe", "readinessProbe"]:
            if probe in c:
                assert "httpGet" in c.pop(probe), f"{c['name']}: only httpGet probes are expected"
                done.append(f"{c['name']}: {probe} httpGet dropped")
    for port in container(spec, AGENT)["ports"]:
        port["hostPort"] = host_port
        done.append(f"{AGENT}: hostPort {host_port}")
    if spec.get("initContainers"):
        spec["restartPolicy"] = "OnFailure"
        done.append("pod: restartPolicy OnFailure")
    for v in spec["volumes"]:
        if v["name"] == "codex-operations-log":
            v.pop("emptyDir")
            v["hostPath"] = {"path": str(oplog_dir), "type": "Directory"}
            done.append(f"volume {v['name']}: emptyDir -> hostPath")
    return done


def start_time(pid: int) -> str:
    """Start time of a host process (jiffies after boot): a reused PID has another."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


def pod_processes(member_pid: int) -> dict[int, str]:
    """Host PID → start time of every process in the PID namespace of `member_pid` (the pod's,
    shared by all its containers)."""
    ns = os.readlink(f"/proc/{member_pid}/ns/pid")
    procs = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "ns" / "pid") == ns:
                    procs[int(entry.name)] = start_time(int(entry.name))
            except (FileNotFoundError, PermissionError):
                pass  # exited while listed, or outside this sandbox's view (not the pod's)
    return procs


def still_running(procs: dict[int, str]) -> list[int]:
    alive = []
    for pid, started in procs.items():
        try:
            if start_time(pid) == started:
                alive.append(pid)
        except FileNotFoundError:
            pass
    return alive


class EtsyStatsd:
    """Etsy's StatsD daemon with the console backend, UDP on every address of the host (the
    pod sends from the podman network), its admin interface on loopback."""

    STATS_JS = REPO / ".tools/statsd/node_modules/statsd/stats.js"

    def __init__(self, workdir: Path):
        assert self.STATS_JS.is_file(), f"{self.STATS_JS} missing: run scripts/setup.d/40-export-peers.sh"
        assert shutil.which("node"), "node missing (scripts/setup.d/10-codex.sh installs it)"
        self.port = free_udp_port()
        self.mgmt_port = free_port()
        config = workdir / "statsd-config.js"
        config.write_text(
            f'{{ port: {self.port}, address: "0.0.0.0", mgmt_port: {self.mgmt_port}, mgmt_address: "127.0.0.1", '
            'backends: ["./backends/console"], flushInterval: 60000, deleteIdleStats: false }'
        )
        self.proc = subprocess.Popen(
            ["node", str(self.STATS_JS), str(config)], cwd=self.STATS_JS.parent,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for("the StatsD admin interface", lambda: "health: up" in self.admin("health"), timeout=30)

    def admin(self, command: str) -> str:
        """One admin command's answer: dumps end with END, `health` is one line."""
        with socket.create_connection(("127.0.0.1", self.mgmt_port), timeout=5) as s:
            s.sendall(f"{command}\n".encode())
            out = b""
            while not out.rstrip().endswith(b"END") and not (command == "health" and out.endswith(b"\n")):
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        return out.decode()

    def value(self, command: str, name: str) -> float | None:
        """The value of `name` in the admin dump of `command` (gauges, counters)."""
        dump = self.admin(command)
        key = f"'{name}': "
        if key not in dump:
            return None
        return float(dump.split(key, 1)[1].split(",")[0].split("\n")[0].strip().rstrip("}").strip())

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


@pytest.fixture
def statsd(tmp_path):
    daemon = EtsyStatsd(tmp_path)
    yield daemon
    daemon.stop()


@pytest.fixture
def play_dir(tmp_path):
    """An empty directory to run kube play from: podman would try to build an image from a
    folder named like one."""
    d = tmp_path / "play"
    d.mkdir()
    return d


class Played:
    """A pod `podman kube play` started: its name, container names, and the processes of its PID
    namespace a test recorded (checked to be gone after `kube down`)."""

    def __init__(self, name: str, play_seconds: float):
        self.name = name
        #: Wall time of `podman kube play --start`: pulls nothing here; creates the pod, runs the
        #: init containers to completion and starts the containers.
        self.play_seconds = play_seconds
        self.started = time.monotonic() - play_seconds
        self.processes: dict[int, str] = {}

    def container(self, name: str) -> str:
        return f"{self.name}-{name}"  # podman's name for a container of replica 0


@contextlib.contextmanager
def played(docs: list[dict], deployment: dict, play_dir: Path):
    """Plays the rendered ConfigMap and (rewritten) Deployment; always `kube down`, then checks
    that nothing of the pod is left: no pod, container, process or volume but the ConfigMap's."""
    # podman plays ConfigMaps and Deployments; the Service is for a cluster.
    manifest = play_dir / "pod.yaml"
    manifest.write_text(yaml.safe_dump_all([strip_source(one(docs, "ConfigMap")), strip_source(deployment)], sort_keys=False))
    name = f"{deployment['metadata']['name']}-pod-0"  # podman names replica 0 of a Deployment so
    volumes_before = set(podman("volume", "ls", "--quiet").stdout.split())
    config_volume = one(docs, "ConfigMap")["metadata"]["name"]
    pod = None
    try:
        t0 = time.monotonic()
        podman("kube", "play", "--start", str(manifest), cwd=play_dir, timeout=600)
        pod = Played(name, time.monotonic() - t0)
        names = set(podman("ps", "--all", "--filter", f"pod={name}", "--format", "{{.Names}}").stdout.split())
        assert {pod.container(AGENT), pod.container(APP)} <= names, names
        yield pod
    finally:
        down = podman("kube", "down", str(manifest), cwd=play_dir, check=False, timeout=300)
        left_volumes = set(podman("volume", "ls", "--quiet").stdout.split()) - volumes_before
        # kube down removes the emptyDir volumes but keeps the one podman made of the ConfigMap.
        podman("volume", "rm", "--force", config_volume, check=False)
    assert down.returncode == 0, down.stderr
    assert podman("pod", "exists", name, check=False).returncode != 0, f"pod {name} left behind"
    assert podman("ps", "--all", "--filter", f"pod={name}", "--quiet").stdout.strip() == ""
    assert still_running(pod.processes) == [], "processes of the pod outlived kube down"
    assert left_volumes == {config_volume}, "kube down left other volumes behind"


def workload_values(agent_image: str, codex_app_image: str) -> dict:
    """The chart's values for the test application and the agent's image built here."""
    app_repo, app_tag = codex_app_image.rsplit(":", 1)
    agent_repo, agent_tag = agent_image.rsplit(":", 1)
    return {
        "image": {"repository": agent_repo, "tag": agent_tag},
        "app": {
            "image": {"repository": app_repo, "tag": app_tag},
            "command": ["/bin/sh", "/usr/local/bin/workload.sh"],
        },
    }


def oplog_host_dir(play_dir: Path, deployment: dict) -> Path:
    """The operations-log directory (see podman_rewrites), owned by the application's user."""
    d = play_dir.parent / "oplog"
    d.mkdir()
    uid = container(pod_spec(deployment), APP)["securityContext"]["runAsUser"]
    os.chown(d, uid, uid)
    return d


def test_chart_plays_as_a_pod(agent_image, codex_app_image, play_dir, statsd):
    release = f"play{os.getpid()}"
    values = {
        **(base := workload_values(agent_image, codex_app_image)),
        "app": {
            **base["app"],
            # Codex writes auth.json into its home; the root filesystem is read-only.
            "extraVolumeMounts": [{"name": "codex-home", "mountPath": "/app/codex-home"}],
        },
        "extraVolumes": [{"name": "codex-home", "emptyDir": {}}],
        # The init container copies the app image's Codex for the agent's availability probe.
        "codexBinary": {"copyFrom": {"enabled": True, "path": "/usr/local/bin/codex"}},
        # DogStatsD to the node's agent (here: StatsD on the host), plain names for its dump.
        "export": {"preset": "datadog", "datadog": {"mode": "dogstatsd", "dogstatsdPort": statsd.port}},
        # Probe, sample and push often, and count the lines written before the agent started.
        "config": {
            "healthMonitoring": {"checkInterval": 2000},
            "processes": {"sampleInterval": 500},
            "operationsLog": {"backfill": True},
            "export": {"statsd": {"interval": 500, "tags": False}},
        },
    }
    docs = render(values, name=release)
    deployment = one(docs, "Deployment")
    host_port = free_port()
    oplog_dir = oplog_host_dir(play_dir, deployment)
    node_ip = json.loads(podman("network", "inspect", "podman").stdout)[0]["subnets"][0]["gateway"]
    rewrites = podman_rewrites(deployment, host_port, oplog_dir, node_ip)
    assert rewrites == [
        f"{AGENT}: K8S_NAMESPACE_NAME fieldRef metadata.namespace -> literal",
        f"{AGENT}: K8S_NODE_NAME fieldRef spec.nodeName -> literal",
        f"{AGENT}: DD_AGENT_HOST fieldRef status.hostIP -> literal",
        f"{AGENT}: livenessProbe httpGet dropped",
        f"{AGENT}: readinessProbe httpGet dropped",
        f"{AGENT}: hostPort {host_port}",
        "pod: restartPolicy OnFailure",
        "volume codex-operations-log: emptyDir -> hostPath",
    ]
    with played(docs, deployment, play_dir) as pod:
        agent_ctr, app_ctr = pod.container(AGENT), pod.container(APP)

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
        healthy_after = time.monotonic() - pod.started

        # Shared process namespace: the application's `codex exec` (a long-lived process while
        # Codex retries without network) is sampled by the agent.
        def codex_processes():
            return metric(get(host_port, "/metrics")[1], "codex_active_processes")

        assert wait_for("the app's Codex process in the agent's metrics", codex_processes, timeout=120) >= 1
        pod_comms = podman("top", app_ctr, "user", "comm").stdout.splitlines()[1:]
        assert ["1000", "codex"] in [line.split() for line in pod_comms], pod_comms

        # Shared volume: the agent counts the operations log the application writes, both kinds
        # of line the workload writes (version: success; exec: timed out).
        def executions():
            m = json.loads(get(host_port, "/health/codex")[1])["performance"]["executionMetrics"]
            return m["successfulExecutions"] >= 1 and m["timedOutExecutions"] >= 1 and m

        counted = wait_for("operations-log lines counted by the agent", executions, timeout=120)
        (log_file,) = oplog_dir.iterdir()
        assert log_file.name.startswith("codex-operations-") and log_file.suffix == ".jsonl", log_file
        lines = [json.loads(line) for line in log_file.read_text().splitlines()]
        assert counted["totalExecutions"] <= len(lines)
        assert counted["timedOutExecutions"] <= sum(1 for line in lines if line["result"]["timedOut"])
        assert metric(get(host_port, "/metrics")[1], "codex_availability_status") == 1

        # Pushed out of the pod to the StatsD daemon on the node.
        assert wait_for("codex.availability=1 at StatsD", lambda: statsd.value("gauges", "codex.availability") == 1, timeout=60)
        assert wait_for(
            "the operations log's executions at StatsD",
            lambda: (statsd.value("counters", "codex.executions.version.success") or 0) >= 1
            and (statsd.value("counters", "codex.executions.exec.timeout") or 0) >= 1,
            timeout=60,
        )

        # Both containers run as the chart's users.
        pids = {}
        for ctr, uid in [(agent_ctr, 65532), (app_ctr, 1000)]:
            pids[ctr] = int(podman("inspect", "--format", "{{.State.Pid}}", ctr).stdout)
            assert host_uids(pids[ctr]) == [uid] * 4, ctr
        # One PID namespace: pause, workload shell, Codex, agent.
        pod.processes.update(pod_processes(pids[agent_ctr]))
        assert pids[app_ctr] in pod.processes
        assert len(pod.processes) >= 3, pod.processes  # agent, workload shell, codex

        # What the copy costs (docs/PERFORMANCE.md, "Codex in the pod"): printed for `pytest -s`.
        copied = Path(f"/proc/{pids[agent_ctr]}/root/opt/codex/bin/codex").stat().st_size
        print(f"\n[pod start] copy: kube play {pod.play_seconds:.2f} s, availability healthy "
              f"{healthy_after:.2f} s after kube play started; {copied} bytes copied into the pod")


def agent_files(agent_pid: int) -> list[Path]:
    """Every file in the agent container's filesystem (its image and mounts), from the host."""
    root = Path(f"/proc/{agent_pid}/root")
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == root:
            dirnames[:] = [d for d in dirnames if d not in ("proc", "sys", "dev")]
        files += [Path(dirpath) / f for f in filenames]
    return files


def codex_version() -> str:
    out = subprocess.run([str(CODEX_STATIC), "--version"], capture_output=True, text=True, timeout=60, check=True).stdout
    return re.search(r"\d+\.\d+\.\d+", out).group(0)


def test_agent_runs_the_applications_codex_without_a_copy_and_its_login(agent_image, codex_app_image, play_dir):
    """codexBinary.fromApplication (issue 12, item 3) with codexHome (item 4): no init container,
    no copy. The agent runs the application image's Codex at /proc/<pid>/root/usr/local/bin/codex
    of an application process, as the application's user, and `codex login status` with the
    application's Codex home (read-only) is healthy once the workload logged in
    (`codex login --with-api-key`, a fake key on stdin: offline)."""
    release = f"nocopy{os.getpid()}"
    values = {
        **workload_values(agent_image, codex_app_image),
        "codexBinary": {"fromApplication": {"enabled": True, "path": "/usr/local/bin/codex"}},
        "codexHome": {"enabled": True},
        "config": {
            "healthMonitoring": {"checkInterval": 2000},
            "codex": {"probes": [{"name": "codex-login", "command": ["codex", "login", "status"], "failureStatus": "critical", "interval": 1000}]},
        },
    }
    docs = render(values, name=release)
    deployment = one(docs, "Deployment")
    spec = pod_spec(deployment)
    assert "initContainers" not in spec, "no copy: no init container"
    assert not [v for v in spec["volumes"] if "codex-bin" in v["name"]], spec["volumes"]
    host_port = free_port()
    rewrites = podman_rewrites(deployment, host_port, oplog_host_dir(play_dir, deployment), "192.0.2.10")
    assert rewrites == [
        f"{AGENT}: K8S_NAMESPACE_NAME fieldRef metadata.namespace -> literal",
        f"{AGENT}: K8S_NODE_NAME fieldRef spec.nodeName -> literal",
        f"{AGENT}: livenessProbe httpGet dropped",
        f"{AGENT}: readinessProbe httpGet dropped",
        f"{AGENT}: hostPort {host_port}",
        "volume codex-operations-log: emptyDir -> hostPath",
    ]
    with played(docs, deployment, play_dir) as pod:
        agent_ctr, app_ctr = pod.container(AGENT), pod.container(APP)
        check = wait_for(
            "a healthy availability check",
            lambda: (c := health_check(host_port, "codex-availability")) and c["status"] == "healthy" and c,
            timeout=120,
        )
        healthy_after = time.monotonic() - pod.started
        # The program that ran: the application image's binary, in an application process's root.
        ran = re.fullmatch(r"/proc/(\d+)/root/usr/local/bin/codex", check["details"]["executable"])
        assert ran, check
        app_pids = {int(p) for p in podman("top", app_ctr, "pid").stdout.split()[1:]}
        assert int(ran.group(1)) in app_pids, (ran.group(0), app_pids)
        assert check["details"]["version"] == codex_version(), check

        # Item 4: the login probe runs the same Codex with the application's Codex home.
        login = wait_for(
            "a healthy codex-login check",
            lambda: (c := health_check(host_port, "codex-login")) and c["status"] == "healthy" and c,
            timeout=120,
        )
        assert re.fullmatch(r"/proc/\d+/root/usr/local/bin/codex", login["details"]["executable"]), login

        # Nothing copied: no Codex (and nothing of its 300 MB) anywhere in the agent's filesystem.
        pids = {ctr: int(podman("inspect", "--format", "{{.State.Pid}}", ctr).stdout) for ctr in (agent_ctr, app_ctr)}
        files = agent_files(pids[agent_ctr])
        assert not [f for f in files if f.name == "codex"], files
        biggest = max(f.stat().st_size for f in files if f.is_file())
        assert biggest < 16 * 1024 * 1024, biggest  # the agent's own binary is the biggest
        # The agent runs as the application's user: the only one the kernel lets into its root.
        assert host_uids(pids[agent_ctr]) == host_uids(pids[app_ctr]) == [1000] * 4
        pod.processes.update(pod_processes(pids[agent_ctr]))

        print(f"\n[pod start] no copy: kube play {pod.play_seconds:.2f} s, availability healthy "
              f"{healthy_after:.2f} s after kube play started; 0 bytes copied")
