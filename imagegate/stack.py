"""A compose project's lifecycle, as a plain module: up --wait, ports, logs, faults, down -v.

:func:`running_stack` is the one way in: it validates the files with ``compose config``, labels
every container, network and volume with the session (a generated override file), brings the
project up healthy and ALWAYS takes it down again (pass, fail, Ctrl-C), then removes whatever
still carries the session and project labels. Usable without pytest::

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
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .engine import cleanup_session, session_labels
from .errors import CommandFailed, StackNotHealthy, UsageError
from .proc import run

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
_VAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


def compose_command() -> list[str]:
    """The Compose v2 argv prefix: the binary next to this Python first, then PATH, then the CLI."""
    beside = Path(sys.executable).parent / "docker-compose"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("docker-compose")
    return [found] if found else ["docker", "compose"]


def _first_line(text: str) -> str:
    """Compose's own complaint: the last non-empty line of its stderr, trimmed."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "(no output)"


def _env_file_names(path: Path) -> set[str]:
    """The variable names an env file defines (``NAME=value`` lines)."""
    try:
        text = path.read_text()
    except OSError:
        return set()
    return {ln.split("=", 1)[0].strip().removeprefix("export ").strip()
            for ln in text.splitlines() if "=" in ln and not ln.lstrip().startswith("#")}


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
    command_timeout: float = 60.0
    _config: dict[str, Any] = field(default_factory=dict, repr=False)
    _cli: Any = field(default=None, repr=False)

    # -- compose ---------------------------------------------------------------------------------

    def argv(self, *args: str) -> list[str]:
        """The full compose argv for ``args`` on this project (also handy to print for a human)."""
        files = [a for f in self.files for a in ("-f", str(f))]
        return [*compose_command(), "--ansi", "never", "-p", self.project,
                "--project-directory", str(self.project_dir), "--env-file", str(self.env_file),
                *files, *args]

    def _process_env(self) -> dict[str, str]:
        """``env`` plus blanks for variables the files read that leak in from our own process.

        Compose lets the process environment win over ``--env-file``; a stray ``SECRET_KEY`` or
        ``APP_ENV`` in the developer's shell would make the stack untestable, so those read by
        the files (and not given here or in the env file) are set empty (``${X:-d}`` → d).
        """
        read: set[str] = set()
        for path in self.files:
            with contextlib.suppress(OSError):
                read |= set(_VAR.findall(path.read_text()))
        given = set(self.env) | _env_file_names(self.env_file)
        blanks = {name: "" for name in read if name in os.environ and name not in given}
        return {**blanks, **self.env}

    def compose(self, *args: str, timeout: float | None = None,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``compose <args>`` for this project (argv list, bounded, typed error)."""
        return run(self.argv(*args), timeout=timeout or self.command_timeout, check=check,
                   cwd=self.project_dir, env=self._process_env())

    def config(self) -> dict[str, Any]:
        """The resolved model (``compose config --format json``); cached after the first call.

        Invalid YAML, an unknown key or a missing ``${VAR:?}`` raises :class:`UsageError` with
        the file names and compose's own one-line complaint.
        """
        if not self._config:
            proc = self.compose("config", "--format", "json", check=False)
            if proc.returncode != 0:
                names = ", ".join(str(f) for f in self.files)
                raise UsageError(f"{names}: {_first_line(proc.stderr or proc.stdout)}",
                                 detail=proc.stderr)
            self._config = json.loads(proc.stdout)
        return self._config

    def services(self) -> list[str]:
        """The project's service names, in file order."""
        return list(self.config().get("services", {}))

    def up(self, timeout: float) -> None:
        """``up --wait``: return when every service is running (and healthy, where it has a
        healthcheck), else :class:`StackNotHealthy` naming the service, with diagnostics."""
        args = ("up", "--wait", "--wait-timeout", str(int(timeout)), "--pull", "never",
                "--no-build", "--remove-orphans")
        try:
            proc = self.compose(*args, timeout=timeout + 60, check=False)
            complaint = "" if proc.returncode == 0 else _first_line(proc.stderr)
        except CommandFailed as exc:  # our own timeout on top of compose's
            complaint = exc.message
        if complaint:
            culprit = self._culprit()
            raise StackNotHealthy(
                f"{self.files[0].name}: {culprit or 'stack'} did not come up ({complaint})",
                detail=self.diagnostics_text(),
            )

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

    def port(self, service: str, container_port: int) -> int:
        """The 127.0.0.1 host port ``service``'s ``container_port`` is published on (now)."""
        out = self.compose("port", service, str(container_port)).stdout.strip()
        port = out.rpartition(":")[2]
        if not port.isdigit():
            raise StackNotHealthy(f"{service}:{container_port} is not published ({out!r})")
        return int(port)

    def url(self, service: str = "web", path: str = "/", *,
            container_port: int | None = None) -> str:
        """``http://127.0.0.1:<port><path>``; the port is looked up each time (restarts move it)."""
        port = self.port(service, container_port or self.default_port)
        return f"http://127.0.0.1:{port}{path}"

    # -- docker handles --------------------------------------------------------------------------

    @property
    def cli(self) -> Any:
        """A docker SDK client (created on first use)."""
        if self._cli is None:
            from .engine import client

            self._cli = client()
        return self._cli

    def container(self, service: str) -> Any:
        """The docker SDK container of ``service`` (the first replica), freshly loaded."""
        found = self.cli.containers.list(all=True, filters={"label": [
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
        """The last ``tail`` log lines of ``service`` (stdout and stderr)."""
        proc = self.compose("logs", "--no-color", "--no-log-prefix", "--tail", str(tail), service,
                            check=False)
        return proc.stdout + proc.stderr

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


def validate_compose(compose_files: Sequence[str | os.PathLike[str]], *,
                     project_dir: str | os.PathLike[str],
                     env: Mapping[str, str] | None = None) -> None:
    """Check that compose accepts the files (YAML, schema) or raise :class:`UsageError` naming
    them with compose's own complaint. Without ``env`` nothing is interpolated, so required
    variables (``${SECRET_KEY:?}``) need not be set yet (the gate's preflight)."""
    files = [Path(f).resolve() for f in compose_files]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise UsageError(f"compose file not found: {', '.join(missing)}")
    with tempfile.TemporaryDirectory(prefix="imagegate-validate-") as tmp:
        empty = Path(tmp) / "empty.env"
        empty.write_text("")
        probe = Stack(tuple(files), "imagegate-validate", Path(project_dir).resolve(),
                      dict(env or {}), empty, session="")
        args = ("config", "--quiet") if env is not None else ("config", "--quiet",
                                                              "--no-interpolate")
        proc = probe.compose(*args, check=False)
        if proc.returncode != 0:
            names = ", ".join(str(f) for f in files)
            raise UsageError(f"{names}: {_first_line(proc.stderr or proc.stdout)}",
                             detail=proc.stderr)


def label_override(config: Mapping[str, Any], labels: Mapping[str, str]) -> dict[str, Any]:
    """A compose override adding ``labels`` to every service, network and volume defined."""
    def own(kind: str) -> list[str]:
        return [name for name, spec in (config.get(kind) or {}).items()
                if not (spec or {}).get("external")]

    lab = {k: v.replace("$", "$$") for k, v in labels.items()}
    return {
        "services": {name: {"labels": lab} for name in config.get("services", {})},
        "networks": {name: {"labels": lab} for name in own("networks")},
        "volumes": {name: {"labels": lab} for name in own("volumes")},
    }


def remove_leftovers(cli: Any, session: str, project: str) -> int:
    """Second net after ``down``: remove this project's objects that carry the session label."""
    return sum(cleanup_session(session, cli, also=(f"{PROJECT_LABEL}={project}",)).values())


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
) -> Iterator[Stack]:
    """Bring a labelled compose project up healthy, yield it, and always take it down.

    ``env`` is the interpolation environment (compose also reads ``env_file``, an empty file
    unless given, never the project's ``.env``). Raises :class:`UsageError` for a file compose
    rejects (including a missing ``${VAR:?}``), :class:`StackNotHealthy` if ``up --wait`` fails.
    """
    files = [Path(f).resolve() for f in compose_files]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise UsageError(f"compose file not found: {', '.join(missing)}")
    tmp = Path(tempfile.mkdtemp(prefix=f"imagegate-{project}-"))
    try:
        if env_file is None:
            env_file = tmp / "empty.env"
            Path(env_file).write_text("")
        stack = Stack(tuple(files), project, Path(project_dir).resolve(), dict(env),
                      Path(env_file).resolve(), session, default_port=default_port)
        override = tmp / "imagegate-labels.yml"
        override.write_text(json.dumps(label_override(stack.config(), session_labels(session)),
                                       indent=2))
        stack.files = (*stack.files, override)
        try:
            stack.up(wait_timeout)
            yield stack
        finally:
            # Runs on pass, fail and KeyboardInterrupt alike; each step tolerates the others.
            with contextlib.suppress(Exception):
                stack.down()
            with contextlib.suppress(Exception):
                remove_leftovers(stack.cli, session, project)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
