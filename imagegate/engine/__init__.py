"""Find or start a Docker Engine, hand out SDK clients, label what we create and clean it up.

A fresh Debian machine has the docker CLI but no engine: :func:`ensure_engine` installs Debian's
``docker.io`` (as root) and starts ``dockerd`` itself, recording its PID so :func:`stop_engine`
stops that daemon and only that one.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagegate.errors import EngineUnavailable
from imagegate.proc import WaitTimeout, run, wait_until

#: Every container, network and volume the harness creates carries this label.
SESSION_LABEL = "imagegate.session"
#: The process that owns a session, ``host:pid:start`` (start: the process's start time in clock
#: ticks since boot, so a reused PID is not mistaken for the owner); lets a sweep tell dead
#: sessions from live ones. Older labels are ``host:pid``.
PID_LABEL = "imagegate.pid"
#: Images the harness makes (bases, app builds) carry this label so a prune can find them.
IMAGE_LABEL = "imagegate.managed"

#: DOCKER_HOST values that mean the default socket (where a dockerd started here listens).
DEFAULT_HOSTS = ("unix:///var/run/docker.sock", "unix:///run/docker.sock")

STATE_DIR = Path(os.environ.get("IMAGEGATE_STATE_DIR", Path.home() / ".cache" / "imagegate"))
PIDFILE = STATE_DIR / "dockerd.pid"
DOCKERD_LOG = STATE_DIR / "dockerd.log"


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write a state-dir file so a gate running beside this one never reads it half written
    (a temp file in the same directory, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("wb", dir=path.parent, prefix=f".{path.name}.",
                                     delete=False) as tmp:
        tmp.write(data.encode() if isinstance(data, str) else data)
    os.replace(tmp.name, path)


def new_session_id() -> str:
    """A short unique id for one test run or gate; names compose projects and labels objects."""
    return f"ig{uuid.uuid4().hex[:10]}"


def session_labels(session: str) -> dict[str, str]:
    """The labels every object of ``session`` carries."""
    pid = os.getpid()
    start = _start_time(pid)
    owner = f"{socket.gethostname()}:{pid}" + (f":{start}" if start is not None else "")
    return {SESSION_LABEL: session, PID_LABEL: owner}


def from_env(timeout: int = 120, environment: Mapping[str, str] | None = None) -> Any:
    """``docker.from_env`` whose TLS check uses the engine's CA (``DOCKER_CERT_PATH/ca.pem``).

    The SDK puts that CA on its requests session, but requests lets ``REQUESTS_CA_BUNDLE`` /
    ``CURL_CA_BUNDLE`` win over a session's ``verify`` (docker/docker-py#2433, #2598), and
    machines behind a TLS-intercepting proxy set them: every call to a TLS engine (GitLab's
    dind on 2376) then fails "unable to get local issuer certificate" while the docker CLI
    works. The engine's own CA is the one that can verify it, so it wins here.
    """
    import docker  # imported here: the unit suite and `--help` must not need it loaded
    from docker.api.client import APIClient

    class EngineApi(APIClient):
        """The SDK's API client, its CA file kept over the environment's."""

        def merge_environment_settings(self, url: Any, proxies: Any, stream: Any,
                                       verify: Any, cert: Any) -> Any:
            merged = super().merge_environment_settings(url, proxies, stream, verify, cert)
            if isinstance(self.verify, str):  # DOCKER_TLS_VERIFY with DOCKER_CERT_PATH's CA
                merged["verify"] = self.verify
            return merged

    class Client(docker.DockerClient):
        """``docker.DockerClient`` on :class:`EngineApi`."""

        def __init__(self, **kwargs: Any) -> None:
            self.api = EngineApi(**kwargs)

    # from_env reads the environment as the SDK does; its version "auto" already asks the
    # engine through EngineApi
    return Client.from_env(timeout=timeout, environment=environment)


def client(timeout: int = 120) -> Any:
    """A docker SDK client for the engine the environment points at (:func:`from_env`), or
    :class:`EngineUnavailable`."""
    try:
        cli = from_env(timeout=timeout)
        cli.ping()
        return cli
    except Exception as exc:
        raise EngineUnavailable(
            f"no Docker Engine answers ({_short(exc)}); run `imagegate engine up` or `make engine`"
        ) from None


def engine_answers() -> bool:
    """True when ``docker info`` succeeds against the current DOCKER_HOST."""
    try:
        from_env(timeout=5).ping()
        return True
    except Exception:
        return False


@dataclass(frozen=True)
class EngineStatus:
    """What :func:`ensure_engine` found or did."""

    started: bool
    pid: int | None
    version: str


def ensure_engine(*, timeout: float = 60, install: bool = True) -> EngineStatus:
    """Return once an engine answers, starting ``dockerd`` (and installing docker.io) if needed.

    Starting needs root and the default socket; with DOCKER_HOST pointing elsewhere (another
    socket, tcp://, ssh://) we only report: a dockerd started here would not answer there.
    """
    if engine_answers():
        return EngineStatus(started=False, pid=_recorded_pid(), version=_server_version())
    docker_host = os.environ.get("DOCKER_HOST", "")
    if docker_host and docker_host not in DEFAULT_HOSTS:
        raise EngineUnavailable(f"DOCKER_HOST={docker_host} does not answer")
    if os.geteuid() != 0:
        raise EngineUnavailable(
            "no Docker Engine answers and starting one needs root: "
            "`sudo apt-get install docker.io && sudo dockerd &`, or point DOCKER_HOST at one"
        )
    dockerd = shutil.which("dockerd")
    if dockerd is None and install:
        _install_docker_io()
        dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise EngineUnavailable("dockerd is not installed: `apt-get install docker.io`")
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(DOCKERD_LOG, "ab") as log:
        proc = subprocess.Popen(
            [dockerd], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives our exit; stopped by `imagegate engine down`
        )
    PIDFILE.write_text(f"{proc.pid}\n")

    def up() -> bool:
        if proc.poll() is not None:
            raise EngineUnavailable(
                f"dockerd exited with {proc.returncode}: {_tail(DOCKERD_LOG)}"
            )
        return engine_answers()

    try:
        wait_until(up, timeout=timeout, interval=0.3, what="dockerd answering")
    except WaitTimeout as exc:
        raise EngineUnavailable(f"{exc}; log: {DOCKERD_LOG}: {_tail(DOCKERD_LOG)}") from None
    return EngineStatus(started=True, pid=proc.pid, version=_server_version())


def stop_engine(*, timeout: float = 30) -> int | None:
    """Stop the dockerd that :func:`ensure_engine` started (by its recorded PID); return the PID.

    An engine we did not start is left alone.
    """
    pid = _recorded_pid()
    if pid is None:
        return None
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        PIDFILE.unlink(missing_ok=True)
        return None
    try:
        wait_until(lambda: not _alive(pid), timeout=timeout, what=f"dockerd {pid} exiting")
    except WaitTimeout:
        os.kill(pid, signal.SIGKILL)
    PIDFILE.unlink(missing_ok=True)
    return pid


def _install_docker_io() -> None:
    """apt-get install Debian's docker.io (20.10: the classic builder, no BuildKit)."""
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-qq"], timeout=300, env=env)
    run(["apt-get", "install", "-y", "-qq", "docker.io"], timeout=900, env=env)


def _recorded_pid() -> int | None:
    """The PID in our pidfile if that process is still alive."""
    try:
        pid = int(PIDFILE.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def _alive(pid: int, start: int | None = None) -> bool:
    """True while ``pid`` exists, is not a zombie and (given ``start``) started then."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[-1].split()
    if fields[0] == "Z":
        return False
    return start is None or (len(fields) > 19 and fields[19] == str(start))


def _start_time(pid: int) -> int | None:
    """The start time of ``pid`` (clock ticks after boot, /proc/PID/stat field 22), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def owner_alive(owner: str, host: str | None = None) -> bool | None:
    """Whether the process an ``imagegate.pid`` label names still runs: None when it cannot be
    told from here (another host, or no label), else True/False."""
    owner_host, _, rest = owner.partition(":")
    pid, _, start = rest.partition(":")
    if owner_host != (host or socket.gethostname()) or not pid.isdigit():
        return None
    return _alive(int(pid), int(start) if start.isdigit() else None)


def _server_version() -> str:
    """The engine's version string, for the report header."""
    try:
        return str(client(timeout=10).version().get("Version", "?"))
    except EngineUnavailable:
        return "?"


def cleanup_session(session: str, cli: Any | None = None,
                    also: tuple[str, ...] = ()) -> dict[str, int]:
    """Remove every container, network and volume labelled with ``session``; return the counts.

    ``also`` narrows it with more ``key=value`` labels (e.g. one compose project of the session).
    Containers first (they hold networks and volumes), each removal tolerant of races: other
    runs on the engine create and remove containers all the time, so the listing is sparse (a
    full listing inspects each container and fails on one removed in between).
    """
    cli = cli or client()
    flt = {"label": [f"{SESSION_LABEL}={session}", *also]}
    removed = {"containers": 0, "networks": 0, "volumes": 0}
    for ctr in cli.containers.list(all=True, filters=flt, sparse=True):
        removed["containers"] += quietly(lambda c=ctr: c.remove(force=True, v=True))
    for net in cli.networks.list(filters=flt):
        removed["networks"] += quietly(net.remove)
    for vol in cli.volumes.list(filters=flt):
        removed["volumes"] += quietly(lambda v=vol: v.remove(force=True))
    return removed


def stale_sessions(cli: Any | None = None) -> set[str]:
    """Sessions whose owning processes on this host are all gone (leftovers of killed runs).

    A session with any object whose owner still runs, or runs on another host (a shared engine:
    it cannot be told from here), is live: :func:`cleanup_session` on a stale one never
    removes an object of a run that is still going.
    """
    cli = cli or client()
    host = socket.gethostname()
    dead: set[str] = set()
    live: set[str] = set()
    objects = [
        *cli.containers.list(all=True, filters={"label": SESSION_LABEL}, sparse=True),
        *cli.networks.list(filters={"label": SESSION_LABEL}),
        *cli.volumes.list(filters={"label": SESSION_LABEL}),
    ]
    for obj in objects:
        labels = obj.attrs.get("Labels") or obj.attrs.get("Config", {}).get("Labels") or {}
        session = labels.get(SESSION_LABEL, "")
        alive = owner_alive(labels.get(PID_LABEL, ""), host)
        (dead if alive is False else live).add(session)
    return dead - live


def labelled_objects(session: str | None = None, cli: Any | None = None) -> list[str]:
    """Names of the containers, networks and volumes carrying our label (for leak checks)."""
    cli = cli or client()
    flt = {"label": f"{SESSION_LABEL}={session}" if session else SESSION_LABEL}
    return [
        *(f"container:{c.name}"
          for c in cli.containers.list(all=True, filters=flt, ignore_removed=True)),
        *(f"network:{n.name}" for n in cli.networks.list(filters=flt)),
        *(f"volume:{v.name}" for v in cli.volumes.list(filters=flt)),
    ]


def quietly(action: Any) -> int:
    """Run a removal; 1 if it worked, 0 if the object was already gone or busy."""
    try:
        action()
        return 1
    except Exception:
        return 0


def _short(exc: BaseException) -> str:
    """The first line of an exception's text, trimmed."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def _tail(path: Path, lines: int = 3) -> str:
    """The last lines of a log file, joined on one line."""
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"

