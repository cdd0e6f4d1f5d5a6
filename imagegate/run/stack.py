"""A compose project's lifecycle, as a plain module: up --wait, ports, logs, faults, down -v.

:func:`running_stack` is the one way in: it resolves the files once (:class:`~imagegate.model.compose.
Model`, ``compose config``), labels every container, network and volume with the session (a
generated override file), adds the caller's overrides (the gate's: see
:func:`~imagegate.model.compose.gate_override`), brings the project up healthy without building and
ALWAYS takes it down again (pass, fail, Ctrl-C), then removes whatever still carries the session
and project labels. Usable without pytest::

    with running_stack(["compose.yml"], project="demo", project_dir=".", env={...},
                       session=new_session_id(), wait_timeout=60) as stack:
        print(stack.url("web", "/healthz"))
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagegate.config.settings import PULL_POLICIES
from imagegate.engine import cleanup_session, hosts, session_labels
from imagegate.errors import StackNotHealthy, UsageError
from imagegate.model.compose import (  # noqa: F401  (compose_command: re-exported, callers use stack.compose_command)
    Model,
    compose_argv,
    compose_command,
    existing,
    label_override,
    last_line,
    process_env,
)
from imagegate.proc import StopWaiting, WaitTimeout, run, wait_until
from imagegate.run.probe import Answer, Probe, ProbeError, running_probe

#: Seconds a stack's containers get to stop when the stack is taken down after its tests: none.
#: Teardown is not a shutdown test (the fault tests stop containers on purpose and watch); its
#: volumes go with it, so nothing is lost, and a server still holding a test's keep-alive
#: connections (or a shell-form CMD's /bin/sh, which ignores SIGTERM) would cost the grace.
TEARDOWN_GRACE = 0
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
#: Seconds between looks at the stack's containers while it comes up (a crash is named within).
WATCH = 0.5
#: Restarts after which a service counts as crash-looping (one or two are a start-up race with a
#: dependency that a restart policy is there to absorb).
RESTART_LOOP = 3
#: A log line that names an exception (``ModuleNotFoundError: No module named 'psycopg2'``).
EXCEPTION_LINE = re.compile(r"^\s*(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Exit|"
                            r"Interrupt|Warning)\b(?::.*)?$")


def exception_line(lines: Sequence[str]) -> str:
    """The last line of ``lines`` that names an exception (:data:`EXCEPTION_LINE`), stripped;
    "" when none does."""
    return next((ln.strip() for ln in reversed(lines) if EXCEPTION_LINE.match(ln)), "")


class ServiceDied(StopWaiting):
    """A service of the stack exited or crash-loops: waiting longer cannot help."""


@dataclass
class Stack:
    """One compose project: the files, its name and environment, and handles on its services."""

    files: tuple[Path, ...]
    project: str
    project_dir: Path
    env: dict[str, str]
    env_file: Path
    session: str
    #: Container port :meth:`url` uses when none is given (the settings' ``web_port``).
    default_port: int = 8000
    #: Host :meth:`url` names (the ``published_host`` setting); empty: resolved from
    #: ``DOCKER_HOST`` (:func:`imagegate.engine.hosts.published_host`).
    published_host: str = ""
    command_timeout: float = 60.0
    #: The user's files resolved (:class:`Model`); loaded on first use unless given.
    model: Model | None = field(default=None, repr=False)
    #: The gate's probe container on the web service's network (see :meth:`http`).
    probe: Probe | None = field(default=None, repr=False)
    _cli: Any = field(default=None, repr=False)

    # -- compose ---------------------------------------------------------------------------------

    def argv(self, *args: str) -> list[str]:
        """The full compose argv for ``args`` on this project (also handy to print for a human)."""
        return compose_argv(self.files, *args, project_dir=self.project_dir,
                            env_file=self.env_file, project=self.project)

    def _process_env(self) -> dict[str, str]:
        """``env`` plus blanks for variables the files read that leak in from our own process
        (see :func:`imagegate.model.compose.process_env`)."""
        return process_env(self.files, self.env, self.env_file)

    def compose(self, *args: str, timeout: float | None = None,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``compose <args>`` for this project (argv list, bounded, typed error)."""
        return run(self.argv(*args), timeout=timeout or self.command_timeout, check=check,
                   cwd=self.project_dir, env=self._process_env())

    def load_model(self) -> Model:
        """The project's :class:`Model` (``compose config --format json``), loaded once.

        Invalid YAML, an unknown key or a missing ``${VAR:?}`` raises :class:`UsageError` with
        the file names and compose's own one-line complaint.
        """
        if self.model is None:
            self.model = Model.load(self.files, project_dir=self.project_dir, env=self.env,
                                    env_file=self.env_file, project=self.project,
                                    timeout=self.command_timeout)
        return self.model

    def config(self) -> dict[str, Any]:
        """The resolved model's JSON (``compose config --format json``); see :meth:`load_model`."""
        return self.load_model().raw

    def services(self) -> list[str]:
        """The project's service names, in file order."""
        return self.load_model().services

    def pull(self, policy: str, timeout: float = 600) -> None:
        """Pull the images of services that run an image (not built, not ``pull_policy: never``).

        ``policy`` is ``missing`` (only absent images) or ``always``. Reads the project with every
        file (the gate's override pins the tested image with ``pull_policy: never``, so it is
        never pulled); compose's own ``up --pull`` would override that per-service policy.
        """
        merged = Model.load(self.files, project_dir=self.project_dir, env=self.env,
                            env_file=self.env_file, project=self.project,
                            timeout=self.command_timeout)
        wanted = [s for s in merged.services
                  if merged.image(s) and merged.build(s) is None
                  and merged.pull_policy(s) not in ("never", "build")]
        if not wanted:
            return
        proc = self.compose("pull", "--quiet", "--policy", policy, *wanted, timeout=timeout,
                            check=False)
        if proc.returncode != 0:
            raise UsageError(f"{self.files[0].name}: pulling {', '.join(wanted)} failed "
                             f"({last_line(proc.stderr or proc.stdout)}); set pull = \"never\" "
                             "to use local images only", detail=proc.stderr)

    def up(self, timeout: float, services: Sequence[str] = ()) -> None:
        """``up --wait`` (of ``services`` and what they depend on; all when empty): return when
        each is running (and healthy, where it has a healthcheck), else :class:`StackNotHealthy`
        naming the service, with diagnostics.

        The containers are watched while compose waits: a service that exits (and is not a
        one-shot that succeeded) or crash-loops ends the wait within :data:`WATCH` seconds,
        named with its exit code and the exception line of its log, instead of the budget.
        """
        args = ("up", "--wait", "--wait-timeout", str(int(timeout)), "--pull", "never",
                "--no-build", "--remove-orphans", *services)
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            proc = subprocess.Popen(self.argv(*args), cwd=self.project_dir, stdout=out,
                                    stderr=err, stdin=subprocess.DEVNULL, text=True,
                                    env={**os.environ, **self._process_env()})
            deadline = time.monotonic() + timeout + 60
            died = ""
            try:
                while True:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=WATCH)
                    died = self.dead()
                    if died or proc.returncode is not None or time.monotonic() > deadline:
                        break
            finally:
                if proc.poll() is None:
                    proc.terminate()
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=30)
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait(timeout=30)
            err.seek(0)
            stderr = err.read()
        if not died and proc.returncode == 0:
            return
        died = died or self.dead()
        if died:
            raise StackNotHealthy(f"{self.files[0].name}: {died}",
                                  detail=self.diagnostics_text())
        complaint = last_line(stderr) if proc.returncode not in (None, -15) else \
            f"compose up --wait did not return within {timeout + 60:g}s"
        culprit = self._culprit()
        raise StackNotHealthy(
            f"{self.files[0].name}: {culprit or 'stack'} did not come up ({complaint})",
            detail=self.diagnostics_text(),
        )

    def dead(self) -> str:
        """Why the stack cannot come up, or "": the first service that exited (but a one-shot
        that exited 0) or restarted :data:`RESTART_LOOP` times, with its exit code and the
        exception line of its log."""
        try:
            containers = self.cli.containers.list(all=True, filters={
                "label": f"{PROJECT_LABEL}={self.project}"})
            model = self.load_model()
        except Exception:
            return ""
        for ctr in containers:
            service = ctr.labels.get(SERVICE_LABEL, ctr.name)
            state = ctr.attrs.get("State") or {}
            restarts = int(ctr.attrs.get("RestartCount") or 0)
            code = state.get("ExitCode")
            if state.get("Status") in ("exited", "dead"):
                one_shot = service in model.services and model.one_shot(service)
                if code == 0 and one_shot:
                    continue
                what = f"service {service} exited with code {code}"
            elif restarts >= RESTART_LOOP:
                what = f"service {service} restarts in a loop ({restarts} restarts, last exit " \
                       f"code {code})"
            else:
                continue
            return f"{what}{self._after(state)}: {self._crash_line(service)}"
        return ""

    @staticmethod
    def _after(state: dict[str, Any]) -> str:
        """`` after 1.2s`` (engine clock, start to exit) when both stamps are there."""
        from datetime import datetime

        try:
            started = datetime.fromisoformat(str(state["StartedAt"])[:26].rstrip("Z"))
            finished = datetime.fromisoformat(str(state["FinishedAt"])[:26].rstrip("Z"))
        except (KeyError, ValueError):
            return ""
        seconds = (finished - started).total_seconds()
        return f" {seconds:.1f}s after it started" if seconds >= 0 else ""

    def _crash_line(self, service: str) -> str:
        """The exception line of ``service``'s log (its last one), and its last log line."""
        try:
            lines = [ln.rstrip() for ln in self.logs(service, tail=80).splitlines() if ln.strip()]
        except Exception:
            return "(no log)"
        if not lines:
            return "(no output)"
        raised = exception_line(lines)
        last = lines[-1].strip()
        if raised and raised != last:
            return f"{raised[:200]} (last log line: {last[:160]})"
        return (raised or last)[:300]

    def down(self, timeout: int = 10) -> None:
        """``down -v --remove-orphans``: containers, networks and named volumes go."""
        self.compose("down", "-v", "--remove-orphans", "--timeout", str(timeout),
                     timeout=timeout + 60, check=False)

    def _ps_rows(self) -> list[dict[str, Any]]:
        """``compose ps -a --format json`` as dicts (one JSON per line, or one array)."""
        out = self.compose("ps", "-a", "--format", "json", check=False).stdout.strip()
        if out.startswith("["):
            return list(json.loads(out))
        return [json.loads(line) for line in out.splitlines() if line.strip().startswith("{")]

    def _culprit(self) -> str:
        """``service <name> <state>`` for the first service that is not up and healthy."""
        try:
            rows = self._ps_rows()
        except Exception:
            return ""
        seen = {row.get("Service") for row in rows}
        bad = []
        for row in rows:
            state, health = row.get("State", ""), row.get("Health", "")
            if state != "running" or health in ("unhealthy", "starting"):
                dead = state in ("exited", "restarting", "dead") or health == "unhealthy"
                rank = 0 if dead else 1
                exit_code = f", exit {row.get('ExitCode')}" if state != "running" else ""
                bad.append((rank, f"service {row.get('Service')} ({state}"
                                  f"{', ' + health if health else ''}{exit_code})"))
        missing = [f"service {s} (not created)" for s in self.services() if s not in seen]
        bad.sort()
        return (bad and bad[0][1]) or (missing and missing[0]) or ""

    # -- addressing ------------------------------------------------------------------------------

    def binding(self, service: str, container_port: int) -> tuple[str, int]:
        """(address, port) the engine publishes ``service``'s ``container_port`` on (now), on
        the engine's host: ``("127.0.0.1", 49153)`` under the gate's override."""
        out = self.compose("port", service, str(container_port)).stdout.strip()
        address, _, port = (out.splitlines() or [""])[0].rpartition(":")
        if not port.isdigit():
            raise StackNotHealthy(f"{service}:{container_port} is not published ({out!r})")
        return address.strip("[]"), int(port)

    def port(self, service: str, container_port: int) -> int:
        """The host port ``service``'s ``container_port`` is published on (now)."""
        return self.binding(service, container_port)[1]

    def url(self, service: str = "web", path: str = "/", *,
            container_port: int | None = None) -> str:
        """``http://<published host>:<port><path>``; the port is looked up each time (restarts
        move it). The host is :attr:`published_host` (127.0.0.1 for a local engine); a loopback
        binding that host cannot reach, or one this process is not on the network of (a job
        container with the socket mounted), is a UsageError (see
        :func:`imagegate.engine.hosts.published_url`)."""
        address, port = self.binding(service, container_port or self.default_port)
        return hosts.published_url(port, path, host=self.published_host, bound_ip=address)

    def reach(self, service: str = "web", path: str = "/", *,
              container_port: int | None = None) -> str:
        """A URL on this machine that reaches ``service``:``container_port``: :meth:`url` where
        this machine reaches the published port, else (a remote engine's loopback, or a port
        not published) a forward on 127.0.0.1 through the gate's probe
        (:meth:`~imagegate.run.probe.Probe.forward`; the probe's network holds ``service``).
        Without a probe, :meth:`url`'s error stands."""
        port = container_port or self.default_port
        try:
            return self.url(service, path, container_port=port)
        except (UsageError, StackNotHealthy):
            probe = self.probe
            if probe is None:
                raise
            return str(probe.forward(service, port).url(path))

    def http(self, service: str, path: str = "/", *, container_port: int | None = None,
             timeout: float = 10.0) -> Answer:
        """``GET path`` on ``service``:``container_port`` by its compose name, from the gate's
        probe on the service's network: no published port needed (:class:`ProbeError` when
        nothing answers)."""
        if self.probe is None:
            raise ProbeError(f"project {self.project} has no probe: start it with serve=")
        return self.probe.get(service, container_port or self.default_port, path,
                              timeout=timeout)

    def wait_serving(self, service: str, container_port: int, path: str = "/", *,
                     timeout: float) -> None:
        """Wait until ``service`` answers HTTP (any status) through the probe; a service that
        dies meanwhile ends the wait at once (:class:`StackNotHealthy` naming it)."""
        seen = ["not probed yet"]

        def answers() -> bool:
            died = self.dead()
            if died:
                raise ServiceDied(f"{self.files[0].name}: {died}")
            assert self.probe is not None
            code, seen[0] = self.probe.status(service, container_port, path)
            return code is not None

        try:
            wait_until(answers, timeout=timeout, interval=WATCH,
                       what=f"{service}:{container_port} answering GET {path}",
                       describe=lambda: seen[0])
        except (ServiceDied, WaitTimeout) as exc:
            raise StackNotHealthy(exc.message, detail=self.diagnostics_text()) from None

    # -- docker handles --------------------------------------------------------------------------

    @property
    def cli(self) -> Any:
        """A docker SDK client (created on first use)."""
        if self._cli is None:
            from imagegate.engine import client

            self._cli = client()
        return self._cli

    def container(self, service: str) -> Any:
        """The docker SDK container of ``service`` (the first replica), freshly loaded."""
        # ignore_removed: a container listed but gone before its inspect (compose replacing
        # it; the engine's list can also show one still being created) is not an error
        found = self.cli.containers.list(all=True, ignore_removed=True, filters={"label": [
            f"{PROJECT_LABEL}={self.project}", f"{SERVICE_LABEL}={service}"]})
        if not found:
            raise StackNotHealthy(f"project {self.project} has no container for {service!r}")
        return found[0]

    def stop(self, service: str, timeout: int = 10) -> None:
        """``compose stop`` (SIGTERM, then SIGKILL after ``timeout``); restart policy won't fire."""
        self.compose("stop", "--timeout", str(timeout), service, timeout=timeout + 30)

    def start(self, service: str) -> None:
        """``compose start`` a stopped service (no waiting: callers wait for what they need)."""
        self.compose("start", service)

    def restart(self, service: str, timeout: int = 10) -> None:
        """``compose restart`` (stop, then start the same container)."""
        self.compose("restart", "--timeout", str(timeout), service, timeout=timeout + 30)

    def kill(self, service: str, sig: str = "SIGKILL") -> None:
        """``compose kill``: through the engine, so Docker counts it as a manual stop and the
        restart policy does NOT bring it back. To test the restart policy use :meth:`crash`."""
        self.compose("kill", "-s", sig, service)

    def crash(self, service: str) -> int:
        """SIGKILL the container's main process from the host, as the OOM killer would; the
        engine sees a crash and applies the restart policy. Needs the engine's PID namespace."""
        ctr = self.container(service)
        ctr.reload()
        pid = int(ctr.attrs["State"].get("Pid") or 0)
        if pid <= 0 or not Path(f"/proc/{pid}").exists():
            raise UsageError(f"{service}: its process (pid {pid}) is not visible from here; "
                             "crash() needs a local engine")
        os.kill(pid, signal.SIGKILL)
        return pid

    # -- diagnostics -----------------------------------------------------------------------------

    def ps(self) -> str:
        """``compose ps -a`` as a table."""
        return self.compose("ps", "-a", check=False).stdout

    def logs(self, service: str, tail: int = 100) -> str:
        """The last ``tail`` log lines of ``service`` (its stdout and stderr, as compose prints
        them on its own stdout); compose's own stderr (``the attribute `version` is obsolete``)
        only when it printed no log, to say why."""
        proc = self.compose("logs", "--no-color", "--no-log-prefix", "--tail", str(tail), service,
                            check=False)
        return proc.stdout if proc.stdout.strip() or proc.returncode == 0 else proc.stderr

    def health_log(self, service: str) -> str:
        """The last healthcheck probes of ``service`` with exit codes and output."""
        attrs = self.container(service).attrs
        health = attrs["State"].get("Health") or {}
        entries = health.get("Log") or []
        return f"status={health.get('Status', 'none')}\n" + "\n".join(
            f"{e.get('Start', '')[:19]} exit={e.get('ExitCode')} {e.get('Output', '').strip()}"
            for e in entries
        )

    def diagnostics(self) -> list[tuple[str, str]]:
        """Report sections: compose ps, and each service's log tail and health log."""
        sections: list[tuple[str, str]] = []

        def add(title: str, produce: Any) -> None:
            try:
                sections.append((title, produce() or "(empty)"))
            except Exception as exc:  # a half-dead stack must still give what it can
                sections.append((title, f"(unavailable: {exc})"))

        add(f"compose ps ({self.project})", self.ps)
        try:
            services = self.services()
        except Exception:
            services = []
        for svc in services:
            add(f"{svc} logs (tail)", lambda s=svc: self.logs(s, tail=60))
            add(f"{svc} health log", lambda s=svc: self.health_log(s))
        return sections

    def diagnostics_text(self) -> str:
        """:meth:`diagnostics` as one text block (for an error's ``detail``)."""
        return "\n".join(f"--- {title}\n{text.rstrip()}" for title, text in self.diagnostics())


