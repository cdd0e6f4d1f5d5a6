"""Generic stack checks every gated Flask project gets, one property per test, stable ids.

They run against the session's compose project (the ``stack`` fixture: the project's compose
file with the built image pinned). A project's own ``tests_stack/`` imports these classes so they
run there too. Each check can be skipped by listing its id in ``ignore``.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.stack


def _skip_ignored(settings: Any, check_id: str) -> None:
    """Skip when the project put ``check_id`` on its ignore list."""
    if settings.ignored(check_id):
        pytest.skip(f"{check_id} is on the ignore list")


def _containers(stack: Any) -> dict[str, Any]:
    """Service name → its (reloaded) container."""
    return {svc: stack.container(svc) for svc in stack.services()}


def _uid_of(user: str, pid: int) -> int | None:
    """The uid a container runs as: numeric ``Config.User``, else the process's real uid."""
    name = user.split(":", 1)[0]
    if name.isdigit():
        return int(name)
    if name in ("", "root"):
        return 0
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class TestStack:
    """The compose project as a whole: health, exposure and privileges."""

    def test_IG_STACK_HEALTHY(self, stack: Any, imagegate_settings: Any) -> None:
        """IG-STACK-HEALTHY: every service runs, and every one with a healthcheck is healthy."""
        __tracebackhide__ = True
        _skip_ignored(imagegate_settings, "IG-STACK-HEALTHY")
        bad = []
        for svc, ctr in _containers(stack).items():
            state = ctr.attrs["State"]
            health = (state.get("Health") or {}).get("Status", "none")
            if state.get("Status") != "running" or health not in ("healthy", "none"):
                bad.append(f"{svc}: status={state.get('Status')} health={health}")
        assert not bad, "services not up and healthy: " + "; ".join(bad)

    def test_IG_STACK_LOOPBACK_ONLY(self, stack: Any, imagegate_settings: Any) -> None:
        """IG-STACK-LOOPBACK-ONLY: the web port is published, and every published port of every
        service is bound to 127.0.0.1 (nothing listens on the host's other interfaces)."""
        __tracebackhide__ = True
        _skip_ignored(imagegate_settings, "IG-STACK-LOOPBACK-ONLY")
        exposed = []
        web_bound = False
        for svc, ctr in _containers(stack).items():
            for port, bindings in (ctr.attrs["NetworkSettings"].get("Ports") or {}).items():
                for binding in bindings or []:
                    if binding.get("HostIp") != "127.0.0.1":
                        exposed.append(f"{svc} {port} on {binding.get('HostIp') or '0.0.0.0'}")
                    if (svc == imagegate_settings.web_service
                            and port == f"{imagegate_settings.web_port}/tcp"):
                        web_bound = True
        assert web_bound, (f"{imagegate_settings.web_service}:{imagegate_settings.web_port} "
                           "is not published")
        assert not exposed, "published beyond loopback: " + "; ".join(exposed)

    def test_IG_STACK_WEB_NONROOT(self, stack: Any, imagegate_settings: Any) -> None:
        """IG-STACK-WEB-NONROOT: the web container runs as a non-root uid."""
        __tracebackhide__ = True
        _skip_ignored(imagegate_settings, "IG-STACK-WEB-NONROOT")
        ctr = stack.container(imagegate_settings.web_service)
        user = ctr.attrs["Config"].get("User") or ""
        uid = _uid_of(user, int(ctr.attrs["State"].get("Pid") or 0))
        assert uid is not None, f"cannot tell the uid of user {user!r}"
        assert uid != 0, f"{imagegate_settings.web_service} runs as root (User={user!r})"

    def test_IG_STACK_NOT_PRIVILEGED(self, stack: Any, imagegate_settings: Any) -> None:
        """IG-STACK-NOT-PRIVILEGED: no service runs privileged or adds capabilities."""
        __tracebackhide__ = True
        _skip_ignored(imagegate_settings, "IG-STACK-NOT-PRIVILEGED")
        bad = []
        for svc, ctr in _containers(stack).items():
            host = ctr.attrs["HostConfig"]
            if host.get("Privileged"):
                bad.append(f"{svc}: privileged")
            if host.get("CapAdd"):
                bad.append(f"{svc}: cap_add {host['CapAdd']}")
        assert not bad, "; ".join(bad)


class TestStackHttp:
    """Each configured ``http_checks`` entry (or the health path) answers as expected."""

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """One test per HttpCheck in the settings, id ``IG-STACK-HTTP[<path>]``."""
        if "http_check" in metafunc.fixturenames:
            from imagegate.plugin import SETTINGS_KEY

            checks = metafunc.config.stash[SETTINGS_KEY].checks
            metafunc.parametrize("http_check", checks, ids=[c.path for c in checks])

    def test_IG_STACK_HTTP(self, http_check: Any, stack_url: str, imagegate_settings: Any) -> None:
        """IG-STACK-HTTP: ``GET path`` through the published port gives the expected status
        (and body text)."""
        __tracebackhide__ = True
        import requests

        _skip_ignored(imagegate_settings, "IG-STACK-HTTP")
        resp = requests.get(stack_url + http_check.path, timeout=10)
        assert resp.status_code == http_check.status, (
            f"GET {http_check.path}: expected {http_check.status}, got {resp.status_code}: "
            f"{resp.text[:200]!r}")
        if http_check.contains:
            assert http_check.contains in resp.text, (
                f"GET {http_check.path}: {http_check.contains!r} not in {resp.text[:200]!r}")
