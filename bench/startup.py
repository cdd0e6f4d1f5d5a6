"""Container start → first ``200`` from ``/healthz``: what a restart or a scale-out waits for.

Measured from just before the engine is asked to run the container (create + start, port
published on 127.0.0.1) to the first 200 answer, polled every 10 ms with a fresh connection.
"""

from __future__ import annotations

import functools
import http.client
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from imagegate.proc import wait_until
from imagegate.run.container import running

from .common import Ctx, Stats

POLL_INTERVAL = 0.01
CAP_SECONDS = 30.0
PORT = 8000


@dataclass(frozen=True)
class StartTimes:
    """Seconds to the first 200, and the part of it the engine spent before ``run`` returned."""

    to_200: Stats
    engine: Stats


def healthz_ok(url: str) -> bool:
    """True when ``GET /healthz`` answers 200 (one short-lived connection, 1 s timeout)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=1)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    finally:
        conn.close()


def start_times(ctx: Ctx, image: str, runs: int = 10) -> StartTimes:
    """``runs`` fresh containers of ``image``, each removed before the next starts."""
    ctx.cli.images.get(image)  # present locally, or ImageNotFound: containers.run would pull
    to_200: list[float] = []
    engine: list[float] = []
    for _ in range(runs):
        env = {"SECRET_KEY": secrets.token_hex(32)}
        started = time.perf_counter()
        with running(ctx.cli, image, ctx.session, env=env, port=PORT) as ctr:
            engine.append(time.perf_counter() - started)
            wait_until(functools.partial(healthz_ok, ctr.url), timeout=CAP_SECONDS,
                       interval=POLL_INTERVAL, what=f"{image} /healthz 200")
            to_200.append(time.perf_counter() - started)
    return StartTimes(Stats(tuple(to_200)), Stats(tuple(engine)))
