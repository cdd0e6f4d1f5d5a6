"""Load: 2,000 requests at concurrency 20, no errors, and every /hits counted exactly once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from imagegate.run.stack import Stack

pytestmark = [pytest.mark.stack, pytest.mark.slow]

REQUESTS = 2000
CONCURRENCY = 20


def _redis_hits(stack: Stack) -> int:
    """The counter straight from Redis (redis-cli inside the redis container)."""
    code, out = stack.container("redis").exec_run(["redis-cli", "get", "hits"])
    assert code == 0, out
    text = out.decode().strip()
    return int(text) if text else 0


def test_load_no_errors_and_exact_count(stack: Stack, stack_url: str,
                                        record_property: pytest.RecordProperty) -> None:
    """Half the requests go to /, half to /hits; all 200; Redis grows by exactly the /hits."""
    local = threading.local()
    paths = ["/" if i % 2 else "/hits" for i in range(REQUESTS)]

    def fetch(path: str) -> str:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        try:
            resp = session.get(stack_url + path, timeout=(3, 10))
        except requests.RequestException as exc:
            return f"{path}: {type(exc).__name__}: {exc}"
        return "" if resp.status_code == 200 else f"{path}: HTTP {resp.status_code}"

    before = _redis_hits(stack)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        errors = [e for e in pool.map(fetch, paths) if e]
    seconds = time.monotonic() - started
    record_property("requests_per_second", round(REQUESTS / seconds))
    assert not errors, f"{len(errors)} errors, e.g. {errors[:5]}"
    assert _redis_hits(stack) - before == paths.count("/hits")
