"""Throughput and tail latency of ``/`` and ``/hits`` over loopback: our stack vs the seed's.

Ours is ``compose.yml`` as shipped (web + Redis, our gunicorn settings: gthread workers x threads,
keep-alive), brought up by :func:`imagegate.run.stack.running_stack`. The seed is its image on the same
base with ``gunicorn -w 4`` sync workers, next to the same Redis image on a labelled network.
Both stacks are up at once and take turns, round by round. The load generator is this process:
threads with one keep-alive ``http.client`` connection each (re-opened whenever the server closes
it, as sync workers always do), a fixed number of requests and a time cap per round, all against
the 127.0.0.1 port the engine published.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from imagegate.build import pipeline
from imagegate.engine import session_labels
from imagegate.proc import wait_until
from imagegate.run.container import running
from imagegate.run.stack import running_stack

from .common import PATHS, ROOT, Ctx, Stats, percentile
from .startup import healthz_ok

REDIS_COMMAND = ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--dir", "/data",
                 "--appendonly", "yes"]  # what compose.yml runs, so both sides pay the same


@dataclass(frozen=True)
class Round:
    """One bounded round of load: what was sent, what failed, how long it took, latencies (ms)."""

    requests: int
    errors: int
    seconds: float
    latencies_ms: tuple[float, ...]

    @property
    def rps(self) -> float:
        """Completed requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def p50(self) -> float:
        """Median latency in ms."""
        return percentile(self.latencies_ms, 50)

    @property
    def p99(self) -> float:
        """99th percentile latency in ms."""
        return percentile(self.latencies_ms, 99)


@dataclass(frozen=True)
class LoadFigures:
    """Rounds against one path, summarised as medians over rounds."""

    rounds: tuple[Round, ...]

    @property
    def rps(self) -> Stats:
        """Requests per second, one value per round."""
        return Stats(tuple(r.rps for r in self.rounds))

    @property
    def p50(self) -> Stats:
        """p50 latency (ms), one value per round."""
        return Stats(tuple(r.p50 for r in self.rounds))

    @property
    def p99(self) -> Stats:
        """p99 latency (ms), one value per round."""
        return Stats(tuple(r.p99 for r in self.rounds))

    @property
    def errors(self) -> int:
        """Failed or non-200 requests over all rounds."""
        return sum(r.errors for r in self.rounds)


def hammer(port: int, path: str, *, total: int, concurrency: int, cap: float) -> Round:
    """Send ``total`` GETs of ``path`` from ``concurrency`` threads; stop early after ``cap`` s."""
    counter = itertools.count()
    deadline = time.monotonic() + cap
    results: list[tuple[list[float], int]] = []
    lock = threading.Lock()

    def worker() -> None:
        latencies: list[float] = []
        errors = 0
        conn: http.client.HTTPConnection | None = None
        while next(counter) < total and time.monotonic() < deadline:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            started = time.perf_counter()
            try:
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
                latencies.append((time.perf_counter() - started) * 1000)
                errors += resp.status != 200
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                errors += 1
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()
        with lock:
            results.append((latencies, errors))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(cap + 30)
    seconds = time.perf_counter() - started
    latencies = [ms for lats, _ in results for ms in lats]
    errors = sum(e for _, e in results)
    return Round(len(latencies), errors, seconds, tuple(latencies))


def measure(ports: dict[str, int], *, requests: int, rounds: int, concurrency: int,
            warmup: int, cap: float,
            turn: Callable[[str], contextlib.AbstractContextManager[object]] | None = None,
            ) -> dict[str, dict[str, LoadFigures]]:
    """Per path: warm every stack up, then ``rounds`` rounds of ``requests`` requests, the stacks
    taking turns round by round (A B A B …) so that other work on the machine falls on both alike.

    ``turn(name)``, if given, is entered around each stack's warm-up and each of its rounds
    (:mod:`bench.variants` wakes a paused stack in it and pauses it again afterwards).
    Returns {stack name: {path: figures}}.
    """
    def during(name: str) -> contextlib.AbstractContextManager[object]:
        return turn(name) if turn is not None else contextlib.nullcontext()

    out: dict[str, dict[str, LoadFigures]] = {name: {} for name in ports}
    for path in PATHS:
        done: dict[str, list[Round]] = {name: [] for name in ports}
        for name, port in ports.items():
            with during(name):
                hammer(port, path, total=warmup, concurrency=concurrency, cap=cap)
        for _ in range(rounds):
            for name, port in ports.items():
                with during(name):
                    done[name].append(hammer(port, path, total=requests,
                                             concurrency=concurrency, cap=cap))
        for name in ports:
            out[name][path] = LoadFigures(tuple(done[name]))
    return out


