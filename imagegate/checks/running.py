"""The checks judged on one running container of the image, read from OUTSIDE it: the engine's
view of its processes, its sockets in /proc, files copied out, commands run with the server's
own interpreter. An image without ss, netstat, getent, ps or even a shell gets skips with
reasons (a :class:`~imagegate.facts.runtime.Skip` becomes a skipped finding), never errors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future
from typing import Any

from imagegate.checks.catalogue import check, family
from imagegate.facts import runtime
from imagegate.results.findings import Finding

#: Every check declared on :class:`Running`.
RUNNING_CHECKS = family("container")


class Running:
    """The facts the run checks take: the web container once ready (a
    :class:`~imagegate.run.container.RunningContainer`), the settings, and what is read from
    it on demand by ``need(name)``: ``app_interpreter`` (the server's Python), ``image_facts``
    — in the pytest plugin, its fixtures of those names (which skip when they cannot be had)."""

    def __init__(self, ready: Any, settings: Any, need: Callable[[str], Any],
                 read_ahead: Mapping[tuple[Any, ...], Future[Any]] | None = None) -> None:
        self.ready = ready
        self.settings = settings
        self._need = need
        self._ahead = read_ahead or {}

    def fact(self, read: Callable[..., Any], *args: Any) -> Any:
        """``read(container, *args)`` (a :mod:`~imagegate.facts.runtime` reader): its answer
        read ahead, side by side with the others (:func:`read_ahead`), when it was."""
        return fact(self._ahead, read, self.container, *args)

    @property
    def container(self) -> Any:
        """The docker SDK container."""
        return self.ready.container

    @property
    def interpreter(self) -> str:
        """The Python the server runs under."""
        return str(self._need("app_interpreter"))

    @property
    def image_facts(self) -> Any:
        """The image's :class:`~imagegate.facts.policy.ImageFacts`."""
        return self._need("image_facts")


def fact(ahead: Mapping[tuple[Any, ...], Future[Any]], read: Callable[..., Any], container: Any,
         *args: Any) -> Any:
    """``read(container, *args)``, answered from ``ahead`` (:func:`read_ahead`) when it was read
    there, else read now."""
    future = ahead.get((read.__name__, *args))
    return future.result() if future is not None else read(container, *args)


def read_ahead(container: Any, interpreter: str | None,
               pool: Executor) -> dict[tuple[Any, ...], Future[Any]]:
    """Start reading, side by side in ``pool``, what the run checks ask of ``container`` (one
    exec or engine call each: its uid, processes, sockets, and with the server's
    ``interpreter``, whether pip imports, ``pip check``, what is writable under WORKDIR) and
    the Flask app the Flask checks load in it: ``{(reader name, *args): future}`` for
    :meth:`Running.fact`. Taken one after another they were most of a gate's run-check time."""
    from imagegate.checks.flask import app_facts

    workdir = container.attrs["Config"].get("WorkingDir") or ""
    reads: list[tuple[Callable[..., Any], tuple[Any, ...]]] = [
        (runtime.exec_uid, ()), (runtime.process_uids, ()), (runtime.listening_sockets, ())]
    if interpreter:
        reads += [(runtime.pip_importable, (interpreter,)), (runtime.pip_check, (interpreter,)),
                  (app_facts, (interpreter,))]
        if workdir and workdir != "/":
            reads.append((runtime.writable_paths, (workdir, interpreter)))
    return {(read.__name__, *args): pool.submit(read, container, *args) for read, args in reads}


def findings(check_id: str, result: Any) -> list[Finding]:
    """A check's result as findings: one Finding, a list, or a Skip (a skipped finding)."""
    if isinstance(result, runtime.Skip):
        return [Finding(check_id, True, "not judged", skipped=result.reason)]
    return list(result) if isinstance(result, list | tuple) else [result]


@check("IG-RUN-HEALTHY", title="the container stays up and becomes ready (healthy, or answers)",
       stage="run", evidence="runtime", baseline="error")
def healthy(ready: Any, start: Any) -> Finding:
    """The container stays up and becomes ready: ``ready`` (a Readiness) says whether it did and
    why not; with a HEALTHCHECK, its first passing check falls within the start period."""
    if not ready.ok:
        return Finding("IG-RUN-HEALTHY", False, ready.message, detail=ready.detail)
    if not start.has_healthcheck():
        return Finding("IG-RUN-HEALTHY", True, f"answers {ready.seconds:.1f}s after start")
    start_period = start.container.attrs["Config"]["Healthcheck"].get("StartPeriod", 0) / 1e9
    took = ready.to_healthy
    if start_period and (took is None or took > start_period):
        return Finding("IG-RUN-HEALTHY", False, f"first passing healthcheck {took}s after start; "
                       f"start period is {start_period:g}s")
    return Finding("IG-RUN-HEALTHY", True, f"healthy {took}s after start")


@check("IG-RUN-USER-NONROOT", title="commands in the container run as a non-root uid",
       stage="run", evidence="runtime", baseline="error", category="security",
       facts="container")
def user_nonroot(run: Running) -> Finding | runtime.Skip:
    """`docker exec` (and the server) runs as a non-root uid."""
    uid = run.fact(runtime.exec_uid)
    if isinstance(uid, runtime.Skip):
        return uid
    return Finding("IG-RUN-USER-NONROOT", uid != 0,
                   "commands in the container run as uid 0 (root)" if uid == 0
                   else f"commands in the container run as uid {uid}")


@check("IG-RUN-PROCS-NONROOT", title="no process in the container runs as uid 0", stage="run",
       evidence="runtime", baseline="error", category="security", facts="container")
def procs_nonroot(run: Running) -> Finding | runtime.Skip:
    """No process in the container (server master, workers) is root."""
    procs = run.fact(runtime.process_uids)
    if isinstance(procs, runtime.Skip):
        return procs
    if not procs:
        return Finding("IG-RUN-PROCS-NONROOT", False, "no processes seen in the container")
    root = [f"pid {p.pid} {p.command[:80]}" for p in procs if p.uid == 0]
    if root:
        return Finding("IG-RUN-PROCS-NONROOT", False, "processes run as uid 0: " + "; ".join(root))
    return Finding("IG-RUN-PROCS-NONROOT", True,
                   f"{len(procs)} processes, none as uid 0 (uids "
                   f"{', '.join(sorted({str(p.uid) for p in procs}))})")


@check("IG-RUN-PORT-LISTENING", title="the web port is listening in the container", stage="run",
       evidence="runtime", baseline="error", facts="container")
def port_listening(run: Running) -> Finding | runtime.Skip:
    """The web port listens on every interface in the container."""
    port = run.settings.web_port
    sockets = run.fact(runtime.listening_sockets)
    if isinstance(sockets, runtime.Skip):
        return sockets
    on_port = [s for s in sockets if s.port == port]
    seen = ", ".join(sorted(f"{s.address}:{s.port}" for s in sockets)) or "nothing"
    if not on_port:
        return Finding("IG-RUN-PORT-LISTENING", False,
                       f"expected a listener on port {port}; listening: {seen}")
    if all(s.loopback_only for s in on_port):
        return Finding("IG-RUN-PORT-LISTENING", False,
                       f"port {port} listens on loopback only ({seen}): unreachable through a "
                       "published port (bind 0.0.0.0)")
    return Finding("IG-RUN-PORT-LISTENING", True, f"port {port} listens ({seen})")


@check("IG-RUN-HTTP-HEALTH", title="the server answers HTTP through the published port "
       "(health_path: 2xx)", stage="run", evidence="runtime", baseline="error",
       facts="container")
def http_health(run: Running) -> Finding:
    """The server answers HTTP on the web port — from inside its network when compose runs it
    (the gate's probe), else through the published loopback port — ``health_path`` with a 2xx;
    without one, ``GET /`` with any status (the stack stage wants ``/`` below 500)."""
    path = run.settings.health_path or "/"
    try:
        resp = run.ready.get(path)
    except Exception as exc:  # requests' or the probe's: either way no HTTP answer
        where = run.ready.url or "the gate's probe"
        return Finding("IG-RUN-HTTP-HEALTH", False,
                       f"GET {path} through {where}: no HTTP answer ({exc})")
    if run.settings.health_path and not 200 <= resp.status_code < 300:
        return Finding("IG-RUN-HTTP-HEALTH", False,
                       f"GET {path}: expected 2xx, got {resp.status_code}")
    return Finding("IG-RUN-HTTP-HEALTH", True, f"GET {path}: {resp.status_code}")


@check("IG-RUN-APP-NOT-WRITABLE", title="the running user can write nothing under WORKDIR",
       stage="run", evidence="runtime", baseline="warning", category="security",
       facts="container")
def app_not_writable(run: Running) -> Finding | runtime.Skip:
    """The running user can write nothing under its WORKDIR."""
    workdir = run.container.attrs["Config"].get("WorkingDir") or ""
    if not workdir or workdir == "/":
        return runtime.Skip("no WORKDIR: no app directory to check")
    writable = run.fact(runtime.writable_paths, workdir, run.interpreter)
    if isinstance(writable, runtime.Skip):
        return writable
    if writable:
        return Finding("IG-RUN-APP-NOT-WRITABLE", False,
                       f"{len(writable)} paths under {workdir} are writable by the app user",
                       writable[0], detail="\n".join(writable[:20]))
    return Finding("IG-RUN-APP-NOT-WRITABLE", True, f"nothing under {workdir} is writable")


@check("IG-RUN-NO-PIP-MODULE", title="pip is not importable by the server's interpreter",
       stage="run", evidence="runtime", baseline="warning", category="security",
       facts="container")
def no_pip_module(run: Running) -> Finding | runtime.Skip:
    """The server's interpreter cannot import pip."""
    from imagegate.facts.policy import pip_in_image

    importable = run.fact(runtime.pip_importable, run.interpreter)
    if isinstance(importable, runtime.Skip):
        return importable
    if importable:
        where = ", ".join(pip_in_image(run.image_facts)[:3]) or "its sys.path"
        return Finding("IG-RUN-NO-PIP-MODULE", False, f"{run.interpreter} can import pip ({where})")
    return Finding("IG-RUN-NO-PIP-MODULE", True, f"{run.interpreter} cannot import pip")


@check("IG-RUN-PIP-CHECK", title="`pip check` is clean for the server's interpreter",
       stage="run", evidence="runtime", baseline="warning", category="maintainability",
       facts="container")
def pip_check(run: Running) -> Finding | runtime.Skip:
    """`pip check` is clean for the server's interpreter (pip copied in)."""
    result = run.fact(runtime.pip_check, run.interpreter)
    if isinstance(result, runtime.Skip):
        return result
    ok, output = result
    return Finding("IG-RUN-PIP-CHECK", ok,
                   "pip check: no broken requirements" if ok
                   else f"pip check with {run.interpreter}: {output.strip()[:300]}")
