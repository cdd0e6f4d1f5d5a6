"""One labelled container of the built image, for runtime and HTTP checks; always removed.

:func:`running` creates and starts it (never pulling: a missing image is an error, not a trip to
Docker Hub) and removes it however the block is left, also when the engine cannot start it.
:meth:`RunningContainer.wait_ready` waits for it to be ready and fails fast, with the exit code
and the log tail, when it exits, restarts or goes unhealthy instead.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from imagegate.engine import hosts, session_labels
from imagegate.errors import ImagegateError, UsageError
from imagegate.proc import StopWaiting, WaitTimeout, wait_until
from imagegate.text import one_line

POLL = 0.2  # seconds between looks at the container while waiting
LOG_LINES = 20  # log lines a failure carries
#: Options of ``containers.run`` that ``containers.create`` does not take (removal is ours anyway).
RUN_ONLY = ("detach", "remove", "stream", "stdout", "stderr")


class ContainerFailed(StopWaiting):
    """The container could not start, exited, restarted or went unhealthy.

    The message is one line with the engine's reason or the exit code and last log line;
    ``detail`` carries the state and the log tail (or health log); ``status`` is the container's
    exit code when it exited (None otherwise). A :class:`~imagegate.proc.StopWaiting`: a wait
    raising it ends at once.
    """

    def __init__(self, message: str, *, detail: str = "", status: int | None = None) -> None:
        super().__init__(message, detail=detail)
        self.status = status


class ContainerNotReady(ImagegateError):
    """The container kept running but was not ready within its budget; ``detail`` says why."""


@dataclass
class RunningContainer:
    """A started container, the URL its web port is reached at (see :mod:`imagegate.engine.hosts`),
    and diagnostics."""

    container: Any
    url: str
    port: int = 0  # the container port ``url`` publishes
    #: ``GET path`` from inside the container's network (the gate's probe), for a container that
    #: publishes no port this machine reaches; None: through :attr:`url`.
    probe_get: Callable[[str], Any] | None = None
    #: Why :attr:`url` is empty although the port is published (this machine cannot reach it).
    unreachable: str = ""
    #: Seconds to healthy once read from the engine's event, by the start it counts from.
    _to_healthy: dict[str, float] = field(default_factory=dict, repr=False)

    def get(self, path: str, timeout: float = 5.0) -> Any:
        """``GET path`` on the web port: through the probe when there is one, else through the
        published port (an object with ``status_code`` and ``text``; raises when nothing
        answers)."""
        if self.probe_get is not None:
            return self.probe_get(path)
        import requests

        return requests.get(self.url + path, timeout=timeout)

    @property
    def id(self) -> str:
        """The container id (testinfra addresses it as ``docker://<id>``)."""
        return str(self.container.id)

    @property
    def name(self) -> str:
        """The engine's name for the container (for messages)."""
        return str(getattr(self.container, "name", "") or self.id[:12])

    def health(self) -> str:
        """The engine's health status: starting, healthy, unhealthy, or none."""
        self.container.reload()
        return _health_status(self.container.attrs)

    def has_healthcheck(self) -> bool:
        """True when the container runs a healthcheck (the image's, or one given at run time)."""
        test = list((self.container.attrs.get("Config", {}).get("Healthcheck") or {})
                    .get("Test") or [])
        return bool(test) and test[0] != "NONE"

    def wait_ready(self, path: str = "/", *, expect_2xx: bool = False,
                   timeout: float) -> float:
        """Block until the container is ready; return the seconds it took.

        Ready means: healthy, when the container has a healthcheck; otherwise ``GET <url><path>``
        answers — any HTTP status (the container runs alone: a route that needs the stack's
        database may well answer 500 here), or a 2xx when ``expect_2xx``. Polls every 0.2 s.

        Raises :class:`ContainerFailed` at once (within a poll or an HTTP timeout) when the
        container exits or restarts — exit code and last log line in the message, the log tail
        in ``detail`` — or when its healthcheck says unhealthy (the health log in ``detail``);
        :class:`ContainerNotReady` when ``timeout`` passes first, or when there is nothing to
        probe (no healthcheck and no published port).
        """
        started = time.monotonic()
        self._reload()
        restarts = int(self.container.attrs.get("RestartCount") or 0)
        self._fail_if_stopped(restarts)  # it may have exited before we looked
        healthcheck = self.has_healthcheck()
        if not healthcheck and not self.url and self.probe_get is None:
            raise ContainerNotReady(f"container {self.name} has no healthcheck and no published "
                                    "port" + (f" this machine reaches ({self.unreachable})"
                                              if self.unreachable else "")
                                    + ": nothing tells when it is ready")
        target = "healthy" if healthcheck else f"answering GET {path}"
        seen = ["not probed yet"]

        def ready() -> bool:
            self._reload()
            self._fail_if_stopped(restarts)
            if healthcheck:
                status = _health_status(self.container.attrs)
                seen[0] = f"health {status}"
                if status == "unhealthy":
                    raise ContainerFailed(
                        f"container {self.name} went unhealthy: {self._last_probe()}",
                        detail=self.health_log())
                return status == "healthy"
            code, seen[0] = self._status(path)
            return code is not None and (200 <= code < 300 if expect_2xx else True)

        try:
            wait_until(ready, timeout=timeout, interval=POLL,
                       what=f"container {self.name} {target}", describe=lambda: seen[0])
        except WaitTimeout as exc:
            raise ContainerNotReady(exc.message, detail=self._diagnostic_text()) from None
        return time.monotonic() - started

    def _status(self, path: str) -> tuple[int | None, str]:
        """(status, what was seen) of ``GET path``; None when nothing answered."""
        if self.probe_get is None:
            return _http_status(self.url + path)
        try:
            answer = self.probe_get(path)
        except ImagegateError as exc:
            return None, exc.message
        return answer.status_code, f"GET {answer.url}: {answer.status_code}"

    def wait_healthy(self, timeout: float) -> float:
        """Block until the healthcheck says healthy; return the seconds it took.

        :meth:`wait_ready` for a container that must have a healthcheck (a
        :class:`ContainerNotReady` at once when it has none).
        """
        self._reload()
        if not self.has_healthcheck():
            raise ContainerNotReady(f"container {self.name} has no healthcheck to wait for")
        return self.wait_ready(timeout=timeout)

    def seconds_to_healthy(self) -> float | None:
        """From the container's start to its first passing probe (engine clock): the engine's
        own ``health_status: healthy`` event, which is kept however late this is asked — the
        health log keeps only the last 5 probes, so a container asked about a minute after it
        turned healthy shows only recent ones. The health log where events cannot be read."""
        self.container.reload()
        state = self.container.attrs["State"]
        if state["StartedAt"] in self._to_healthy:
            # the engine keeps its last 256 events only: on a busy engine (every probe and exec
            # is three) the event is gone within seconds, so it is read once and kept
            return self._to_healthy[state["StartedAt"]]
        started = engine_time(state["StartedAt"])
        with contextlib.suppress(Exception):  # an engine without the events API: the log
            since = int(started.replace(tzinfo=UTC).timestamp())
            events = self.container.client.events(
                since=since, until=int(time.time()) + 1, decode=True,
                filters={"container": self.container.id, "event": "health_status"})
            healthy = [e["timeNano"] for e in events
                       if str(e.get("Action") or e.get("status")).endswith(": healthy")]
            if healthy:
                at = datetime.fromtimestamp(min(healthy) / 1e9, UTC).replace(tzinfo=None)
                self._to_healthy[state["StartedAt"]] = (at - started).total_seconds()
                return self._to_healthy[state["StartedAt"]]
        passing = [e for e in state.get("Health", {}).get("Log", []) or [] if e["ExitCode"] == 0]
        if not passing:
            return None
        return (engine_time(passing[0]["End"]) - started).total_seconds()

    def health_log(self) -> str:
        """The last healthcheck probes with their exit codes and output."""
        with contextlib.suppress(Exception):
            self.container.reload()
        entries = self.container.attrs["State"].get("Health", {}).get("Log", []) or []
        return "\n".join(
            f"{e.get('Start', '')[:19]} exit={e.get('ExitCode')} {e.get('Output', '').strip()}"
            for e in entries
        ) or "(no healthcheck runs)"

    def logs_tail(self, lines: int = LOG_LINES) -> str:
        """The last ``lines`` lines of the container's output (stdout and stderr)."""
        try:
            return str(self.container.logs(tail=lines).decode(errors="replace")).rstrip()
        except Exception as exc:  # the container may already be gone
            return f"(cannot read logs: {exc})"

    def diagnostics(self) -> list[tuple[str, str]]:
        """Report sections a failing test gets: logs tail, state, health log."""
        try:
            self.container.reload()
            logs = self.container.logs(tail=60).decode(errors="replace")
        except Exception as exc:  # the container may already be gone
            return [("container", f"cannot read container {self.id[:12]}: {exc}")]
        return [
            (f"container {self.container.name} state", _state_line(self.container.attrs)),
            (f"container {self.container.name} logs (tail)", logs or "(empty)"),
            (f"container {self.container.name} health log", self.health_log()),
        ]

    def _reload(self) -> None:
        """Refresh the container's attrs; a container that vanished is a failure."""
        import docker.errors

        try:
            self.container.reload()
        except docker.errors.NotFound:
            raise ContainerFailed(f"container {self.name} is gone (removed while waiting)"
                                  ) from None

    def _fail_if_stopped(self, restarts: int) -> None:
        """Raise :class:`ContainerFailed` when the container exited or restarted."""
        attrs = self.container.attrs
        state = attrs.get("State") or {}
        restarted = bool(state.get("Restarting")) or int(attrs.get("RestartCount") or 0) > restarts
        if state.get("Running") and not restarted:
            return
        code = state.get("ExitCode")
        tail = self.logs_tail()
        lines = [line.strip() for line in tail.splitlines() if line.strip()]
        last = lines[-1] if lines else (state.get("Error") or "(no output)")
        what = "restarted after exit" if restarted else "exited"
        oom = " (OOM killed)" if state.get("OOMKilled") else ""
        raise ContainerFailed(
            f"container {self.name} {what} {code}{oom}: {one_line(last)}",
            detail=f"{_state_line(attrs)}\nlast {LOG_LINES} log lines:\n{tail or '(empty)'}",
            status=code if isinstance(code, int) else None)

    def _last_probe(self) -> str:
        """The last healthcheck probe, on one line."""
        entries = self.container.attrs["State"].get("Health", {}).get("Log", []) or []
        if not entries:
            return "(no probe output)"
        e = entries[-1]
        return f"probe exit {e.get('ExitCode')}: {one_line(e.get('Output', '')) or '(no output)'}"

    def _diagnostic_text(self) -> str:
        """:meth:`diagnostics` as one text (an error's detail)."""
        return "\n".join(f"--- {title}\n{body}" for title, body in self.diagnostics())


@contextlib.contextmanager
def running(
    cli: Any, image: str, session: str, *, env: Mapping[str, str], port: int,
    command: list[str] | None = None, published_host: str | None = None,
    reach_inside: bool = False, **options: Any,
) -> Iterator[RunningContainer]:
    """Run ``image`` detached, port published on 127.0.0.1 only; remove it however we leave.

    The container's ``url`` names ``published_host`` (the setting's value; ``None``: resolved
    from ``DOCKER_HOST``, see :func:`imagegate.engine.hosts.published_host`) and the port the engine
    chose; a loopback binding that host cannot reach is a :class:`~imagegate.errors.UsageError`.

    ``reach_inside``: a published port this machine cannot reach (a remote engine) leaves
    :attr:`RunningContainer.url` empty, saying why, instead of raising (the caller reaches the
    container from inside its network). ``options`` are ``containers.run`` keyword arguments
    (network, read_only, user …). The image
    must be local: it is never pulled. When the engine cannot start the container (``exec:
    "gunicorn": executable file not found in $PATH``) this raises :class:`ContainerFailed` with
    the engine's reason, after removing the container it created.
    """
    import docker.errors

    kwargs = {k: v for k, v in options.items() if k not in RUN_ONLY}
    try:
        container = cli.containers.create(
            image, command, environment=dict(env), labels=session_labels(session),
            ports={f"{port}/tcp": ("127.0.0.1", None)}, **kwargs,
        )
    except docker.errors.ImageNotFound:
        raise ContainerFailed(f"image {image} is not in the local engine "
                              "(imagegate never pulls)") from None
    except docker.errors.APIError as exc:
        raise ContainerFailed(f"cannot create a container of {_ref(image)}: "
                              f"{engine_reason(exc)}", detail=str(exc)) from None
    try:
        try:
            container.start()
        except docker.errors.APIError as exc:
            raise ContainerFailed(f"container of {_ref(image)} could not start: "
                                  f"{engine_reason(exc)}", detail=str(exc)) from None
        container.reload()
        bindings = container.attrs["NetworkSettings"]["Ports"].get(f"{port}/tcp") or []
        url, unreachable = "", ""
        if bindings:
            try:
                url = hosts.published_url(int(bindings[0]["HostPort"]), host=published_host,
                                          bound_ip=bindings[0].get("HostIp", ""))
            except UsageError as exc:
                if not reach_inside:
                    raise
                unreachable = exc.message  # the probe reaches it from inside instead
        yield RunningContainer(container, url, port, unreachable=unreachable)
    finally:
        with contextlib.suppress(Exception):
            container.remove(force=True, v=True)


def engine_reason(exc: Any) -> str:
    """The useful part of an engine error, on one line.

    ``OCI runtime create failed: container_linux.go:380: starting container process caused:
    exec: "gunicorn": executable file not found in $PATH: unknown`` → ``exec: "gunicorn":
    executable file not found in $PATH``.
    """
    text = str(getattr(exc, "explanation", None) or exc)
    found = re.search(r'exec: "[^"]*": [^:]+(?:: [^:]+)?', text)
    if found:
        reason = found.group(0)
        return re.sub(r": unknown$", "", reason).strip()
    text = re.sub(r"^.*caused:\s*", "", text)
    return one_line(re.sub(r": unknown$", "", text.strip()))


def _health_status(attrs: Mapping[str, Any]) -> str:
    """starting, healthy, unhealthy, or none (no healthcheck)."""
    return str((attrs.get("State") or {}).get("Health", {}).get("Status", "none"))


def _http_status(url: str) -> tuple[int | None, str]:
    """(status, what was seen) of GET ``url``; status None when nothing answered."""
    import requests

    try:
        resp = requests.get(url, timeout=(0.5, 2.0), allow_redirects=False)
    except requests.RequestException as exc:
        return None, f"GET {url}: {type(exc).__name__}"
    return resp.status_code, f"GET {url}: {resp.status_code}"


def _state_line(attrs: Mapping[str, Any]) -> str:
    """The engine's state of a container on one line."""
    state = attrs.get("State") or {}
    error = f" error={state['Error']!r}" if state.get("Error") else ""
    return (f"status={state.get('Status')} exit={state.get('ExitCode')} "
            f"oom={state.get('OOMKilled')} restarts={attrs.get('RestartCount', 0)} "
            f"health={(state.get('Health') or {}).get('Status', 'none')}{error}")



def _ref(image: str) -> str:
    """An image reference for messages: ids shortened."""
    return image.removeprefix("sha256:")[:12] if re.fullmatch(r"(sha256:)?[0-9a-f]{64}", image) \
        else image


def engine_time(stamp: str) -> datetime:
    """An engine timestamp (``2026-12-03T22:15:44.123456789Z``, nanoseconds) as a naive UTC
    datetime."""
    head, _, frac = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(frac.split('+')[0] + '000000')[:6]}")
