"""The stack's watch while compose comes up: which service state ends the wait, and what the
verdict says (no engine: the containers are the engine's inspect data, the model is real)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from imagegate.model.compose import Model
from imagegate.run.stack import EXCEPTION_LINE, RESTART_LOOP, SERVICE_LABEL, Stack

COMPOSE = """
    services:
      web:
        image: app
        restart: unless-stopped
        depends_on:
          migrate: {condition: service_completed_successfully}
      migrate:
        image: app
      seed:
        image: app
        restart: "no"
      worker:
        image: app
        restart: always
      beat:
        image: app
"""
TRACEBACK = """\
[2026-12-03 19:00:00 +0000] [1] [INFO] Starting gunicorn 23.0.0
Traceback (most recent call last):
  File "/app/project/__init__.py", line 3, in <module>
    import psycopg2
ModuleNotFoundError: No module named 'psycopg2'
[2026-12-03 19:00:01 +0000] [7] [INFO] Worker exiting (pid: 7)
[2026-12-03 19:00:01 +0000] [1] [ERROR] Reason: Worker failed to boot.
"""


class FakeContainer:
    """What ``Stack.dead`` reads of a container: its labels, name and inspect data."""

    def __init__(self, service: str, status: str, code: int = 0, restarts: int = 0) -> None:
        self.labels = {SERVICE_LABEL: service}
        self.name = f"p-{service}-1"
        self.attrs = {"State": {"Status": status, "ExitCode": code,
                                "StartedAt": "2026-12-03T19:00:00.000000000Z",
                                "FinishedAt": "2026-12-03T19:00:01.250000000Z"},
                      "RestartCount": restarts}


class FakeClient:
    """``containers.list`` answering a fixed set."""

    def __init__(self, containers: list[FakeContainer]) -> None:
        self.containers = self
        self._found = containers

    def list(self, **_: Any) -> list[FakeContainer]:
        return self._found


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """A Stack over a real resolved model, its logs a gunicorn import crash."""
    (tmp_path / "compose.yaml").write_text(textwrap.dedent(COMPOSE))
    model = Model.load([tmp_path / "compose.yaml"], project_dir=tmp_path, env={})
    found = Stack((tmp_path / "compose.yaml",), "p", tmp_path, {}, tmp_path / "empty.env", "s",
                  model=model)
    monkeypatch.setattr(found, "logs", lambda service, tail=100: TRACEBACK)
    return found


def watch(stack: Stack, *containers: FakeContainer) -> str:
    """``stack.dead()`` with the engine showing ``containers``."""
    stack._cli = FakeClient(list(containers))
    return stack.dead()


def test_an_exited_service_is_named_with_its_exception(stack: Stack) -> None:
    """The web service exited 3: its name, code, time alive, the exception line and the last
    log line, in one line."""
    said = watch(stack, FakeContainer("migrate", "exited", 0), FakeContainer("web", "exited", 3))
    assert said == ("service web exited with code 3 1.2s after it started: ModuleNotFoundError: "
                    "No module named 'psycopg2' (last log line: [2026-12-03 19:00:01 +0000] [1] "
                    "[ERROR] Reason: Worker failed to boot.)")


def test_one_shots_that_succeed_are_fine(stack: Stack) -> None:
    """Exit 0 of a service another waits for (service_completed_successfully), or of one with
    restart "no", ends nothing; running and restarting-once services neither."""
    assert watch(stack, FakeContainer("migrate", "exited", 0), FakeContainer("seed", "exited", 0),
                 FakeContainer("web", "running", restarts=1),
                 FakeContainer("worker", "restarting", 1, restarts=RESTART_LOOP - 1)) == ""


@pytest.mark.parametrize(("container", "expected"), [
    (FakeContainer("migrate", "exited", 1), "service migrate exited with code 1"),
    (FakeContainer("worker", "exited", 0), "service worker exited with code 0"),
    (FakeContainer("beat", "exited", 0), "service beat exited with code 0"),  # no policy: no
                                                                                # one-shot
    (FakeContainer("worker", "restarting", 1, restarts=RESTART_LOOP),
     f"service worker restarts in a loop ({RESTART_LOOP} restarts, last exit code 1)"),
])
def test_what_ends_the_wait(stack: Stack, container: FakeContainer, expected: str) -> None:
    """A one-shot that fails, a long-running service that exits (even 0), a crash loop."""
    assert watch(stack, container).startswith(expected)


@pytest.mark.parametrize(("line", "matches"), [
    ("ModuleNotFoundError: No module named 'psycopg2'", True),
    ("sqlalchemy.exc.OperationalError: (psycopg2.OperationalError) could not connect", True),
    ("KeyError: 'SECRET_KEY'", True),
    ("RuntimeError", True),
    ("[INFO] Worker exiting (pid: 7)", False),
    ("  File \"/app/x.py\", line 3, in <module>", False),
])
def test_exception_lines(line: str, matches: bool) -> None:
    """What counts as the exception line of a log."""
    assert bool(EXCEPTION_LINE.match(line)) is matches


def test_the_crash_line_is_the_services_not_composes(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """compose's own warnings go to its stderr (``the attribute `version` is obsolete``): they
    are not the service's last log line."""
    import subprocess

    (tmp_path / "compose.yaml").write_text(textwrap.dedent(COMPOSE))
    model = Model.load([tmp_path / "compose.yaml"], project_dir=tmp_path, env={})
    stack = Stack((tmp_path / "compose.yaml",), "p", tmp_path, {}, tmp_path / "empty.env", "s",
                  model=model)
    warning = ('time="2026-12-03T20:19:18Z" level=warning msg="compose.yaml: the attribute '
               '`version` is obsolete"\n')
    monkeypatch.setattr(stack, "compose", lambda *a, **k: subprocess.CompletedProcess(
        a, 0, TRACEBACK, warning))
    assert "version" not in stack.logs("web")
    said = watch(stack, FakeContainer("web", "exited", 3))
    assert said.endswith("(last log line: [2026-12-03 19:00:01 +0000] [1] [ERROR] Reason: "
                         "Worker failed to boot.)"), said