def _probe_for(stack: Stack, service: str) -> Any:
    """:func:`~imagegate.run.probe.running_probe` of ``service``'s own image on its first network,
    labelled like the stack (a context manager)."""
    ctr = stack.container(service)
    networks = sorted((ctr.attrs.get("NetworkSettings") or {}).get("Networks") or {})
    if not networks:
        raise StackNotHealthy(f"{service} is on no network the probe could join")
    # Not the compose project's label: compose would count the probe as one of its containers.
    labels = {**session_labels(stack.session), "imagegate.probe": stack.project}
    return running_probe(stack.cli, str(ctr.attrs.get("Image") or ctr.image.id), networks[0],
                         labels)


def _up_with_probe(stack: Stack, service: str, probing: contextlib.ExitStack,
                   wait_timeout: float, services: Sequence[str]) -> Probe:
    """``up`` with the probe of ``service`` started beside it: as soon as compose has created
    the service's container (on its network), not after the whole project is healthy (the
    probe's start, ~0.2 s, is off the gate's critical path). The probe is entered into
    ``probing`` (so it goes with the stack whatever happens); a failed ``up`` still raises
    its own error."""
    from concurrent.futures import ThreadPoolExecutor

    up_ended = threading.Event()

    def created() -> Any:
        while True:
            try:
                return stack.container(service)
            except StackNotHealthy:  # not created yet (one gone before its inspect is skipped)
                if up_ended.is_set():
                    raise
                up_ended.wait(0.1)

    def start_probe() -> Probe:
        import docker.errors

        while True:
            created()
            try:
                return probing.enter_context(_probe_for(stack, service))
            except docker.errors.NotFound:  # the container just listed is gone: look again
                if up_ended.is_set():
                    raise

    with ThreadPoolExecutor(1, thread_name_prefix="probe") as pool:
        early = pool.submit(start_probe)
        try:
            stack.up(wait_timeout, services)
        finally:
            up_ended.set()
            with contextlib.suppress(Exception):
                early.result()  # up failed: the probe (if started) is in probing, to go
    return early.result()


