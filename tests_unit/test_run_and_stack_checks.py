"""The run-stage checks (imagegate/checks/running.py) and the stack/build judgements
(imagegate/checks/stack.py) on facts made here: each fails on the fact that breaks it, saying
what was expected and what was seen, and passes on the fact that does not. The same functions run
on real containers and stacks in tests_image/test_mutations_running.py and tests_stack."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from imagegate.checks import running, stack
from imagegate.checks.running import Running, findings
from imagegate.config.settings import Settings
from imagegate.errors import BuildFailed
from imagegate.facts import runtime
from imagegate.facts.policy import ImageFacts
from imagegate.facts.runtime import Proc, Socket
from imagegate.pytest_plugin import Readiness

INTERPRETER = "/opt/venv/bin/python"


@dataclass
class Answer:
    """An HTTP answer as requests gives it."""

    status_code: int
    text: str = ""


@dataclass
class Ready:
    """A ready container as the run checks see it: the SDK container and how to ask it."""

    attrs: dict[str, Any] = field(default_factory=lambda: {"Config": {"WorkingDir": "/srv/app"}})
    answer: Answer | Exception = field(default_factory=lambda: Answer(200))
    url: str = "http://127.0.0.1:49153"

    @property
    def container(self) -> Any:
        return SimpleNamespace(attrs=self.attrs)

    def get(self, path: str) -> Answer:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def judged(check: Callable[[Running], Any], ready: Ready | None = None,
           **settings: Any) -> list[tuple[bool, str]]:
    """(ok, message) of each finding ``check`` gives on ``ready`` (skips as "skipped: why")."""
    facts = Running(ready or Ready(), Settings(web_port=8000, **settings),
                    {"app_interpreter": INTERPRETER,
                     "image_facts": ImageFacts.from_parts({})}.__getitem__)
    return [(f.ok, f"skipped: {f.skipped}" if f.skipped else f.message)
            for f in findings(check.__name__, check(facts))]


def fact(monkeypatch: pytest.MonkeyPatch, name: str, value: Any) -> None:
    """``runtime.<name>`` answers ``value`` (what the container would have shown)."""
    monkeypatch.setattr(runtime, name, lambda *args, **kwargs: value)


@pytest.mark.shows_failing("IG-RUN-USER-NONROOT")
def test_IG_RUN_USER_NONROOT(monkeypatch: pytest.MonkeyPatch) -> None:
    fact(monkeypatch, "exec_uid", 0)
    assert judged(running.user_nonroot) == [
        (False, "commands in the container run as uid 0 (root)")]
    fact(monkeypatch, "exec_uid", 10001)
    assert judged(running.user_nonroot) == [(True, "commands in the container run as uid 10001")]
    fact(monkeypatch, "exec_uid", runtime.Skip("no id in the image"))
    assert judged(running.user_nonroot) == [(True, "skipped: no id in the image")]


@pytest.mark.shows_failing("IG-RUN-PROCS-NONROOT")
def test_IG_RUN_PROCS_NONROOT(monkeypatch: pytest.MonkeyPatch) -> None:
    fact(monkeypatch, "process_uids", [Proc(41, 0, "gunicorn: master"), Proc(42, 10001, "w")])
    assert judged(running.procs_nonroot) == [
        (False, "processes run as uid 0: pid 41 gunicorn: master")]
    fact(monkeypatch, "process_uids", [])
    assert judged(running.procs_nonroot) == [(False, "no processes seen in the container")]
    fact(monkeypatch, "process_uids", [Proc(42, 10001, "gunicorn: worker")])
    assert judged(running.procs_nonroot)[0][0]


@pytest.mark.shows_failing("IG-RUN-PORT-LISTENING")
def test_IG_RUN_PORT_LISTENING(monkeypatch: pytest.MonkeyPatch) -> None:
    fact(monkeypatch, "listening_sockets", {Socket("0.0.0.0", 8001)})
    assert judged(running.port_listening) == [
        (False, "expected a listener on port 8000; listening: 0.0.0.0:8001")]
    fact(monkeypatch, "listening_sockets", {Socket("127.0.0.1", 8000)})
    assert judged(running.port_listening) == [
        (False, "port 8000 listens on loopback only (127.0.0.1:8000): unreachable through a "
                "published port (bind 0.0.0.0)")]
    fact(monkeypatch, "listening_sockets", {Socket("0.0.0.0", 8000)})
    assert judged(running.port_listening) == [(True, "port 8000 listens (0.0.0.0:8000)")]


@pytest.mark.shows_failing("IG-RUN-HTTP-HEALTH")
def test_IG_RUN_HTTP_HEALTH() -> None:
    assert judged(running.http_health, Ready(answer=Answer(503)), health_path="/readyz") == [
        (False, "GET /readyz: expected 2xx, got 503")]
    assert judged(running.http_health, Ready(answer=ConnectionError("refused"))) == [
        (False, "GET / through http://127.0.0.1:49153: no HTTP answer (refused)")]
    assert judged(running.http_health, Ready(answer=Answer(404))) == [(True, "GET /: 404")]


@pytest.mark.shows_failing("IG-RUN-APP-NOT-WRITABLE")
def test_IG_RUN_APP_NOT_WRITABLE(monkeypatch: pytest.MonkeyPatch) -> None:
    fact(monkeypatch, "writable_paths", ["/srv/app", "/srv/app/app.py"])
    assert judged(running.app_not_writable) == [
        (False, "2 paths under /srv/app are writable by the app user")]
    fact(monkeypatch, "writable_paths", [])
    assert judged(running.app_not_writable) == [(True, "nothing under /srv/app is writable")]
    assert judged(running.app_not_writable, Ready(attrs={"Config": {"WorkingDir": "/"}})) == [
        (True, "skipped: no WORKDIR: no app directory to check")]


@pytest.mark.shows_failing("IG-RUN-NO-PIP-MODULE")
def test_IG_RUN_NO_PIP_MODULE(monkeypatch: pytest.MonkeyPatch) -> None:
    fact(monkeypatch, "pip_importable", True)
    assert judged(running.no_pip_module) == [(False, f"{INTERPRETER} can import pip (its "
                                                     "sys.path)")]
    fact(monkeypatch, "pip_importable", False)
    assert judged(running.no_pip_module) == [(True, f"{INTERPRETER} cannot import pip")]


@pytest.mark.shows_failing("IG-RUN-PIP-CHECK")
def test_IG_RUN_PIP_CHECK(monkeypatch: pytest.MonkeyPatch) -> None:
    fact(monkeypatch, "pip_check", (False, "a 1.0 requires b, which is not installed.\n"))
    assert judged(running.pip_check) == [
        (False, f"pip check with {INTERPRETER}: a 1.0 requires b, which is not installed.")]
    fact(monkeypatch, "pip_check", (True, "No broken requirements found."))
    assert judged(running.pip_check) == [(True, "pip check: no broken requirements")]


@pytest.mark.shows_failing("IG-RUN-HEALTHY")
def test_IG_RUN_HEALTHY() -> None:
    start = SimpleNamespace(has_healthcheck=lambda: True, container=SimpleNamespace(
        attrs={"Config": {"Healthcheck": {"StartPeriod": int(1e9)}}}))
    died = running.healthy(Readiness(False, message="exited 3: ImportError: no module x"), start)
    assert (died.ok, died.message) == (False, "exited 3: ImportError: no module x")
    late = running.healthy(Readiness(True, 4.0, to_healthy=3.5), start)
    assert (late.ok, late.message) == (False, "first passing healthcheck 3.5s after start; start "
                                              "period is 1s")
    assert running.healthy(Readiness(True, 0.8, to_healthy=0.6), start).ok


@pytest.mark.shows_failing("IG-BUILD")
def test_IG_BUILD() -> None:
    failed = stack.built(BuildFailed("step 3/9 RUN pip install failed (exit code 1)",
                                     detail="log tail"), "Dockerfile")
    assert (failed.ok, failed.message, failed.detail, failed.where) == (
        False, "step 3/9 RUN pip install failed (exit code 1)", "log tail", "Dockerfile")
    done = stack.built(SimpleNamespace(image_id="sha256:" + "ab" * 32, builder="buildkit",
                                       seconds=1.25), "compose.yml:service nginx", "nginx")
    assert (done.ok, done.message) == (True, "built abababababab for service nginx with "
                                             "buildkit in 1.2s")


@pytest.mark.shows_failing("IG-STACK-HEALTHY")
def test_IG_STACK_HEALTHY() -> None:
    states = {"web": {"Status": "running", "Health": {"Status": "unhealthy"}},
              "migrate": {"Status": "exited", "ExitCode": 0},
              "worker": {"Status": "exited", "ExitCode": 0}}
    found = stack.stack_healthy(states, one_shot=["migrate"])
    assert (found.ok, found.message) == (False, "services not up and healthy: web: "
                                         "status=running health=unhealthy; worker: status=exited "
                                         "health=none")
    states["web"]["Health"]["Status"] = "healthy"
    assert stack.stack_healthy(states, one_shot=["migrate", "worker"]).ok


@pytest.mark.shows_failing("IG-STACK-WEB-NONROOT")
def test_IG_STACK_WEB_NONROOT() -> None:
    found = stack.web_nonroot("web", [Proc(7, 0, "gunicorn"), Proc(8, 10001, "gunicorn")])
    assert (found.ok, found.message) == (False, "web runs processes as uid 0: pid 7 gunicorn")
    assert not stack.web_nonroot("web", []).ok
    assert stack.web_nonroot("web", [Proc(8, 10001, "gunicorn")]).ok


@pytest.mark.shows_failing("IG-STACK-HTTP")
def test_IG_STACK_HTTP() -> None:
    said, at = "GET /health (web:8000 from inside the network)", "compose.yml:service web"
    assert stack.http_answer(said, at, Answer(500, "boom")).message == (
        f"{said}: expected below 500, got 500: 'boom'")
    assert not stack.http_answer(said, at, Answer(200, "ok"), status=204).ok
    assert stack.http_answer(said, at, Answer(200, "ok"), contains="healthy").message == (
        f"{said}: 'healthy' not in 'ok'")
    assert stack.http_answer(said, at, TimeoutError("no answer in 30s")).message == (
        f"{said}: no HTTP answer (no answer in 30s)")
    assert stack.http_answer(said, at, Answer(404)).ok


def test_read_ahead_answers_the_run_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """What was read ahead (side by side, before the checks ask) is what the checks judge: the
    readers are not called again; a fact not read ahead is read when asked."""
    from concurrent.futures import ThreadPoolExecutor

    from imagegate.checks.running import pip_check, read_ahead, user_nonroot

    calls: list[str] = []

    def reader(name: str, value: Any) -> Callable[..., Any]:
        def read(container: Any, *args: Any) -> Any:
            calls.append(name)
            return value
        read.__name__ = name
        return read

    monkeypatch.setattr(runtime, "exec_uid", reader("exec_uid", 0))
    monkeypatch.setattr(runtime, "pip_check", reader("pip_check", (False, "x 1 requires y")))
    for name in ("process_uids", "listening_sockets", "pip_importable", "writable_paths"):
        monkeypatch.setattr(runtime, name, reader(name, runtime.Skip("not asked")))
    monkeypatch.setattr("imagegate.checks.flask.app_facts", reader("app_facts", None))
    ready = Ready(attrs={"Config": {"WorkingDir": "/app"}})
    with ThreadPoolExecutor(2) as pool:
        ahead = read_ahead(ready.container, INTERPRETER, pool)
        for future in ahead.values():
            future.result()
    assert sorted(calls) == sorted(["exec_uid", "process_uids", "listening_sockets",
                                    "pip_importable", "pip_check", "app_facts", "writable_paths"])
    facts = Running(ready, Settings(web_port=8000), {"app_interpreter": INTERPRETER}.__getitem__,
                    ahead)
    calls.clear()
    assert [f.ok for f in findings("IG-RUN-USER-NONROOT", user_nonroot(facts))] == [False]
    assert [f.message for f in findings("IG-RUN-PIP-CHECK", pip_check(facts))] == [
        f"pip check with {INTERPRETER}: x 1 requires y"]
    assert calls == []
    no_ahead = Running(ready, Settings(web_port=8000), {"app_interpreter": INTERPRETER}.__getitem__)
    user_nonroot(no_ahead)
    assert calls == ["exec_uid"]
