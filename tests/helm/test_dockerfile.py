"""The Dockerfile cannot be built on the project's machines (its base images come from
registries none of which is reachable), so its structure is checked here against what the chart
and scripts/build-static rely on, and against scripts/podman/agent.Containerfile, the podman
build of the same image that tests/helm/test_image.py builds and runs."""

from __future__ import annotations

import re

import yaml

from chartkit import CHART, REPO


def instructions(path=REPO / "Dockerfile"):
    text = path.read_text()
    text = re.sub(r"\\\n", " ", text)  # line continuations
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_multi_stage_static_build_on_distroless_non_root():
    ins = instructions()
    froms = [rest for word, rest in ins if word == "FROM"]
    assert len(froms) == 2, froms
    assert froms[0].startswith("rust:") and froms[0].endswith(" AS build")
    assert froms[1].startswith("gcr.io/distroless/static"), "runtime base: distroless static (no libc)"
    final = ins[[i for i, (w, _) in enumerate(ins) if w == "FROM"][1]:]
    build = ins[: [i for i, (w, _) in enumerate(ins) if w == "FROM"][1]]

    runs = " ".join(rest for word, rest in build if word == "RUN")
    assert "rustup target add x86_64-unknown-linux-musl" in runs
    assert "musl-tools" in runs
    assert "OUT=/out scripts/build-static" in runs

    (copy,) = [rest for word, rest in final if word == "COPY"]
    src, dest = copy.split()[-2:]
    assert copy.startswith("--from=build") and src == "/out/codex-sentinel"
    (entry,) = [rest for word, rest in final if word == "ENTRYPOINT"]
    assert yaml.safe_load(entry) == [dest]

    (user,) = [rest for word, rest in final if word == "USER"]
    uid, gid = user.split(":")
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert int(uid) == values["agent"]["securityContext"]["runAsUser"] != 0
    assert int(gid) == values["agent"]["securityContext"]["runAsGroup"]


def test_build_context_leaves_out_local_state():
    ignored = (REPO / ".dockerignore").read_text().split()
    for path in [".git", ".tools", "target"]:
        assert path in ignored



def final_stage(ins):
    last_from = max(i for i, (w, _) in enumerate(ins) if w == "FROM")
    return ins[last_from:]


def test_podman_build_runs_the_same_way():
    """User, working directory, port and entry point: what a pod or `docker run` sees."""
    docker = final_stage(instructions())
    podman = final_stage(instructions(REPO / "scripts" / "podman" / "agent.Containerfile"))
    assert podman[0] == ("FROM", "scratch")
    for word in ["USER", "WORKDIR", "EXPOSE", "ENTRYPOINT"]:
        mine = [rest for w, rest in podman if w == word]
        theirs = [rest for w, rest in docker if w == word]
        assert mine == theirs and len(mine) == 1, (word, mine, theirs)