def remove_leftovers(cli: Any, session: str, project: str) -> int:
    """Second net after ``down``: remove this project's objects that carry the session label."""
    return sum(cleanup_session(session, cli, also=(f"{PROJECT_LABEL}={project}",)).values())


def take_down(stack: Stack, probing: contextlib.ExitStack) -> None:
    """Remove a gate's stack at once: its probe (``probing``) and every container of the project
    side by side, killed and removed with their anonymous volumes (no stop grace: see
    :data:`TEARDOWN_GRACE`), then its networks and volumes. Every one of them carries the
    session and project labels (the label override), so this removes what ``down -v`` would,
    in a fraction of its time (docker init's project: about 0.15 s for the probe and the
    container together, against 0.1 s for the probe and then 0.4 s for ``down``). Tolerant of
    objects already gone; ``down`` stays the net for anything left (:func:`running_stack`)."""
    from concurrent.futures import ThreadPoolExecutor

    from imagegate.engine import SESSION_LABEL, quietly

    flt = {"label": [f"{SESSION_LABEL}={stack.session}", f"{PROJECT_LABEL}={stack.project}"]}
    containers = stack.cli.containers.list(all=True, filters=flt, sparse=True)
    with ThreadPoolExecutor(max_workers=len(containers) + 1, thread_name_prefix="down") as pool:
        probe_gone = pool.submit(probing.close)
        for ctr in containers:
            pool.submit(quietly, lambda c=ctr: c.remove(force=True, v=True))
    probe_gone.result()
    remove_leftovers(stack.cli, stack.session, stack.project)


