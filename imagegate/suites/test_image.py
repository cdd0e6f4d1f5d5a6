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

from imagegate.facts import runtime
from imagegate.facts.policy import CHECKS, pip_in_image, tools_on_path
from imagegate.results.findings import Finding

pytestmark = pytest.mark.image

Record = Callable[[Any], None]
BUILD_TOOLS = ("gcc", "cc", "make", "pip", "pip3", "apt-get", "dpkg")


def _findings(result: Any) -> list[Finding]:
    """A check returns one Finding or a list of them."""
    return list(result) if isinstance(result, list | tuple) else [result]


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
        imagegate_record(_findings(CHECKS[check_id](image_facts, imagegate_settings)))

    @pytest.mark.imagegate_check("IG-RUN-NO-BUILD-TOOLS")
    def test_IG_RUN_NO_BUILD_TOOLS(self, image_facts: Any, imagegate_record: Record) -> None:
        """IG-RUN-NO-BUILD-TOOLS: no compiler, pip or package manager resolves on the image's PATH
        (read from its files, as the container would resolve them)."""
        found = tools_on_path(image_facts, BUILD_TOOLS)
        imagegate_record([Finding("IG-RUN-NO-BUILD-TOOLS", False,
                                  f"{tool} is on PATH in the final image ({path})", path)
                          for tool, path in found.items()]
                         or [Finding("IG-RUN-NO-BUILD-TOOLS", True,
                                     "no " + ", ".join(BUILD_TOOLS) + " on PATH")])


class TestRunningContainer:
    """One running container of the image, judged from outside."""

    @pytest.mark.imagegate_check("IG-RUN-HEALTHY")
    def test_IG_RUN_HEALTHY(self, app_ready: Any, app_start: Any) -> None:
        """IG-RUN-HEALTHY: the container stays up and becomes ready — its HEALTHCHECK healthy
        within the start period, or (without one) the health probe answering."""
        __tracebackhide__ = True
        if not app_ready.ok:
            pytest.fail(f"{app_ready.message}\n{app_ready.detail}".strip(), pytrace=False)
        if not app_start.has_healthcheck():
            return
        hc = app_start.container.attrs["Config"]["Healthcheck"]
        start_period = hc.get("StartPeriod", 0) / 1e9
        took = app_ready.to_healthy
        if start_period:
            assert took is not None and took <= start_period, (
                f"first passing healthcheck {took}s after start; start period is "
                f"{start_period:g}s")

    @pytest.mark.imagegate_check("IG-RUN-USER-NONROOT")
    def test_IG_RUN_USER_NONROOT(self, ready_container: Any) -> None:
        """IG-RUN-USER-NONROOT: `docker exec` (and the server) runs as a non-root uid."""
        uid = _fact(runtime.exec_uid(ready_container.container))
        assert uid != 0, "commands in the container run as uid 0 (root)"

    @pytest.mark.imagegate_check("IG-RUN-PROCS-NONROOT")
    def test_IG_RUN_PROCS_NONROOT(self, ready_container: Any) -> None:
        """IG-RUN-PROCS-NONROOT: no process in the container (server master, workers) is root."""
        procs = _fact(runtime.process_uids(ready_container.container))
        assert procs, "no processes seen in the container"
        root = [f"pid {p.pid} {p.command[:80]}" for p in procs if p.uid == 0]
        assert not root, "processes run as uid 0: " + "; ".join(root)

    @pytest.mark.imagegate_check("IG-RUN-PORT-LISTENING")
    def test_IG_RUN_PORT_LISTENING(self, ready_container: Any, imagegate_settings: Any) -> None:
        """IG-RUN-PORT-LISTENING: the web port listens on every interface in the container."""
        port = imagegate_settings.web_port
        sockets = _fact(runtime.listening_sockets(ready_container.container))
        on_port = [s for s in sockets if s.port == port]
        seen = ", ".join(sorted(f"{s.address}:{s.port}" for s in sockets)) or "nothing"
        assert on_port, f"expected a listener on port {port}; listening: {seen}"
        assert not all(s.loopback_only for s in on_port), (
            f"port {port} listens on loopback only ({seen}): unreachable through a published "
            "port (bind 0.0.0.0)")

    @pytest.mark.imagegate_check("IG-RUN-HTTP-HEALTH")
    def test_IG_RUN_HTTP_HEALTH(self, ready_container: Any, imagegate_settings: Any) -> None:
        """IG-RUN-HTTP-HEALTH: the server answers HTTP on the web port — from inside its
        network when compose runs it (the gate's probe), else through the published loopback
        port — ``health_path`` with a 2xx; without one, ``GET /`` with any status (the stack
        stage wants ``/`` below 500)."""
        path = imagegate_settings.health_path or "/"
        try:
            resp = ready_container.get(path)
        except Exception as exc:  # requests' or the probe's: either way no HTTP answer
            where = ready_container.url or "the gate's probe"
            pytest.fail(f"GET {path} through {where}: no HTTP answer ({exc})", pytrace=False)
        if imagegate_settings.health_path:
            assert 200 <= resp.status_code < 300, f"GET {path}: expected 2xx, got {resp.status_code}"

    @pytest.mark.imagegate_check("IG-RUN-APP-NOT-WRITABLE")
    def test_IG_RUN_APP_NOT_WRITABLE(self, ready_container: Any, app_interpreter: str) -> None:
        """IG-RUN-APP-NOT-WRITABLE: the running user can write nothing under its WORKDIR."""
        ctr = ready_container.container
        workdir = ctr.attrs["Config"].get("WorkingDir") or ""
        if not workdir or workdir == "/":
            pytest.skip("no WORKDIR: no app directory to check")
        writable = _fact(runtime.writable_paths(ctr, workdir, app_interpreter))
        shown = "\n".join(writable[:20])
        assert not writable, f"{len(writable)} paths under {workdir} are writable by the app " \
                             f"user:\n{shown}"

    @pytest.mark.imagegate_check("IG-RUN-NO-PIP-MODULE")
    def test_IG_RUN_NO_PIP_MODULE(self, ready_container: Any, app_interpreter: str,
                                  image_facts: Any) -> None:
        """IG-RUN-NO-PIP-MODULE: the server's interpreter cannot import pip."""
        importable = _fact(runtime.pip_importable(ready_container.container, app_interpreter))
        where = ", ".join(pip_in_image(image_facts)[:3]) or "its sys.path"
        assert not importable, f"{app_interpreter} can import pip ({where})"

    @pytest.mark.imagegate_check("IG-RUN-PIP-CHECK")
    def test_IG_RUN_PIP_CHECK(self, ready_container: Any, app_interpreter: str) -> None:
        """IG-RUN-PIP-CHECK: `pip check` is clean for the server's interpreter (pip copied in)."""
        ok, output = _fact(runtime.pip_check(ready_container.container, app_interpreter))
        assert ok, f"pip check with {app_interpreter}: {output.strip()[:300]}"


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
