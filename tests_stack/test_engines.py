"""Gates sharing one engine, a gate killed mid-stack, and a gate through another DOCKER_HOST.

Each gate is the CLI in a subprocess, as CI runs it, in its own process group. To look at two
gates *while both run*, each gets a tiny extra stack suite (``--stack-tests``, outside the
project so nothing extra lands in the image) that checks the stack answers, writes a ready file
naming its session and stack URL, and holds until the test releases it. While both hold, the
test reads each gate's objects from the engine by their ``imagegate.session`` label.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from stack_helpers import IMAGEGATE, get, in_private_mount_ns, result

from imagegate.engine import SESSION_LABEL, cleanup_session, hosts
from imagegate.proc import StopWaiting, wait_until
from testsupport import ci

pytestmark = pytest.mark.slow

PROJECTS = Path(__file__).parent / "projects"
#: Seconds a gate may take end to end here (a cold build included).
GATE_TIMEOUT = 900

HOLD_TEST = '''\
"""Holds the gate's stack stage until tests_stack/test_engines.py releases it."""
import os
import pathlib

import requests

from imagegate.proc import wait_until


def test_hold(stack_url, imagegate_session):
    hold = pathlib.Path(os.environ["ENGINES_HOLD_DIR"])
    # a service without a healthcheck is "up" before its server listens: wait for an answer
    wait_until(lambda: requests.get(stack_url + "/", timeout=5).status_code < 500, timeout=60,
               what=f"{stack_url}/ answering")
    (hold / f"{imagegate_session}.ready").write_text(stack_url)
    release = hold / f"{imagegate_session}.release"
    wait_until(release.exists, timeout=800, interval=0.2, what=f"{release} written")
