"""Generic stack checks every gated Flask project gets, one catalogue id per test.

Two kinds of evidence: the project's compose model as the user wrote it (a source bind mount,
ports published on every interface, privileged services) — judged even when the stack never comes
up — and the running stack the gate brought up with the tested image (health, the web user,
HTTP answers). A project's own ``tests_stack/`` may import these classes.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from imagegate.checks.compose import COMPOSE_CHECKS, ComposeFacts
from imagegate.checks.stack import http_answer, stack_healthy, web_nonroot
from imagegate.facts import runtime
from imagegate.results.findings import Finding

pytestmark = pytest.mark.stack

Record = Callable[[Any], None]


class TestComposeFile:
    """The compose project as written (the model), not as the gate runs it: one test per check
    declared on :class:`imagegate.checks.compose.ComposeFacts`."""

    @pytest.mark.parametrize("check_id", [
        pytest.param(cid, marks=pytest.mark.imagegate_check(cid), id=cid)
        for cid in COMPOSE_CHECKS])
    def test_compose(self, check_id: str, compose_model: Any, imagegate_settings: Any,
                     imagegate_record: Record) -> None:
        """The compose check ``check_id`` holds for the project's compose model."""
        from imagegate.pytest_plugin.stack import gated_of

        facts = ComposeFacts(compose_model, imagegate_settings,
                             tuple(gated_of(imagegate_settings, compose_model)))
        imagegate_record(COMPOSE_CHECKS[check_id](facts))


class TestStack:
    """The stack the gate brought up, with the tested image."""

    @pytest.mark.imagegate_check("IG-STACK-HEALTHY")
    def test_IG_STACK_HEALTHY(self, stack_attempt: Any, imagegate_record: Record) -> None:
        """IG-STACK-HEALTHY: every service runs, and every one with a healthcheck is healthy; a
        one-shot service (``restart: "no"``, or awaited with service_completed_successfully)
        has exited 0."""
        __tracebackhide__ = True
        if stack_attempt.stack is None:
            pytest.fail(f"{stack_attempt.message}\n{stack_attempt.detail}".strip(),
                        pytrace=False)
        stack = stack_attempt.stack
        model = stack.load_model()
        states = {svc: stack.container(svc).attrs["State"] for svc in stack.services()}
        imagegate_record(stack_healthy(states, [svc for svc in states if model.one_shot(svc)]))

    @pytest.mark.imagegate_check("IG-STACK-WEB-NONROOT")
    def test_IG_STACK_WEB_NONROOT(self, stack_up: Any, imagegate_settings: Any,
                                  imagegate_record: Record) -> None:
        """IG-STACK-WEB-NONROOT: no process of the web service runs as uid 0."""
        svc = imagegate_settings.web_service
        procs = runtime.process_uids(stack_up.container(svc))
        if isinstance(procs, runtime.Skip):
            pytest.skip(procs.reason)
        imagegate_record(web_nonroot(svc, procs))


class TestStackHttp:
    """Each configured ``http_checks`` entry (or the health probe) answers as expected."""

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """One test per HttpCheck in the settings, id ``IG-STACK-HTTP[<path>]``."""
        if "http_check" in metafunc.fixturenames:
            from imagegate.errors import ImagegateError
            from imagegate.pytest_plugin import STATE_KEY

            try:
                checks = metafunc.config.stash[STATE_KEY].settings.stack_checks
            except ImagegateError:  # a settings error is reported by the fixtures, once
                checks = ()
            metafunc.parametrize("http_check", checks, ids=[c.path for c in checks])

    @pytest.mark.imagegate_check("IG-STACK-HTTP")
    def test_IG_STACK_HTTP(self, http_check: Any, stack_up: Any, imagegate_settings: Any,
                           compose_model: Any, imagegate_record: Record) -> None:
        """IG-STACK-HTTP: ``GET path`` gives the expected status (and body text); with no status
        given, anything below 500. Asked of the web service by its compose name from inside the
        project's network (the gate's probe), then as a user reaches it: through the web
        service's own published port and through each proxy's, where this machine can. One
        finding per way asked."""
        from imagegate.proc import WaitTimeout, wait_until

        path = http_check.path
        ways, unreachable = _ways(stack_up, imagegate_settings, compose_model, path)
        found = [Finding("IG-STACK-HTTP", True, f"GET {path} {how}: not asked", at, skipped=why)
                 for how, at, why in unreachable]
        for how, at, ask in ways:
            # A service without a healthcheck is "up" once it runs, maybe before it listens: wait
            # (bounded) for an HTTP answer of any kind, then judge that answer.
            said = f"GET {path} ({how})"
            try:
                (resp,) = wait_until(partial(_one, ask),  # a 4xx answer is falsy: wrap it
                                     what=said, timeout=imagegate_settings.wait_timeout,
                                     interval=0.2)
            except WaitTimeout as exc:
                found.append(http_answer(said, at, exc))
                continue
            found.append(http_answer(said, at, resp, status=http_check.status,
                                     contains=http_check.contains))
        imagegate_record(found)