def test_gate_stack_that_cannot_come_up_is_described_not_raised(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gate's shared stack failing in the engine's own words (not an imagegate error) is
    written for the pytest runs as a stack that did not come up, naming the error; the gate
    does not crash, and the runs are never left waiting for the description."""
    import importlib
    import json
    from types import SimpleNamespace

    import docker.errors

    from imagegate.config.settings import Settings

    # the module (``imagegate.pytest_plugin.stack`` as an attribute is the ``stack`` fixture)
    fixtures = importlib.import_module("imagegate.pytest_plugin.stack")

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise docker.errors.NotFound("No such container: 88daa159bad6")

    monkeypatch.setattr("imagegate.config.project.gate_interpolation",
                        lambda *a, **k: SimpleNamespace(env={}, env_file=None))
    monkeypatch.setattr("imagegate.model.compose.Model.load", lambda *a, **k: object())
    monkeypatch.setattr("imagegate.build.pipeline.redis_image", lambda: "redis")
    monkeypatch.setattr(fixtures, "gate_overrides", lambda *a, **k: [])
    monkeypatch.setattr(fixtures, "_start", refuse)
    (tmp_path / fixtures.ATTACH_ENV).write_text("{}")
    settings = Settings(project_dir=tmp_path, compose_file="compose.yml", web_service="web",
                        web_port=8000)
    with fixtures.gate_stack(None, settings, "igtest", "sha256:abc", {}, tmp_path):
        described = json.loads((tmp_path / fixtures.ATTACH_STACK).read_text())
    assert described["ok"] is False
    assert described["message"] == ("the gate's stack did not come up: NotFound: "
                                    "No such container: 88daa159bad6")