def _anything_left(cli: Any, project: str) -> bool:
    """True when a container or network of compose project ``project`` is still there."""
    flt = {"label": f"{PROJECT_LABEL}={project}"}
    return bool(cli.containers.list(all=True, sparse=True, filters=flt)
                or cli.networks.list(filters=flt))


@contextlib.contextmanager
def running_stack(
    compose_files: Sequence[str | os.PathLike[str]],
    *,
    project: str,
    project_dir: str | os.PathLike[str],
    env: Mapping[str, str],
    session: str,
    wait_timeout: float,
    env_file: str | os.PathLike[str] | None = None,
    default_port: int = 8000,
    overrides: Sequence[str] = (),
    pull: str = "never",
    model: Model | None = None,
    published_host: str = "",
    services: Sequence[str] = (),
    serve: tuple[str, int, str] | None = None,
) -> Iterator[Stack]:
    """Bring a labelled compose project up healthy, yield it, and always take it down.

    ``env`` is the interpolation environment (compose also reads ``env_file``, an empty file
    unless given, never the project's ``.env``). ``model`` is the files already resolved (the
    gate's one model; loaded here when absent or resolved from other files). After the user's
    files come a label override (every service, network and volume carries the session) and
    then each text of ``overrides`` (e.g. :func:`~imagegate.model.compose.gate_override`), written
    to a temp dir.
    ``pull``: ``never`` uses local images only; ``missing``/``always`` pull the services that
    run an image (not those with ``pull_policy: never``, which the gate's override puts on the
    tested image) before ``up --wait --pull never --no-build``: nothing is ever built here.
    ``published_host``: where :meth:`Stack.url` reaches published ports (empty: from
    ``DOCKER_HOST``, else 127.0.0.1). ``services``: bring up only these (and their
    dependencies). ``serve`` = (service, container port, path): start the gate's probe on that
    service's network (:meth:`Stack.http`) and wait until it answers there, failing at once
    when a service dies.
    Raises :class:`UsageError` for a file compose rejects (including a missing ``${VAR:?}``),
    :class:`StackNotHealthy` if ``up --wait`` fails.
    """
    if pull not in PULL_POLICIES:
        raise UsageError(f"pull {pull!r}: expected one of {', '.join(PULL_POLICIES)}")
    files = existing(compose_files)
    tmp = Path(tempfile.mkdtemp(prefix=f"imagegate-{project}-"))
    try:
        if env_file is None:
            env_file = tmp / "empty.env"
            Path(env_file).write_text("")
        if model is not None and tuple(model.files) != tuple(files):
            model = None  # resolved from other files (e.g. without an overlay): not this project
        stack = Stack(tuple(files), project, Path(project_dir).resolve(), dict(env),
                      Path(env_file).resolve(), session, default_port=default_port, model=model,
                      published_host=published_host)
        written = [tmp / "imagegate-labels.yml"]
        written[0].write_text(label_override(stack.load_model(), session_labels(session)))
        for number, text in enumerate(overrides, start=1):
            written.append(tmp / f"imagegate-override-{number}.yml")
            written[-1].write_text(text)
        stack.files = (*stack.files, *written)
        try:
            if pull != "never":
                stack.pull(pull, timeout=max(wait_timeout, 300))
            started = time.monotonic()
            with contextlib.ExitStack() as probing:
                if serve is None:
                    stack.up(wait_timeout, services)
                else:
                    service, port, path = serve
                    stack.probe = _up_with_probe(stack, service, probing, wait_timeout, services)
                    stack.wait_serving(service, port, path, timeout=max(
                        1.0, wait_timeout - (time.monotonic() - started)))
                try:
                    yield stack
                finally:
                    stack.probe = None
                    with contextlib.suppress(Exception):
                        take_down(stack, probing)  # the probe and the containers side by side
        finally:
            # Runs on pass, fail and KeyboardInterrupt alike; each step tolerates the others.
            # After take_down nothing is left; after a failed up, what up made.
            with contextlib.suppress(Exception):
                if _anything_left(stack.cli, project):
                    stack.down(timeout=TEARDOWN_GRACE)  # not a shutdown test: see TEARDOWN_GRACE
            with contextlib.suppress(Exception):
                remove_leftovers(stack.cli, session, project)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
