"""Generic image checks every gated Flask project gets, one catalogue id per test.

``TestImagePolicy`` reads metadata and saved layers (nothing runs). ``TestRunningContainer``
looks at one running container of the image from the OUTSIDE — the engine's view of its
processes, its sockets in /proc, files copied out, commands run with the server's own
interpreter — so an image without ss, netstat, getent, ps or even a shell gets skips with
reasons, never errors. A project's own ``tests_image/`` may import these classes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from imagegate.checks.running import RUNNING_CHECKS, Running, findings, healthy
from imagegate.facts import runtime
from imagegate.facts.policy import CHECKS

pytestmark = pytest.mark.image

Record = Callable[[Any], None]


def _fact(value: Any) -> Any:
    """``value``, or a pytest skip with the reason when it is a :class:`runtime.Skip`."""
    __tracebackhide__ = True
    if isinstance(value, runtime.Skip):
        pytest.skip(value.reason)
    return value


class TestImagePolicy:
    """Image policy from ``docker image inspect``, history and the flattened layers."""

    @pytest.mark.parametrize("check_id", [
        pytest.param(cid, marks=pytest.mark.imagegate_check(cid), id=cid) for cid in sorted(CHECKS)
    ])
    def test_policy(self, check_id: str, image_facts: Any, imagegate_settings: Any,
                    imagegate_record: Record) -> None:
        """IG-* policy check ``check_id`` holds for the image."""
        imagegate_record(findings(check_id, CHECKS[check_id](image_facts, imagegate_settings)))


class TestRunningContainer:
    """One running container of the image, judged from outside."""

    @pytest.mark.imagegate_check("IG-RUN-HEALTHY")
    def test_IG_RUN_HEALTHY(self, app_ready: Any, app_start: Any,
                            imagegate_record: Record) -> None:
        """IG-RUN-HEALTHY: the container stays up and becomes ready — its HEALTHCHECK healthy
        within the start period, or (without one) the health probe answering."""
        imagegate_record(healthy(app_ready, app_start))

    @pytest.mark.parametrize("check_id", [
        pytest.param(cid, marks=pytest.mark.imagegate_check(cid), id=cid)
        for cid in RUNNING_CHECKS])
    def test_running(self, check_id: str, ready_container: Any, imagegate_settings: Any,
                     request: pytest.FixtureRequest, imagegate_record: Record) -> None:
        """The run check ``check_id`` holds for the ready container."""
        facts = Running(ready_container, imagegate_settings, request.getfixturevalue,
                        request.getfixturevalue("run_facts_ahead"))
        imagegate_record(findings(check_id, RUNNING_CHECKS[check_id](facts)))


class TestFlask:
    """Flask's own foot-guns on the running web container (as compose runs it, when it does):
    the debugger, the development server, debug settings, the secret key."""

    @pytest.mark.imagegate_check("IG-FLASK-DEBUGGER")
    def test_IG_FLASK_DEBUGGER(self, ready_container: Any, imagegate_record: Record) -> None:
        """IG-FLASK-DEBUGGER: the Werkzeug debugger's resource request gets no debugger.js,
        from inside the network (the probe) and through the published port."""
        from imagegate.checks.flask import DEBUGGER_PATH, debugger_check

        ways = []
        if ready_container.probe_get is not None:
            ways.append(("from inside the network", ready_container.get))
        if ready_container.url:
            ways.append((f"through {ready_container.url}", _published(ready_container.url)))
        imagegate_record(debugger_check([(how, _ask(get, DEBUGGER_PATH)) for how, get in ways]))

    @pytest.mark.imagegate_check("IG-FLASK-DEV-SERVER")
    def test_IG_FLASK_DEV_SERVER(self, ready_container: Any, imagegate_record: Record) -> None:
        """IG-FLASK-DEV-SERVER: no process runs Werkzeug's development server (``flask run``,
        ``werkzeug.serving``); a ``Server: Werkzeug`` answer corroborates ``python app.py``."""
        from imagegate.checks.flask import dev_server_check

        commands = _fact(runtime.commands(ready_container.container))
        answer = _ask(ready_container.get, "/")
        header = "" if isinstance(answer, BaseException) else _header(answer, "Server")
        imagegate_record(dev_server_check(commands, header))

    @pytest.mark.imagegate_check("IG-FLASK-DEBUG-ENV")
    def test_IG_FLASK_DEBUG_ENV(self, ready_container: Any, flask_app: Any,
                                imagegate_settings: Any, imagegate_record: Record) -> None:
        """IG-FLASK-DEBUG-ENV: FLASK_DEBUG/FLASK_ENV=development in no environment the
        container has, and the running app's DEBUG/TESTING off."""
        from imagegate.checks.flask import debug_env_check

        ctr = ready_container.container
        env = _env(ctr.attrs["Config"].get("Env"))
        image_env = _env((ctr.image.attrs.get("Config") or {}).get("Env"))
        imagegate_record(debug_env_check(env, image_env, flask_app,
                                         service=imagegate_settings.web_service))

    @pytest.mark.imagegate_check("IG-FLASK-SECRET-KEY")
    def test_IG_FLASK_SECRET_KEY(self, flask_app: Any, imagegate_record: Record) -> None:
        """IG-FLASK-SECRET-KEY: the running app's key is set, 16+ bytes, not a known default
        (compared as salted hashes inside the container; never printed)."""
        from imagegate.checks.flask import secret_key_check

        imagegate_record(secret_key_check(flask_app))


def _ask(get: Callable[[str], Any], path: str) -> Any:
    """``get(path)``, or the exception that stopped it (a check judges both)."""
    try:
        return get(path)
    except Exception as exc:  # requests' or the probe's: no HTTP answer either way
        return exc


def _published(url: str) -> Callable[[str], Any]:
    """GET through a published port, bounded."""
    import requests

    return lambda path: requests.get(url + path, timeout=5)


def _header(answer: Any, name: str) -> str:
    """A header of a probe Answer or a requests Response ("" when absent)."""
    if hasattr(answer, "header"):
        return str(answer.header(name))
    return str(answer.headers.get(name, ""))


def _env(items: Any) -> dict[str, str]:
    """``["K=v", …]`` as a dict."""
    return dict(item.split("=", 1) for item in items or [] if "=" in item)
