"""The harness cleans up after itself: a tiny suite on the ``stack`` fixture, run in a subprocess
that passes, fails, or is interrupted (SIGINT) with the stack up, leaves no labelled object."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from imagegate.engine import SESSION_LABEL, cleanup_session, labelled_objects, new_session_id
from imagegate.proc import wait_until

pytestmark = [pytest.mark.stack, pytest.mark.slow]

INNER_CONFTEST = '''\
import pytest


@pytest.fixture
def web_url(stack, stack_url):
    """The imagegate plugin's session stack, as any project's conftest would use it."""
    return stack_url
'''

INNER_TEST = '''\
import os
import pathlib
import threading

import requests

from imagegate.engine import labelled_objects


def test_inner(web_url, imagegate_session):
    assert requests.get(web_url + "/healthz", timeout=5).status_code == 200
    # Not vacuous: every kind of object is there, labelled, while the stack is up.
    kinds = {name.split(":")[0] for name in labelled_objects(imagegate_session)}
    assert kinds == {"container", "network", "volume"}, kinds
    mode = os.environ["INNER_MODE"]
    assert mode != "fail", "failing on purpose"
    if mode == "interrupt":
        pathlib.Path(os.environ["INNER_READY"]).write_text("up")
        threading.Event().wait(timeout=120)  # SIGINT ends this; bounded if it never comes
'''


@pytest.mark.parametrize(("mode", "exit_code"), [("pass", 0), ("fail", 1), ("interrupt", 2)])
def test_no_leftovers(mode: str, exit_code: int, tmp_path: Path, app_image: str,
                      imagegate_settings: Any, docker_client: Any) -> None:
    """After the inner run ends (any way), nothing carries its session label."""
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(INNER_CONFTEST)
    (suite / "test_inner.py").write_text(INNER_TEST)
    ready = tmp_path / "ready"
    session = new_session_id()
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
            "--imagegate-image", app_image, "--imagegate-session", session,
            "--imagegate-project-dir", str(imagegate_settings.project_dir), str(suite)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(INNER_MODE=mode, INNER_READY=str(ready))
    proc = subprocess.Popen(argv, cwd=suite, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    try:
        if mode == "interrupt":
            running = {"label": f"{SESSION_LABEL}={session}", "status": "running"}
            wait_until(lambda: ready.exists() and docker_client.containers.list(filters=running),
                       timeout=120, what="inner stack up and its test running",
                       describe=lambda: f"ready={ready.exists()} rc={proc.poll()}")
            proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=180)
        left = labelled_objects(session, docker_client)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
        cleanup_session(session, docker_client)  # keep this suite clean even when it fails
    assert proc.returncode == exit_code, output[-3000:]
    assert left == [], f"left behind by the {mode} run: {left}\n{output[-2000:]}"


def _can_lock(path: Path, how: int) -> bool:
    """True when a lock of kind ``how`` on ``path`` can be had right now (another open file
    description: as another xdist worker would ask)."""
    import fcntl

    with open(path, "a") as other:
        try:
            fcntl.flock(other, how | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


@pytest.mark.prunes
def test_a_pruning_test_holds_the_prune_lock_alone(killed_registry: Path) -> None:
    """While a test marked ``prunes`` runs, no other stack test can start (not even sharing)."""
    import fcntl

    lock = killed_registry.parent / "prune.lock"
    assert not _can_lock(lock, fcntl.LOCK_SH) and not _can_lock(lock, fcntl.LOCK_EX)


def test_other_stack_tests_share_the_prune_lock(killed_registry: Path) -> None:
    """Other stack tests run side by side (shared), and keep any prune out (exclusive)."""
    import fcntl

    lock = killed_registry.parent / "prune.lock"
    assert _can_lock(lock, fcntl.LOCK_SH) and not _can_lock(lock, fcntl.LOCK_EX)