def _port_of(url: str) -> int:
    """The port of ``http://127.0.0.1:<port>/...``."""
    return int(url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])


@dataclass(frozen=True)
class Served:
    """A stack serving: its web port on 127.0.0.1 and its containers (web first, then Redis)."""

    port: int
    containers: tuple[Any, ...]


@contextlib.contextmanager
def start_ours(ctx: Ctx, image: str, *, name: str = "bench", env: Mapping[str, str] | None = None,
               overrides: Sequence[str] = ()) -> Iterator[Served]:
    """``compose.yml`` up healthy with ``image`` as the web service, as project
    ``<session><name>``; ``env`` adds to the interpolation environment (``WEB_CONCURRENCY`` …)
    and ``overrides`` are compose files' texts applied after it."""
    project_dir = ctx.tmp / f"stack-{name}"  # no developer .env is read
    project_dir.mkdir(exist_ok=True)
    env = {"APP_IMAGE": image, "SECRET_KEY": secrets.token_hex(32), **(env or {})}
    with running_stack([ROOT / "compose.yml"], project=f"{ctx.session}{name}",
                       project_dir=project_dir, env=env, session=ctx.session,
                       wait_timeout=120, overrides=overrides) as stack:
        port = _port_of(stack.url("web", "/"))
        wait_serving(port)
        yield Served(port, (stack.container("web"), stack.container("redis")))


@contextlib.contextmanager
def our_stack(ctx: Ctx, image: str) -> Iterator[int]:
    """``compose.yml`` up healthy, as shipped, with ``image`` as the web service; yields the web
    port."""
    with start_ours(ctx, image) as served:
        yield served.port


@contextlib.contextmanager
def start_seed(ctx: Ctx, image: str, *, env: Mapping[str, str] | None = None) -> Iterator[Served]:
    """The seed's image (``gunicorn -w 4`` sync) + our Redis image on a labelled network;
    ``env`` adds to the web container's environment."""
    labels = session_labels(ctx.session)
    network = ctx.cli.networks.create(f"{ctx.session}-seed", labels=labels)
    redis: Any = None
    try:
        # Named after the session: the engine's DNS resolves it (generated names have "_").
        redis = ctx.cli.containers.run(pipeline.redis_image(), REDIS_COMMAND, detach=True,
                                       name=f"{ctx.session}-redis", network=network.name,
                                       labels=labels)
        web_env = {"SECRET_KEY": secrets.token_hex(32),
                   "REDIS_URL": f"redis://{redis.name}:6379/0", **(env or {})}
        with running(ctx.cli, image, ctx.session, env=web_env, port=8000,
                     network=network.name) as web:
            port = _port_of(web.url)
            wait_serving(port)
            yield Served(port, (web.container, redis))
    finally:
        if redis is not None:
            with contextlib.suppress(Exception):
                redis.remove(force=True, v=True)
        with contextlib.suppress(Exception):
            network.remove()


@contextlib.contextmanager
def seed_stack(ctx: Ctx, image: str) -> Iterator[int]:
    """The seed's stack (:func:`start_seed`); yields the web port."""
    with start_seed(ctx, image) as served:
        yield served.port


def wait_serving(port: int) -> None:
    """Until ``/healthz`` and ``/hits`` (Redis reachable) both answer 200."""
    def ready() -> bool:
        if not healthz_ok(f"http://127.0.0.1:{port}"):
            return False
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/hits")
            return conn.getresponse().status == 200
        finally:
            conn.close()

    wait_until(ready, timeout=60, interval=0.2, what=f"127.0.0.1:{port} serving /hits")


