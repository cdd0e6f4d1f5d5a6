"""Which of our stack's settings costs tail latency: the seed and variants of ``compose.yml``.

Every variant is ``compose.yml`` with our image, changed only through its variables
(``WEB_CONCURRENCY``, ``GUNICORN_THREADS``) and a small override (web's environment:
``GUNICORN_ACCESS_LOG``, ``GUNICORN_CMD_ARGS=--worker-class sync``; web's healthcheck interval).
All stacks are up at once and take turns round by round, as in :mod:`bench.load`, with one
difference: the stacks not under load are paused (``docker pause``), so that their healthchecks,
gunicorn heartbeats and Redis timers do not run beside the one being measured. Each stack then
pays for its own background work only, which is what the healthcheck variant is about.

``python -m bench.variants`` builds our image from the working tree (or takes ``--image``),
measures, prints the Markdown section and removes everything it started. ``bench/run.py`` can call
:func:`collect` with the images it built and append :func:`render`'s section.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagegate.proc import wait_until

from .common import Ctx
from .load import LoadFigures, Served, measure, start_ours, start_seed, wait_serving

SEED = "seed"
#: Every stack's gunicorn worker timeout while this runs (s). A paused worker misses heartbeats;
#: thawed, its master would count the pause and kill it when the pause was over 30 s (the
#: default). The timeout is no part of the request path.
PAUSE_SAFE_TIMEOUT = 120


@dataclass(frozen=True)
class Variant:
    """One configuration of our stack; ``None`` keeps what ``compose.yml`` ships."""

    name: str  # a key: table rows and the compose project name (lower-case letters, digits)
    title: str
    workers: int | None = None
    threads: int | None = None
    worker_class: str | None = None  # "sync" | "gthread"
    access_log: bool | None = None
    health_interval: str | None = None  # compose duration, e.g. "30s"
    probe: str | None = None  # a key of PROBES: the healthcheck's command

    def env(self) -> dict[str, str]:
        """Interpolation variables compose.yml reads."""
        env = {}
        if self.workers is not None:
            env["WEB_CONCURRENCY"] = str(self.workers)
        if self.threads is not None:
            env["GUNICORN_THREADS"] = str(self.threads)
        return env

    def overrides(self) -> list[str]:
        """Compose override texts (JSON is YAML) for what compose.yml has no variable for."""
        web: dict[str, object] = {}
        environment = {}
        if self.worker_class is not None:
            # GUNICORN_CMD_ARGS comes after the config file: it wins over worker_class there.
            environment["GUNICORN_CMD_ARGS"] = f"--worker-class {self.worker_class}"
        if self.access_log is not None:
            environment["GUNICORN_ACCESS_LOG"] = "1" if self.access_log else "0"
        if environment:
            web["environment"] = environment
        health: dict[str, object] = {}
        if self.health_interval is not None:
            health["interval"] = self.health_interval
        if self.probe is not None:
            health["test"] = PROBES[self.probe]
        if health:
            web["healthcheck"] = health
        return [json.dumps({"services": {"web": web}})] if web else []

    def settings(self) -> str:
        """The settings in one cell; what is not set reads "as shipped"."""
        if self == Variant(self.name, self.title):
            return "compose.yml as shipped"
        parts = []
        if self.workers is not None or self.threads is not None:
            parts.append(f"{_shown(self.workers)} x {_shown(self.threads)}")
        if self.worker_class is not None:
            parts.append(self.worker_class)
        if self.access_log is not None:
            parts.append(f"access log {'on' if self.access_log else 'off'}")
        if self.health_interval is not None or self.probe is not None:
            parts.append(f"healthcheck {self.health_interval or 'shipped'} "
                         f"{self.probe or 'shipped'}")
        return ", ".join(parts)


def _shown(value: int | None) -> str:
    """A number, or "shipped" when the variant leaves it alone."""
    return "shipped" if value is None else str(value)


#: Healthcheck commands: ``urllib`` is the old one (imports urllib.request: http.client, email,
#: ssl …, ~100 ms of CPU on this machine); ``socket`` sends one HTTP/1.0 request with nothing but
#: the socket module, without site-packages (``-I -S``), several times cheaper.
PROBES = {
    "urllib": ["CMD", "python3", "-c", "import urllib.request; "
               "urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"],
    "socket": ["CMD", "python3", "-I", "-S", "-c", "import socket; "
               "s = socket.create_connection(('127.0.0.1', 8000), 2); "
               "s.sendall(b'GET /healthz HTTP/1.0\\r\\n\\r\\n'); "
               "raise SystemExit(s.makefile('rb').readline().split()[1:2] != [b'200'])"],
}

#: What one run compares. The single-change rows start from the old defaults (2 x 4 gthread,
#: access log on, urllib healthcheck every 2 s), spelled out so they keep their meaning when the
#: defaults move.
# fmt: off
VARIANTS: tuple[Variant, ...] = (
    Variant("shipped", "as shipped"),
    Variant("old", "old defaults", 2, 4, "gthread", True, "2s", "urllib"),
    Variant("w4t1", "4 workers x 1 thread", 4, 1, "gthread", True, "2s", "urllib"),
    Variant("sync4", "4 sync workers", 4, 1, "sync", True, "2s", "urllib"),
    Variant("nolog", "access log off", 2, 4, "gthread", False, "2s", "urllib"),
    Variant("hc30", "healthcheck every 30 s", 2, 4, "gthread", True, "30s", "urllib"),
    Variant("probe", "cheap healthcheck", 2, 4, "gthread", True, "2s", "socket"),
    Variant("quiet", "no access log, cheap healthcheck", 2, 4, "gthread", False, "2s", "socket"),
    Variant("quiet4", "quiet, 4 x 1", 4, 1, "gthread", False, "2s", "socket"),
)
# fmt: on


@dataclass
class VariantRun:
    """What :func:`collect` measured: per stack name (a variant's, or ``seed``) and path."""

    variants: tuple[Variant, ...]
    load: dict[str, dict[str, LoadFigures]]
    requests: int
    rounds: int
    concurrency: int
    warmup: int
    cap: float
    worker_timeouts: dict[str, int] = field(default_factory=dict)
    seen: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    pause_safe_timeout: int = PAUSE_SAFE_TIMEOUT


def collect(ctx: Ctx, ours_image: str, seed_image: str, *, requests: int = 1500,
            rounds: int = 5, concurrency: int = 20, warmup: int = 300, cap: float = 20.0,
            variants: Sequence[Variant] = VARIANTS) -> VariantRun:
    """Bring up the seed's stack and one stack per variant (``ours_image`` as web), pause them,
    then measure as :func:`bench.load.measure` does, each stack woken for its turn only.

    ``cap`` bounds a round in seconds. Every stack runs with a worker timeout of
    :data:`PAUSE_SAFE_TIMEOUT`; the run counts ``WORKER TIMEOUT`` lines per stack all the same.
    """
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        seed_env = {"GUNICORN_CMD_ARGS": f"--timeout {PAUSE_SAFE_TIMEOUT}"}
        served: dict[str, Served] = {
            SEED: stack.enter_context(start_seed(ctx, seed_image, env=seed_env))}
        pause_safe = json.dumps({"services": {"web": {"environment": {
            "GUNICORN_TIMEOUT": str(PAUSE_SAFE_TIMEOUT)}}}})
        _pause(served[SEED])
        for v in variants:
            ctx.log(f"variants: up {v.name} ({v.settings()})")
            served[v.name] = stack.enter_context(
                start_ours(ctx, ours_image, name=v.name, env=v.env(),
                           overrides=[pause_safe, *v.overrides()]))
            _pause(served[v.name])
        stack.callback(_wake_all, list(served.values()))  # compose down wants them running

        turns = dict.fromkeys(served, 0)

        @contextlib.contextmanager
        def turn(name: str) -> Iterator[None]:
            turns[name] += 1
            if name == SEED:
                ctx.log(f"variants: turn {turns[name]} of {2 * (rounds + 1)} (warm-ups included)")
            _unpause(served[name])
            try:
                yield
            finally:
                _pause(served[name])

        load = measure({name: s.port for name, s in served.items()}, requests=requests,
                       rounds=rounds, concurrency=concurrency, warmup=warmup, cap=cap, turn=turn)
        timeouts = {name: _worker_timeouts(s) for name, s in served.items()}
        seen = {name: _seen(s) for name, s in served.items()}
    return VariantRun(tuple(variants), load, requests, rounds, concurrency, warmup, cap,
                      timeouts, seen, time.monotonic() - started)


def _pause(served: Served) -> None:
    """Freeze the stack's containers (web first, so it stops calling Redis)."""
    for container in served.containers:
        _settle(container, "paused", container.pause)


def _unpause(served: Served) -> None:
    """Thaw the stack (Redis first) and wait until it serves ``/hits`` again."""
    for container in reversed(served.containers):
        _settle(container, "running", container.unpause)
    wait_serving(served.port)


def _settle(container: Any, status: str, action: Callable[[], object]) -> None:
    """``action`` until the container's status is ``status``: the freezer can refuse for a
    moment ("unable to freeze") while a healthcheck process is being started in it."""
    def done() -> bool:
        container.reload()
        if container.status != status:
            action()
            container.reload()
        return bool(container.status == status)

    wait_until(done, timeout=30, interval=0.2, what=f"{container.name} {status}")


def _wake_all(stacks: list[Served]) -> None:
    """Unpause whatever is still paused (teardown after an error included)."""
    for served in stacks:
        for container in served.containers:
            with contextlib.suppress(Exception):
                container.reload()
                if container.status == "paused":
                    container.unpause()


def _worker_timeouts(served: Served) -> int:
    """``WORKER TIMEOUT`` lines gunicorn's master logged in the web container (stderr)."""
    return _stderr(served).count("WORKER TIMEOUT")


def _seen(served: Served) -> str:
    """What the web container's own logs say it ran: worker class, workers booted, access log
    lines (stdout), e.g. ``sync, 4 workers, 0 access lines``: the variant is what it claims."""
    err = _stderr(served)
    worker = err.split("Using worker: ", 1)[-1].split()[0] if "Using worker: " in err else "?"
    out = served.containers[0].logs(stdout=True, stderr=False).decode(errors="replace")
    booted, access = err.count("Booting worker"), out.count('"GET /')
    return f"{worker}, {booted} workers, {access} access lines"


def _stderr(served: Served) -> str:
    """The web container's stderr so far (gunicorn's error log)."""
    return str(served.containers[0].logs(stdout=False, stderr=True).decode(errors="replace"))


def render(run: VariantRun) -> str:
    """The Markdown section (the template RESULTS.md includes), for this run alone."""
    from .render import render_section
    from .results import plain

    return render_section("variants", run=plain(run))


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options (the defaults fit a run of about 8 minutes on 2 cores)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image", help="our image to run (default: build the working tree, tagged "
                   "imagegate/bench-ours-imagegate:local)")
    p.add_argument("--seed-image", default="imagegate/bench-seed-imagegate:local",
                   help="the seed's image (built from bench/seed/Dockerfile when missing)")
    p.add_argument("--requests", type=int, default=1500, help="GETs per round (default 1500)")
    p.add_argument("--rounds", type=int, default=5, help="rounds per path (default 5)")
    p.add_argument("--concurrency", type=int, default=20, help="client threads (default 20)")
    p.add_argument("--warmup", type=int, default=300, help="warm-up GETs per stack and path")
    p.add_argument("--only", help="comma-separated variant names (default: all): "
                   + ", ".join(v.name for v in VARIANTS))
    return p.parse_args(argv)


def _images(ctx: Ctx, args: argparse.Namespace) -> tuple[str, str]:
    """(ours, seed): ours built from the working tree unless ``--image``; the seed built when
    its image is missing. Both on the imagegate base, as ``make bench`` builds them."""
    from imagegate.build import pipeline
    from imagegate.config import settings

    from . import builds
    from .common import ROOT

    config = settings.load(ROOT)
    pipeline.ensure_bases(config, log=lambda _: None)
    base = pipeline.python_image(config)
    ours = args.image
    if ours is None:
        variant = builds.Variant("ours", "imagegate", base)
        builds.build_variant(ctx, variant)
        ours = variant.ref
    try:
        ctx.cli.images.get(args.seed_image)
    except Exception:  # not there: build it as make bench does
        variant = builds.Variant("seed", "imagegate", base)
        builds.build_variant(ctx, variant)
        args.seed_image = variant.ref
    return ours, args.seed_image


def main(argv: Sequence[str] | None = None) -> int:
    """Measure the seed and the variants once; print the Markdown section; clean up by label."""
    from imagegate.engine import cleanup_session, client, ensure_engine, new_session_id

    args = parse(argv)
    chosen = VARIANTS
    if args.only:
        names = args.only.split(",")
        chosen = tuple(v for v in VARIANTS if v.name in names)
    ensure_engine()
    cli = client(timeout=900)
    session = new_session_id()

    def log(line: str) -> None:
        print(f"bench: {line}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="imagegate-variants-") as tmp:
        ctx = Ctx(cli, session, Path(tmp), log=log)
        try:
            ours, seed = _images(ctx, args)
            log(f"session {session}; ours {ours}, seed {seed}")
            run = collect(ctx, ours, seed, requests=args.requests, rounds=args.rounds,
                          concurrency=args.concurrency, warmup=args.warmup, variants=chosen)
        finally:
            log(f"cleanup: {cleanup_session(session, cli)}")
    print(render(run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