'''


# -- gates as subprocesses -------------------------------------------------------------------


@dataclass
class Gate:
    """One ``imagegate gate`` subprocess (its own process group), its log and report dir."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    report: Path
    hold: Path
    #: The pytest session of its held stack suite (``<gate>-stack-project``), once ready.
    held: str = ""
    url: str = ""
    seconds: float = 0.0
    started: float = field(default_factory=time.monotonic)

    @property
    def output(self) -> str:
        """Everything the gate printed so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    @property
    def sessions(self) -> set[str]:
        """The gate's session ids, as its pytest runs print them in their headers."""
        found = set(re.findall(r"imagegate session: (ig[0-9a-f]+)", self.output))
        return found | ({self.held.split("-")[0]} if self.held else set())

    def ready(self) -> bool:
        """True once its held stack suite wrote the ready file (fails if the gate ended)."""
        files = list(self.hold.glob("*.ready")) if self.hold.is_dir() else []
        if files:
            self.held, self.url = files[0].stem, files[0].read_text()
            return True
        if self.proc.poll() is not None:
            raise StopWaiting(f"gate {self.name} ended before its stack stage held:\n"
                              f"{self.output[-3000:]}")
        return False

    def release(self) -> None:
        """Let its held stack suite finish."""
        (self.hold / f"{self.held}.release").write_text("go")

    def wait(self, timeout: float = GATE_TIMEOUT) -> int:
        """Wait for the gate to end; its exit code (the seconds it took are recorded)."""
        rc = self.proc.wait(timeout=timeout)
        self.seconds = time.monotonic() - self.started
        return rc


class Gates:
    """Starts gates; whatever is still running at the end is killed (by process group) and its
    sessions' objects removed, so a failing test leaves nothing behind."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.started: list[Gate] = []

    def start(self, name: str, project: Path, *args: str, hold: bool = True,
              env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()) -> Gate:
        """Start ``imagegate gate`` on ``project`` with its own report dir (and hold suite)."""
        holddir = self.tmp / f"hold-{name}"
        holddir.mkdir()
        extra: list[str] = []
        if hold:
            suite = self.tmp / f"suite-{name}"
            suite.mkdir()
            (suite / "test_hold.py").write_text(HOLD_TEST)
            extra = ["--stack-tests", str(suite)]
        report, log = self.tmp / f"out-{name}", self.tmp / f"{name}.log"
        argv = [*prefix, IMAGEGATE, "gate", "--project-dir", str(project),
                "--report-dir", str(report), *extra, *args]
        environ = {**(env or os.environ), "ENGINES_HOLD_DIR": str(holddir)}
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=environ,
                                    start_new_session=True)
        gate = Gate(name, proc, log, report, holddir)
        self.started.append(gate)
        return gate

    def close(self, cli: Any) -> None:
        """Kill what still runs (its whole process group); remove what its sessions left."""
        for gate in self.started:
            if gate.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(gate.proc.pid, signal.SIGKILL)
                gate.proc.wait(timeout=60)
            for session in sessions_with(cli, gate.sessions):
                cleanup_session(session, cli)


@pytest.fixture
def gates(tmp_path: Path, docker_client: Any) -> Iterator[Gates]:
    """A :class:`Gates` whose leftovers are removed whatever happens."""
    started = Gates(tmp_path)
    try:
        yield started
    finally:
        started.close(docker_client)


# -- what a gate has on the engine ------------------------------------------------------------


def _labels(obj: Any) -> dict[str, str]:
    """An SDK object's labels (containers, networks and volumes keep them in different places)."""
    attrs = obj.attrs
    return dict(attrs.get("Labels") or (attrs.get("Config") or {}).get("Labels") or {})


def sessions_with(cli: Any, prefixes: set[str]) -> set[str]:
    """Every labelled session id that starts with one of ``prefixes`` (a gate's own runs)."""
    found = set()
    for kind in (cli.containers.list(all=True, filters={"label": SESSION_LABEL}, sparse=True),
                 cli.networks.list(filters={"label": SESSION_LABEL}),
                 cli.volumes.list(filters={"label": SESSION_LABEL})):
        found |= {_labels(o)[SESSION_LABEL] for o in kind}
    return {s for s in found if any(s.startswith(p) for p in prefixes if p)}


@dataclass(frozen=True)
class Footprint:
    """A gate's objects on the engine at one moment."""

    containers: frozenset[str]
    networks: frozenset[str]
    volumes: frozenset[str]
    ports: frozenset[str]

    @property
    def names(self) -> frozenset[str]:
        """Every object, ``kind:name``."""
        return frozenset({*(f"container:{c}" for c in self.containers),
                          *(f"network:{n}" for n in self.networks),
                          *(f"volume:{v}" for v in self.volumes)})


def footprint(cli: Any, prefix: str) -> Footprint:
    """The containers, networks, volumes and published host ports of sessions ``prefix*``."""
    def mine(obj: Any) -> bool:
        return _labels(obj).get(SESSION_LABEL, "").startswith(prefix)

    containers = [c for c in cli.containers.list(all=True, filters={"label": SESSION_LABEL},
                                                 ignore_removed=True) if mine(c)]
    ports = {f"{b['HostIp']}:{b['HostPort']}" for c in containers
             for bindings in (c.attrs.get("NetworkSettings", {}).get("Ports") or {}).values()
             for b in bindings or []}
    return Footprint(
        frozenset(c.name for c in containers),
        frozenset(n.name for n in cli.networks.list(filters={"label": SESSION_LABEL}) if mine(n)),
        frozenset(v.name for v in cli.volumes.list(filters={"label": SESSION_LABEL}) if mine(v)),
        frozenset(ports))


def prune() -> str:
    """``imagegate prune`` as a user runs it; its output (it must exit 0)."""
    proc = subprocess.run([IMAGEGATE, "prune"], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def attach_dirs(pid: int) -> list[Path]:
    """The stack descriptions (``<tmp>/imagegate-attach-*``) of the gate process ``pid``."""
    from imagegate.gate import ATTACH_PREFIX

    return [d for d in Path(tempfile.gettempdir()).glob(f"{ATTACH_PREFIX}*")
            if (d / "owner").is_file() and f":{pid}:" in f"{(d / 'owner').read_text()}:"]


def all_ready(*running: Gate) -> None:
    """Wait until every gate holds in its stack stage (its stack up and answering)."""
    wait_until(lambda: all([g.ready() for g in running]), timeout=GATE_TIMEOUT, interval=0.5,
               what="every gate holding in its stack stage",
               describe=lambda: "; ".join(f"{g.name}: {g.output.strip()[-300:]!r}"
                                          for g in running))


def passed(gate: Gate) -> None:
    """The gate exited 0 and its report says passed."""
    rc = gate.wait()
    assert rc == 0, f"gate {gate.name} exited {rc}:\n{gate.output[-4000:]}"
    assert result(gate.report)["status"] == "passed"


# -- projects --------------------------------------------------------------------------------


@pytest.fixture
def dockerinit(tmp_path: Path, python_slim_image: str, redis_alpine_image: str) -> Path:
    """A fresh copy of the project `docker init` writes (stand-in stock images made first)."""
    project = tmp_path / "dockerinit"
    shutil.copytree(PROJECTS / "dockerinit", project)
    return project


# -- gates side by side on one engine ---------------------------------------------------------


@pytest.mark.prunes
def test_gates_share_the_engine_and_a_killed_one_is_pruned(
        sample: Path, dockerinit: Path, gates: Gates, docker_client: Any,
        leftovers: Callable[[], list[str]], killed_on_purpose: Callable[[str], None]) -> None:
    """Three gates at once, each holding its stack: two on the same project (the sample), one
    on another (docker init's). Each has its own containers, networks and loopback host ports.
    A prune while all three live removes nothing. SIGKILL to the third's whole process group
    leaves its stack behind; the next prune removes it and leaves the live gates' alone. The
    first gate's own cleanup, while the second still runs, leaves the second's alone; both pass.
    (One test, three gates: it holds the prune lock, which stops every other stack test.)"""
    started = time.monotonic()
    a, b = gates.start("a", sample), gates.start("b", sample)
    victim = gates.start("victim", dockerinit)
    all_ready(a, b, victim)
    print(f"\n[engines] three holding after {time.monotonic() - started:.1f}s")

    prefix_a, prefix_b, prefix_v = (g.held.split("-")[0] for g in (a, b, victim))
    assert len({prefix_a, prefix_b, prefix_v}) == 3
    held = {g.name: footprint(docker_client, g.held) for g in (a, b, victim)}
    for one in held.values():
        assert one.containers and one.networks and one.ports, one
    for x, y in (("a", "b"), ("a", "victim"), ("b", "victim")):  # same project, two projects
        assert not held[x].containers & held[y].containers, (held[x], held[y])
        assert not held[x].networks & held[y].networks, (held[x], held[y])
        assert not held[x].ports & held[y].ports, (held[x], held[y])
    assert all(p.startswith("127.0.0.1:") for one in held.values() for p in one.ports)
    assert len({a.url, b.url, victim.url}) == 3 and a.url.startswith("http://127.0.0.1:")
    for gate in (a, b, victim):  # the stack URL the gate used answers from here too
        assert get(gate.url + "/").status_code < 500

    pruned = prune()  # all three are live: nothing of theirs may go
    for gate in (a, b, victim):
        assert footprint(docker_client, gate.held) == held[gate.name], pruned

    killed_on_purpose(prefix_v)
    os.killpg(victim.proc.pid, signal.SIGKILL)
    victim.wait(timeout=60)
    left = footprint(docker_client, prefix_v)
    assert left.containers and left.networks, f"the kill left nothing to prune: {left}"
    described = attach_dirs(victim.proc.pid)  # its shared stack's description: secrets
    assert described, "the killed gate left no stack description to prune (was one made?)"
    pruned = prune()
    assert f"session {victim.held}:" in pruned, pruned
    assert footprint(docker_client, prefix_v).names == frozenset(), pruned
    assert attach_dirs(victim.proc.pid) == [] and str(described[0]) in pruned, pruned
    assert footprint(docker_client, a.held) == held["a"], pruned
    assert footprint(docker_client, b.held) == held["b"], pruned

    a.release()
    passed(a)  # its cleanup ran while b still holds
    assert footprint(docker_client, prefix_a).names == frozenset()
    assert footprint(docker_client, b.held) == held["b"]
    b.release()
    passed(b)
    assert footprint(docker_client, prefix_b).names == frozenset()
    print(f"[engines] left by the kill: {sorted(left.names)}; gate a {a.seconds:.1f}s, "
          f"gate b {b.seconds:.1f}s, test {time.monotonic() - started:.1f}s")
    assert leftovers() == []


# -- a gate through another DOCKER_HOST ------------------------------------------------------

REQUEST = re.compile(rb"(GET|HEAD|POST|PUT|DELETE) (/[^ \r\n]*) HTTP/1\.[01]\r\n")
AGENT = re.compile(rb"\r\nUser-Agent: ([^\r\n]+)", re.IGNORECASE)


class SocketProxy:
    """A socket (unix, or TCP on 127.0.0.1) forwarding to the engine's unix socket, recording the
    requests it carries. Runs in threads of this process; :meth:`close` stops them and closes
    every socket."""

    def __init__(self, target: str, path: Path | None = None) -> None:
        self.target = target
        self.requests: set[str] = set()
        self.agents: set[str] = set()
        self.connections = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        if path is None:
            self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._server.bind(("127.0.0.1", 0))
        else:
            self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._server.bind(str(path))
        self.address = self._server.getsockname()
        self._server.listen(128)
        self._server.settimeout(0.2)
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def close(self) -> None:
        """Stop accepting, cut every connection, join the threads."""
        self._stop.set()
        self._threads[0].join(timeout=10)
        self._server.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
        for thread in self._threads[1:]:
            thread.join(timeout=10)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
            with self._lock:
                self.connections += 1
                self._sockets += [client, upstream]
            for src, dst, record in ((client, upstream, True), (upstream, client, False)):
                thread = threading.Thread(target=self._pump, args=(src, dst, record), daemon=True)
                thread.start()
                self._threads.append(thread)

    def _pump(self, src: socket.socket, dst: socket.socket, record: bool) -> None:
        tail = b""
        try:
            while data := src.recv(65536):
                if record:
                    seen = tail + data
                    with self._lock:
                        self.requests |= {f"{m.group(1).decode()} {m.group(2).decode()}"
                                          for m in REQUEST.finditer(seen)}
                        self.agents |= {m.group(1).decode(errors="replace")
                                        for m in AGENT.finditer(seen)}
                    tail = seen[-512:]
                dst.sendall(data)
        except OSError:
            # dst is gone: the engine answered early and closed (a 500 to an archive upload
            # into a read-only container). Against the engine the sender's next write fails at
            # once; here it would block on a full buffer until its timeout (two minutes of
            # IG-RUN-PIP-CHECK), so keep reading and dropping what it still sends.
            with contextlib.suppress(OSError):
                while src.recv(65536):
                    pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)


@pytest.fixture(params=["unix", "tcp"])
def alt_engine(request: pytest.FixtureRequest) -> Iterator[tuple[SocketProxy, str, str]]:
    """The engine behind a recording proxy: (proxy, DOCKER_HOST, the host published ports are
    expected on). ``unix``: a second socket (a local engine: 127.0.0.1). ``tcp``: 127.0.0.1 by
    this machine's own name (``tcp://<hostname>:PORT``, the shape of a remote engine: URLs must
    name that host)."""
    default = os.path.realpath("/var/run/docker.sock")
    short = Path(tempfile.mkdtemp(prefix="ig-alt-"))  # unix socket paths are short (108 bytes)
    try:
        if request.param == "unix":
            proxy = SocketProxy(default, short / "alt.sock")
            docker_host, expected = f"unix://{proxy.address}", "127.0.0.1"
        else:
            name = socket.gethostname()
            if hosts.addresses(name) != {"127.0.0.1"}:
                ci.missing("hostname-loopback",
                           f"this machine's name {name} does not resolve to 127.0.0.1 only")
            proxy = SocketProxy(default)
            docker_host, expected = f"tcp://{name}:{proxy.address[1]}", name
        try:
            yield proxy, docker_host, expected
        finally:
            proxy.close()
    finally:
        shutil.rmtree(short, ignore_errors=True)


def test_gate_through_another_docker_host(alt_engine: tuple[SocketProxy, str, str],
                                          sample: Path, registry: str, tmp_path: Path,
                                          gates: Gates, docker_client: Any,
                                          leftovers: Callable[[], list[str]]) -> None:
    """The gate, push included, with DOCKER_HOST on another socket and the default socket
    covered: it passes, so the SDK, compose, the BuildKit CLI, testinfra and push all used
    DOCKER_HOST; and its stack URL names the host DOCKER_HOST names."""
    if os.geteuid() != 0:
        ci.missing("root", "needs root to cover the default socket in a mount namespace")
    if shutil.which("unshare") is None:
        ci.missing("unshare", "needs unshare to cover the default socket in a mount namespace")
    started = time.monotonic()
    proxy, docker_host, expected_host = alt_engine
    default = os.path.realpath("/var/run/docker.sock")
    blocker = tmp_path / "blocked"
    blocker.write_text("")
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT")}
    ping = [str(Path(IMAGEGATE).parent / "python"), "-c",
            "import docker; docker.from_env(timeout=5).ping()"]

    def inside(*argv: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(in_private_mount_ns(blocker, default, *argv), timeout=60,
                              capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              env={**env, **extra})

    # The cover works: in there the default socket answers neither the SDK nor the CLI, and
    # DOCKER_HOST does; out here the default socket is untouched.
    assert inside(*ping).returncode != 0, "the default socket still answers in the namespace"
    assert inside("docker", "version").returncode != 0
    through = inside(*ping, DOCKER_HOST=docker_host)
    assert through.returncode == 0, through.stderr
    assert Path(default).is_socket(), "the cover leaked out of the namespace"

    ref = f"{registry}/imagegate/sample:althost"
    gate = gates.start("alt", sample, "--push", ref, "--builder", "buildkit",
                       env={**env, "DOCKER_HOST": docker_host},
                       prefix=tuple(in_private_mount_ns(blocker, default)))
    all_ready(gate)
    assert gate.url.startswith(f"http://{expected_host}:"), gate.url
    gate.release()
    passed(gate)
    stages = {s["name"]: s["status"] for s in result(gate.report)["stages"]}
    assert set(stages.values()) == {"passed"}, stages  # bases, build, stack, push: all ran
    agents, requests_seen = set(proxy.agents), set(proxy.requests)
    print(f"\n[{docker_host}] gate {gate.seconds:.1f}s, test {time.monotonic() - started:.1f}s, "
          f"{proxy.connections} connections, {len(requests_seen)} distinct requests; "
          f"agents: {sorted(agents)}; stack URL {gate.url}")
    assert any(a.startswith("docker-sdk-python") for a in agents), agents  # the SDK
    assert any(a.startswith("compose/") for a in agents), agents  # the compose CLI
    assert any(re.match(r"POST /v[\d.]+/build\?.*version=2", r) for r in requests_seen), \
        "no BuildKit build went through DOCKER_HOST"
    assert any(re.match(r"POST /v[\d.]+/images/.+/push", r) for r in requests_seen), \
        "no push went through DOCKER_HOST"
    assert any(re.match(r"POST /v[\d.]+/containers/.+/exec", r) for r in requests_seen), \
        "no exec (testinfra) went through DOCKER_HOST"
    docker_client.images.remove(ref, noprune=True)
    assert leftovers() == []


def test_sigterm_to_the_gate_takes_its_stack_down(sample: Path, gates: Gates,
                                                  docker_client: Any,
                                                  leftovers: Callable[[], list[str]]) -> None:
    """SIGTERM to the gate alone (a CI job cancelled) while its stages hold the stack it brought
    up: it stops its pytest runs, takes its stack down, removes the stack's description, and
    exits 130 saying it was interrupted; nothing of it is left, no prune needed."""
    gate = gates.start("term", sample)
    all_ready(gate)
    assert attach_dirs(gate.proc.pid), "no stack description while the gate holds its stack"
    os.kill(gate.proc.pid, signal.SIGTERM)
    assert gate.wait(timeout=120) == 130, gate.output[-3000:]
    assert "imagegate gate: interrupted" in gate.output, gate.output[-3000:]
    assert footprint(docker_client, gate.held.split("-")[0]).names == frozenset()
    assert attach_dirs(gate.proc.pid) == []
    assert leftovers() == []


# -- a remote engine's loopback binding, on the real engine -----------------------------------

#: TEST-NET-1 (RFC 5737): never routed. Nothing connects to it: the URL is refused first.
ELSEWHERE = "192.0.2.1"


def test_unreachable_published_host_fails_fast(app_image: str, docker_client: Any,
                                              imagegate_settings: Any, stack_files: list[Path],
                                              stack_env: dict[str, str]) -> None:
    """Ports the engine bound to its 127.0.0.1, to be reached at another host (a remote
    engine's case): the container and the stack say so at once, and leave nothing."""
    from imagegate.engine import labelled_objects, new_session_id
    from imagegate.errors import UsageError
    from imagegate.run.container import running
    from imagegate.run.stack import running_stack

    started = time.monotonic()
    session = new_session_id()
    try:
        with (pytest.raises(UsageError, match=f"cannot be reached at {ELSEWHERE}"),
              running(docker_client, app_image, session, env={},
                      port=imagegate_settings.web_port, published_host=ELSEWHERE)):
            pytest.fail("must not get here")
        assert labelled_objects(session, docker_client) == []
        with running_stack(stack_files, project=f"{session}-main", session=session,
                           project_dir=imagegate_settings.project_dir, env=stack_env,
                           wait_timeout=imagegate_settings.wait_timeout,
                           default_port=imagegate_settings.web_port,
                           published_host=ELSEWHERE) as stack:
            with pytest.raises(UsageError, match=f"cannot be reached at {ELSEWHERE}"):
                stack.url(imagegate_settings.web_service, "/")
            assert stack.binding(imagegate_settings.web_service,
                                 imagegate_settings.web_port)[0] == "127.0.0.1"
        assert labelled_objects(session, docker_client) == []
    finally:
        cleanup_session(session, docker_client)
    print(f"\n[unreachable] {time.monotonic() - started:.1f}s")
