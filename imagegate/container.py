"""One labelled container of the built image, for testinfra and HTTP checks; always removed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .engine import session_labels
from .errors import PolicyViolation
from .proc import WaitTimeout, wait_until


@dataclass
class RunningContainer:
    """A started container, the loopback URL its web port is published on, and diagnostics."""

    container: Any
    url: str

    @property
    def id(self) -> str:
        """The container id (testinfra addresses it as ``docker://<id>``)."""
        return str(self.container.id)

    def health(self) -> str:
        """The engine's health status: starting, healthy, unhealthy, or none."""
        self.container.reload()
        return str(self.container.attrs["State"].get("Health", {}).get("Status", "none"))

    def wait_healthy(self, timeout: float) -> float:
        """Block until the healthcheck says healthy; return the seconds it took."""
        import time

        started = time.monotonic()

        def healthy() -> bool:
            status = self.health()
            if status == "unhealthy" or not self.container.attrs["State"]["Running"]:
                raise PolicyViolation(f"container went {status} "
                                      f"(running={self.container.attrs['State']['Running']})")
            return status == "healthy"

        try:
            wait_until(healthy, timeout=timeout, interval=0.25, what="container healthy",
                       describe=self.health)
        except PolicyViolation:
            raise
        except WaitTimeout as exc:
            raise PolicyViolation(str(exc), detail=self.health_log()) from None
        return time.monotonic() - started

    def seconds_to_healthy(self) -> float | None:
        """From the container's start to the end of its first passing probe (engine clock)."""
        from datetime import datetime

        def when(stamp: str) -> datetime:
            head, _, frac = stamp.rstrip("Z").partition(".")
            return datetime.fromisoformat(f"{head}.{(frac.split('+')[0] + '000000')[:6]}")

        self.container.reload()
        state = self.container.attrs["State"]
        passing = [e for e in state.get("Health", {}).get("Log", []) or [] if e["ExitCode"] == 0]
        if not passing:
            return None
        return (when(passing[0]["End"]) - when(state["StartedAt"])).total_seconds()

    def health_log(self) -> str:
        """The last healthcheck probes with their exit codes and output."""
        self.container.reload()
        entries = self.container.attrs["State"].get("Health", {}).get("Log", []) or []
        return "\n".join(
            f"{e.get('Start', '')[:19]} exit={e.get('ExitCode')} {e.get('Output', '').strip()}"
            for e in entries
        ) or "(no healthcheck runs)"

    def diagnostics(self) -> list[tuple[str, str]]:
        """Report sections a failing test gets: logs tail, state, health log."""
        try:
            self.container.reload()
            state = self.container.attrs["State"]
            logs = self.container.logs(tail=60).decode(errors="replace")
        except Exception as exc:  # the container may already be gone
            return [("container", f"cannot read container {self.id[:12]}: {exc}")]
        return [
            (f"container {self.container.name} state",
             f"status={state.get('Status')} exit={state.get('ExitCode')} "
             f"oom={state.get('OOMKilled')} health={state.get('Health', {}).get('Status')}"),
            (f"container {self.container.name} logs (tail)", logs or "(empty)"),
            (f"container {self.container.name} health log", self.health_log()),
        ]


def health_budget(container: Any) -> float:
    """Seconds a healthcheck may take to pass: start period + retries * (interval + timeout)."""
    hc = container.image.attrs["Config"].get("Healthcheck") or {}
    ns = 1e9
    interval, timeout = hc.get("Interval", 30 * ns) / ns, hc.get("Timeout", 30 * ns) / ns
    return hc.get("StartPeriod", 0) / ns + hc.get("Retries", 3) * (interval + timeout)


@contextlib.contextmanager
def running(
    cli: Any, image: str, session: str, *, env: Mapping[str, str], port: int,
    command: list[str] | None = None, **options: Any,
) -> Iterator[RunningContainer]:
    """Run ``image`` detached, port published on 127.0.0.1 only; remove it however we leave."""
    container = cli.containers.run(
        image, command, detach=True, environment=dict(env), labels=session_labels(session),
        ports={f"{port}/tcp": ("127.0.0.1", None)}, **options,
    )
    try:
        container.reload()
        bindings = container.attrs["NetworkSettings"]["Ports"].get(f"{port}/tcp") or []
        url = f"http://127.0.0.1:{bindings[0]['HostPort']}" if bindings else ""
        yield RunningContainer(container, url)
    finally:
        with contextlib.suppress(Exception):
            container.remove(force=True, v=True)
