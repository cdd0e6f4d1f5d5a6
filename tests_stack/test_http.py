"""The app over HTTP through the session stack: routes, the Redis counter, JSON errors."""

from __future__ import annotations

import pytest
from stack_helpers import get, status_of

from imagegate.proc import wait_until
from imagegate.pytest_plugin.stack import StackFactory

pytestmark = pytest.mark.stack


def test_index_greets(stack_url: str) -> None:
    """/ answers the default greeting as text."""
    resp = get(stack_url + "/")
    assert resp.status_code == 200
    assert resp.text == "Hello, World! from imagegate"
    assert resp.headers["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize(("path", "body"), [
    ("/healthz", {"status": "ok"}),
    ("/readyz", {"status": "ready"}),
])
def test_probe_answers_200(stack_url: str, path: str, body: dict[str, str]) -> None:
    """Liveness and readiness both pass with Redis up."""
    resp = get(stack_url + path)
    assert (resp.status_code, resp.json()) == (200, body)


def test_unknown_path_is_json_404(stack_url: str) -> None:
    """A 404 is JSON like every other error."""
    resp = get(stack_url + "/no-such-page")
    assert resp.status_code == 404
    assert resp.headers["Content-Type"].startswith("application/json")
    assert resp.json() == {"error": "not found", "status": 404}


def test_hits_increment(stack_url: str) -> None:
    """Each /hits adds one."""
    first = get(stack_url + "/hits").json()["hits"]
    second = get(stack_url + "/hits").json()["hits"]
    assert second == first + 1


@pytest.mark.slow  # its own compose project (~5 s): make test, not the gate
def test_hits_survive_web_restart(stack_factory: StackFactory) -> None:
    """The counter lives in Redis: restarting web keeps it (and web answers again). On a stack
    of its own: the session's stack is shared by every other test and is never restarted."""
    stack = stack_factory()
    before = get(stack.url("web", "/hits")).json()["hits"]
    started = stack.container("web").attrs["State"]["StartedAt"]
    stack.restart("web")
    wait_until(lambda: status_of(stack.url("web", "/readyz")) == 200, timeout=30,
               what="web ready after restart")
    after = get(stack.url("web", "/hits")).json()["hits"]
    assert after == before + 1
    assert stack.container("web").attrs["State"]["StartedAt"] != started, "web was not restarted"
