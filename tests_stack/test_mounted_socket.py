"""The gate in a job container with the engine's socket mounted: another network namespace.

GitHub's ``container:`` jobs and GitLab runners that mount ``/var/run/docker.sock`` run the gate
in a container of the very engine it drives: the API is the same (the default socket, no
setting), but the job's 127.0.0.1 is its own, not the engine host's where the gate's published
ports listen. This module runs the gate that way: a container of the local ``python:3.11-slim``
stand-in with no network at all (``network_mode: none``: the socket is its only way out), the
socket mounted, and the tools mounted read-only at their own paths as a CI runner mounts its
tool cache into a job container (this worktree with its venv, the interpreter that venv was
made from, the docker CLIs). Nothing is built for it. The docker-init sample must pass with no
setting, its published port judged unreachable from there, and leave nothing behind.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from stack_helpers import findings, result

from imagegate.engine import PID_LABEL, SESSION_LABEL, cleanup_session

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("mounted_socket")]

PROJECTS = Path(__file__).parent / "projects"
#: Seconds the gate in the job container may take (a cold build included).
GATE_TIMEOUT = 900
#: Label of the job container (the test's own: not an imagegate session's).
JOB_LABEL = "imagegate.test-job"


def _mounts(project: Path) -> dict[str, dict[str, str]]:
    """The SDK's ``volumes``: the socket, the project (read-write) and, read-only at the same
    paths, the venv's tree, the interpreter it was made from and the docker CLIs on PATH."""
    venv = Path(sys.executable).parent.parent
    base = Path(os.path.realpath(sys.executable)).parent.parent  # e.g. ~/.pyenv/versions/3.11.7
    repo = Path(__file__).resolve().parent.parent
    mounts = {os.path.realpath("/var/run/docker.sock"): {"bind": "/var/run/docker.sock",
                                                          "mode": "rw"},
              str(project): {"bind": str(project), "mode": "rw"}}
    for path in {repo, venv, base}:
        mounts[str(path)] = {"bind": str(path), "mode": "ro"}
    for cli in ("/usr/local/bin/docker", "/usr/bin/docker"):
        if Path(cli).is_file():
            mounts[os.path.realpath(cli)] = {"bind": cli, "mode": "ro"}
    return mounts


def owned_from(cli: Any, host: str) -> list[tuple[str, str]]:
    """(session, object) of every labelled object whose owner ran on ``host``."""
    found = []
    for kind, objects in (
            ("container", cli.containers.list(all=True, filters={"label": PID_LABEL},
                                              sparse=True)),
            ("network", cli.networks.list(filters={"label": PID_LABEL})),
            ("volume", cli.volumes.list(filters={"label": PID_LABEL}))):
        for obj in objects:
            labels = obj.attrs.get("Labels") or (obj.attrs.get("Config") or {}).get("Labels") or {}
            if labels.get(PID_LABEL, "").startswith(f"{host}:"):
                found.append((labels.get(SESSION_LABEL, ""), f"{kind}:{obj.id[:12]}"))
    return found


def test_gate_in_a_job_container_with_the_socket_mounted(
        tmp_path: Path, python_slim_image: str, docker_client: Any) -> None:
    """docker init's project gated from a container with no network of its own and the engine's
    socket mounted: it passes with no setting, reaching the service from inside its network and
    naming its published port unreachable from there; the job container and every object of
    the gate are gone afterwards."""
    project = tmp_path / "dockerinit"
    shutil.copytree(PROJECTS / "dockerinit", project)
    report = project / "out"
    venv_bin = Path(sys.executable).parent
    env = {"PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin", "HOME": "/root",
           "LANG": "C.UTF-8"}
    started = time.monotonic()
    job = docker_client.containers.create(
        python_slim_image, [str(venv_bin / "imagegate"), "gate", "--project-dir", str(project),
                            "--report-dir", str(report)],
        environment=env, volumes=_mounts(project), network_mode="none", working_dir="/",
        labels={JOB_LABEL: str(os.getpid())}, detach=True)
    host = job.id[:12]  # the job's hostname: its objects' imagegate.pid labels start with it
    try:
        job.start()
        status = job.wait(timeout=GATE_TIMEOUT)
        output = job.logs().decode("utf-8", "replace")
    finally:
        job.remove(force=True)
        left = owned_from(docker_client, host)
        for session in {s for s, _ in left}:
            cleanup_session(session, docker_client)
    seconds = time.monotonic() - started
    assert status["StatusCode"] == 0, output[-5000:]
    assert result(report)["status"] == "passed", output[-3000:]
    stages = {s["name"]: s["status"] for s in result(report)["stages"]}
    assert stages == {"preflight": "passed", "lint": "passed", "bases": "skipped",
                      "build": "passed", "image": "passed", "stack": "passed"}, stages

    http = [f for f in findings(report) if f["check_id"] == "IG-STACK-HTTP"]
    inside = [f for f in http if "from inside the network" in f["message"]]
    published = [f for f in http if "published port" in f["message"]]
    assert inside and all(f["ok"] and not f["skipped"] for f in inside), inside
    assert published and all("nothing accepts connections" in f["skipped"]
                             for f in published), published
    assert {f["check_id"] for f in findings(report, outcome="passed")} >= {
        "IG-RUN-HEALTHY", "IG-RUN-PROCS-NONROOT", "IG-STACK-HEALTHY", "IG-FLASK-DEBUGGER"}
    assert not docker_client.containers.list(all=True, filters={"label": JOB_LABEL})
    # prune cannot tell from here whether another host's owner lives: the job's own cleanup
    # must have removed everything
    assert left == [], left
    print(f"\n[mounted socket] gate in the job container {seconds:.1f}s "
          f"(gate's own {result(report)['seconds']:.1f}s)")
