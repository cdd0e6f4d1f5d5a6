"""Faults on a running stack: Redis going away and back, SIGTERM mid-request, a crash.

Each test brings its own stack (``own_fault_stack``: fresh, healthy, ready) and so its own
preconditions: no test relies on what the one before it stopped, restarted or crashed.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import requests
from stack_helpers import get, status_of

from imagegate.proc import wait_until
from imagegate.run.stack import Stack

# Each fault needs its own project and seconds of waiting: run by make test, not the gate.
pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.xdist_group("faults")]


def _ready(stack: Stack) -> None:
    """The precondition of every fault test: web answers /readyz 200 (Redis reachable)."""
    __tracebackhide__ = True
    assert status_of(stack.url("web", "/readyz")) == 200, "the stack is not ready to break"


def _state(stack: Stack, service: str) -> dict[str, Any]:
    """The container's State plus its RestartCount, freshly read."""
    attrs = stack.container(service).attrs
    return {**attrs["State"], "RestartCount": attrs["RestartCount"]}


def test_redis_outage_and_recovery(own_fault_stack: Stack) -> None:
    """Redis stopped: /readyz 503, /healthz 200. Back: ready again, web never restarted, and
    the counter kept its value (append-only file on the named volume)."""
    stack = own_fault_stack
    _ready(stack)
    before = get(stack.url("web", "/hits")).json()["hits"]
    web = _state(stack, "web")
    stack.stop("redis")
    ready = get(stack.url("web", "/readyz"))
    assert ready.status_code == 503 and ready.json()["status"] == "unavailable", ready.text
    assert get(stack.url("web", "/healthz")).status_code == 200
    assert get(stack.url("web", "/hits")).status_code == 503

    stack.start("redis")
    wait_until(lambda: status_of(stack.url("web", "/readyz")) == 200, timeout=30, interval=0.3,
               what="/readyz 200 after Redis came back")
    after = _state(stack, "web")
    assert (after["StartedAt"], after["RestartCount"]) == (web["StartedAt"], web["RestartCount"])
    assert get(stack.url("web", "/hits")).json()["hits"] == before + 1


def test_sigterm_lets_inflight_request_finish(own_fault_stack: Stack) -> None:
    """`docker stop` (SIGTERM) mid-request: the 3 s request still gets its 200, and web exits 0
    well inside the 10 s before Docker would SIGKILL."""
    stack = own_fault_stack
    _ready(stack)
    slow_url = stack.url("web", "/_fault/slow?seconds=3")
    result: dict[str, Any] = {}

    def request() -> None:
        try:
            result["status"] = requests.get(slow_url, timeout=20).status_code
        except requests.RequestException as exc:
            result["error"] = exc

    worker = threading.Thread(target=request, daemon=True)
    worker.start()
    wait_until(lambda: "slow request sleeping" in stack.logs("web", tail=20), timeout=10,
               what="the slow request in flight")
    ctr = stack.container("web")
    ctr.stop(timeout=10)  # SIGTERM, then SIGKILL (exit 137) at 10 s if it has not exited
    worker.join(timeout=20)
    state = _state(stack, "web")
    assert not worker.is_alive(), "the slow request never returned"
    assert result == {"status": 200}, result
    assert state["ExitCode"] == 0, state  # exited on SIGTERM, before the engine's SIGKILL


def test_crashed_web_comes_back(own_fault_stack: Stack) -> None:
    """web's main process SIGKILLed from the host (a crash, not `docker kill`): the restart
    policy starts it again and it answers."""
    stack = own_fault_stack
    _ready(stack)
    before = _state(stack, "web")
    stack.crash("web")

    def back() -> bool:
        now = _state(stack, "web")
        return (now["RestartCount"] > before["RestartCount"] and now["Running"]
                and status_of(stack.url("web", "/readyz")) == 200)

    wait_until(back, timeout=30, interval=0.3, what="web restarted by policy and ready",
               describe=lambda: repr(_state(stack, "web").get("Status")))