def _ways(stack: Any, settings: Any, model: Any, path: str
          ) -> tuple[list[tuple[str, str, Callable[[], Any]]], list[tuple[str, str, str]]]:
    """How ``GET path`` reaches the web service: (how, where, ask) from inside the project's
    network (the gate's probe), through the web service's own published port, and through
    each proxy's; plus (how, where, why not) for published ports this machine cannot reach."""
    from imagegate.config.discovery import proxy_of
    from imagegate.errors import ImagegateError

    web, port = settings.web_service, settings.web_port
    name = model.files[0].name
    ways: list[tuple[str, str, Callable[[], Any]]] = [
        (f"{web}:{port} from inside the network", f"{name}:service {web}",
         partial(stack.http, web, path, container_port=port))]
    fronts = [(web, port)] if any(p.target == port for p in model.published(web)) else []
    fronts += [(svc, p.target) for svc in model.services if proxy_of(model, svc)
               for p in model.published(svc)[:1] if p.protocol == "tcp"]
    skipped: list[tuple[str, str, str]] = []
    for svc, target in fronts:
        at = f"{name}:service {svc}"
        try:
            url = stack.url(svc, path, container_port=target)
        except ImagegateError as exc:  # a remote engine's loopback: not reachable from here
            skipped.append((f"through {svc}'s published port", at, exc.message))
            continue
        ways.append((f"through {svc}'s published port {url.split('/')[2]}", at,
                     partial(_get, url)))
    return ways, skipped


def _one(ask: Callable[[], Any]) -> tuple[Any]:
    """``(ask(),)``: a truthy wrapper for :func:`wait_until` around an answer that may be 4xx."""
    return (ask(),)


def _get(url: str) -> Any:
    """GET ``url`` from this machine, bounded."""
    import requests

    return requests.get(url, timeout=10)


class TestFlaskStack:
    """Flask's foot-guns in the stack: the debugger by every way in, and every GET route."""

    @pytest.mark.imagegate_check("IG-FLASK-DEBUGGER")
    def test_IG_FLASK_DEBUGGER_in_the_stack(self, stack_up: Any, imagegate_settings: Any,
                                            compose_model: Any, imagegate_record: Record) -> None:
        """IG-FLASK-DEBUGGER: no debugger.js from the web service, asked from inside the
        network, through its published port and through each proxy's."""
        from imagegate.checks.flask import DEBUGGER_PATH, debugger_check

        ways, unreachable = _ways(stack_up, imagegate_settings, compose_model, DEBUGGER_PATH)
        answers: list[tuple[str, Any]] = [(how, OSError(why)) for how, _, why in unreachable]
        for how, _, ask in ways:
            try:
                answers.append((how, ask()))
            except Exception as exc:  # no HTTP answer that way: a skip of that way
                answers.append((how, exc))
        imagegate_record(debugger_check(answers, f"{compose_model.files[0].name}:service "
                                                 f"{imagegate_settings.web_service}"))

    @pytest.mark.imagegate_check("IG-FLASK-ROUTES")
    def test_IG_FLASK_ROUTES(self, stack_up: Any, imagegate_settings: Any, compose_model: Any,
                             imagegate_record: Record) -> None:
        """IG-FLASK-ROUTES: every argument-free GET route of the app's url_map (read inside the
        web container) answers below 500 from inside the network; a 5xx names the route, its
        status and the server's log line for it. ``flask_routes_ignore`` leaves routes out. A
        ``session`` cookie a route sets is checked against the well-known keys too
        (IG-FLASK-SECRET-KEY proven from outside)."""
        import time

        from imagegate.checks.flask import (
            app_facts,
            routes_check,
            routes_to_ask,
            session_cookie,
            session_cookies_check,
        )

        s = imagegate_settings
        ctr = stack_up.container(s.web_service)
        interpreter = runtime.server_interpreter(ctr)
        if isinstance(interpreter, runtime.Skip):
            pytest.skip(f"inconclusive: {interpreter.reason}")
        app = app_facts(ctr, interpreter)
        answers: dict[str, tuple[int | None, str]] = {}
        cookies: dict[str, str] = {}
        for rule in routes_to_ask(app, s.flask_routes_ignore):
            started = int(time.time()) - 1
            try:
                answer = stack_up.http(s.web_service, rule, container_port=s.web_port)
                status: int | None = answer.status_code
                said = ""
                if session_cookie(answer.headers):
                    cookies[rule] = session_cookie(answer.headers)
            except Exception as exc:  # the probe's: no HTTP answer
                status, said = None, str(exc)
            if status is not None and status >= 500:
                said = _log_line(ctr, started, rule)
            answers[rule] = (status, said)
        where = f"{compose_model.files[0].name}:service {s.web_service}"
        # a session cookie a route set is the key's proof from outside (as flask-unsign does)
        imagegate_record([*routes_check(app, answers, s.flask_routes_ignore, where),
                          *session_cookies_check(cookies, where)])


def _log_line(ctr: Any, since: int, rule: str) -> str:
    """The server's log line for a failed request: its exception line, else the last line
    naming the route, else its last line."""
    from imagegate.run.stack import exception_line

    try:
        lines = [ln.rstrip() for ln in ctr.logs(since=since).decode(errors="replace").splitlines()
                 if ln.strip()]
    except Exception as exc:  # the container's logs are gone: say so, the status stands
        return f"(no log: {exc})"
    named = [ln.strip() for ln in lines if rule in ln]
    return (exception_line(lines) or (named or lines or ["(no log line)"])[-1])[:240]
