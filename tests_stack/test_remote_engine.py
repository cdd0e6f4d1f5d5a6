"""The gate against a second engine whose published ports this machine cannot reach.

GitLab's default CI runs the job in one container and Docker in a ``docker:dind`` service: the
engine is reached over TCP (2375) or TLS (2376), and every port it publishes on its loopback is
on *another* host. This module makes that here: a network namespace of its own, a veth pair
with one /30 (this side .1, the namespace .2), and a second ``dockerd`` started in the
namespace with ``nsenter --net`` (``ip netns exec`` remounts /sys and dockerd then finds no
cgroup devices). It listens only on the namespace's own address, once plain TCP, once TLS with
a CA, server and client certificates made here. The bases reach it by ``docker save | docker
load``; builds there have no route out (hermetic projects only). A registry (Debian's
docker-registry) runs in the namespace on its 127.0.0.1:5000, where that engine pushes to it as
a dind job pushes to its registry.

The gate then runs as CI runs it: a subprocess with DOCKER_HOST (and DOCKER_TLS_VERIFY,
DOCKER_CERT_PATH) set and no other setting, the default socket covered in a private mount
namespace so nothing can fall back to the local engine. One gate per engine, each project once:
this repository over plain TCP (its own stack tests through ``stack_url``), the sample project
over TLS (with push, and a stack test of its own through ``stack_url``, so the forward is
proven over both transports). Each must pass reaching the web service only through its probe
and leave no labelled object on that engine. The engine, its data and exec roots, the
registry, the veth and the namespace are removed afterwards, also when a test fails.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from stack_helpers import IMAGEGATE, findings, in_private_mount_ns, junit_cases, result

from imagegate.engine import PID_LABEL, SESSION_LABEL, from_env, labelled_objects
from imagegate.proc import StopWaiting, wait_until
from testsupport.tls import issue, make_ca

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("remote_engine")]

SAMPLE = Path(__file__).parent / "sample_project"
#: Seconds a gate may take end to end here (a cold build on the fresh engine included).
GATE_TIMEOUT = 900
#: Where the registry listens inside the namespace (its own loopback: 127.0.0.0/8 is a
#: registry every engine trusts without TLS).
REGISTRY = "127.0.0.1:5000"
#: The /30s the namespace's veth pair takes one of (RFC 1918; checked against this host's routes).
POOL = ipaddress.ip_network("10.231.0.0/16")


def _run(*argv: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    """An argv of the setup (ip, nsenter, openssl), bounded; raises with its stderr on failure."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def _free_subnet() -> ipaddress.IPv4Network:
    """A /30 of :data:`POOL` no route of this host overlaps (a concurrent run picks another)."""
    routes = [ipaddress.ip_network(line.split()[0], strict=False)
              for line in _run("ip", "-4", "route", "show", "table", "all").stdout.splitlines()
              if line and line.split()[0][0].isdigit()]
    candidates = list(POOL.subnets(new_prefix=30))
    for net in random.sample(candidates, 64):
        if not any(net.overlaps(r) for r in routes if r.prefixlen > 0):
            return net
    raise RuntimeError(f"no free /30 in {POOL}")


def make_engine_tls(where: Path, address: str) -> Path:
    """A CA, a server certificate for IP ``address`` and a client certificate, by the openssl
    CLI, laid out as DOCKER_CERT_PATH wants them (ca.pem, cert.pem, key.pem); the server's are
    server-cert.pem and server-key.pem beside them. Returns ``where``."""
    make_ca(where, "imagegate test engine CA", "ca.pem", "ca-key.pem")
    for name, subject, ext in (
            ("server", f"/CN={address}",
             f"subjectAltName=IP:{address}\nextendedKeyUsage=serverAuth\n"),
            ("client", "/CN=imagegate gate", "extendedKeyUsage=clientAuth\n")):
        issue(where, name, subject, ext, ca=("ca.pem", "ca-key.pem"), cert=f"{name}-cert.pem",
              key=f"{name}-key.pem")
    shutil.copyfile(where / "client-cert.pem", where / "cert.pem")
    shutil.copyfile(where / "client-key.pem", where / "key.pem")
    return where


@dataclass
class RemoteEngine:
    """A dockerd in a network namespace of the test's own (see the module doc)."""

    kind: str  # "tcp" or "tls"
    netns: str
    address: str  # the namespace's side of the veth
    root: Path  # data root, exec root, pidfile, log, certificates, registry storage
    env: dict[str, str] = field(default_factory=dict)  # DOCKER_HOST (+ TLS variables)

    @property
    def pidfile(self) -> Path:
        """dockerd's own pidfile (``--pidfile``): how it is stopped."""
        return self.root / "dockerd.pid"

    def client(self) -> Any:
        """An SDK client for this engine, configured from :attr:`env` alone."""
        return from_env(environment=self.env, timeout=120)

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of dockerd's log."""
        text = (self.root / "dockerd.log").read_text(errors="replace") \
            if (self.root / "dockerd.log").exists() else ""
        return "\n".join(text.strip().splitlines()[-lines:])


def _answers(engine: RemoteEngine, proc: subprocess.Popen[bytes]) -> bool:
    """True once the engine answers a ping over :attr:`RemoteEngine.env`; stops the wait when
    dockerd has exited."""
    if proc.poll() is not None:
        raise StopWaiting(f"dockerd exited {proc.returncode}:\n{engine.log_tail()}")
    try:
        engine.client().ping()
        return True
    except Exception:
        return False


def _stop_pid(pid: int, what: str) -> None:
    """SIGTERM ``pid``, wait for it to go, SIGKILL if it does not within 30 s."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    try:
        wait_until(lambda: not Path(f"/proc/{pid}").exists() or
                   Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z",
                   timeout=30, interval=0.2, what=f"{what} {pid} exiting")
    except Exception:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _unmount_under(root: Path) -> None:
    """Lazily unmount whatever a killed dockerd left mounted under ``root`` (deepest first)."""
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for point in sorted((m for m in mounts if m.startswith(f"{root}/")), key=len, reverse=True):
        _run("umount", "-l", point, check=False)


@contextlib.contextmanager
def second_engine(kind: str) -> Iterator[RemoteEngine]:
    """The namespace, the veth, dockerd (``kind``: tcp or tls) and the registry in it; all of
    it removed on exit, whatever happened. The cleanup raises if the namespace or the veth
    survived it."""
    token = f"{random.getrandbits(24):06x}"
    netns, host_if, ns_if = f"ig-{token}", f"igh{token}", f"ign{token}"
    # short: unix sockets under the exec root must fit in 108 bytes
    root = Path(tempfile.mkdtemp(prefix="ig-ns-"))
    procs: list[subprocess.Popen[bytes]] = []
    engine = None
    try:
        net = _free_subnet()
        here, there = (str(a) for a in list(net.hosts())[:2])
        _run("ip", "netns", "add", netns)
        _run("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _run("ip", "link", "set", ns_if, "netns", netns)
        _run("ip", "addr", "add", f"{here}/30", "dev", host_if)
        _run("ip", "link", "set", host_if, "up")
        _run("ip", "-n", netns, "addr", "add", f"{there}/30", "dev", ns_if)
        _run("ip", "-n", netns, "link", "set", ns_if, "up")
        _run("ip", "-n", netns, "link", "set", "lo", "up")
        engine = RemoteEngine(kind, netns, there, root)
        enter = ["nsenter", f"--net=/var/run/netns/{netns}"]
        listen = ["-H", f"tcp://{there}:2375", "--tls=false"]
        engine.env = {"DOCKER_HOST": f"tcp://{there}:2375"}
        if kind == "tls":
            (root / "certs").mkdir()
            certs = make_engine_tls(root / "certs", there)
            listen = ["-H", f"tcp://{there}:2376", "--tlsverify",
                      "--tlscacert", str(certs / "ca.pem"),
                      "--tlscert", str(certs / "server-cert.pem"),
                      "--tlskey", str(certs / "server-key.pem")]
            # REQUESTS_CA_BUNDLE as machines behind a TLS-intercepting proxy set it (this one
            # does): the SDK must still verify the engine with DOCKER_CERT_PATH's CA
            engine.env = {"DOCKER_HOST": f"tcp://{there}:2376", "DOCKER_TLS_VERIFY": "1",
                          "DOCKER_CERT_PATH": str(certs),
                          "REQUESTS_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt"}
        with open(root / "dockerd.log", "wb") as log:
            procs.append(subprocess.Popen(
                [*enter, "dockerd", "--data-root", str(root / "data"),
                 "--exec-root", str(root / "exec"), "--pidfile", str(engine.pidfile),
                 *listen, "-H", f"unix://{root}/d.sock",
                 "--containerd-namespace", netns, "--containerd-plugins-namespace", f"{netns}p"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        wait_until(lambda: _answers(engine, procs[0]), timeout=90, interval=0.3,
                   what=f"dockerd in {netns} answering at {engine.env['DOCKER_HOST']}",
                   describe=engine.log_tail)
        (root / "registry").mkdir()
        config = root / "registry" / "config.yml"
        config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: "
                          f"{root}/registry/data\nhttp:\n  addr: {REGISTRY}\nlog:\n  level: warn\n")
        with open(root / "registry" / "registry.log", "wb") as log:
            procs.append(subprocess.Popen([*enter, "docker-registry", "serve", str(config)],
                                          stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL))
        wait_until(lambda: _run(*enter, "python3", "-c", "import urllib.request; urllib.request"
                                f".urlopen('http://{REGISTRY}/v2/', timeout=2)",
                                check=False).returncode == 0,
                   timeout=30, interval=0.3, what=f"the registry in {netns} answering")
        yield engine
    finally:
        for proc in reversed(procs[1:]):  # the registry: ours, by its PID
            _stop_pid(proc.pid, "docker-registry")
            proc.wait(timeout=30)
        if procs:
            pid = int(engine.pidfile.read_text().strip()) \
                if engine and engine.pidfile.exists() else procs[0].pid
            _stop_pid(pid, "dockerd")
            with contextlib.suppress(subprocess.TimeoutExpired):
                procs[0].wait(timeout=30)
        _unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)
        _run("ip", "link", "del", host_if, check=False)
        _run("ip", "netns", "del", netns, check=False)
        left = [what for what, gone in (
            (f"namespace {netns}", not Path(f"/var/run/netns/{netns}").exists()),
            (f"link {host_if}", _run("ip", "link", "show", host_if, check=False).returncode),
            (f"root {root}", not root.exists())) if not gone]
        if left:
            raise RuntimeError(f"the second engine's cleanup left {', '.join(left)}")


@contextlib.contextmanager
def engine_with_bases(kind: str, settings: Any, docker_client: Any) -> Iterator[RemoteEngine]:
    """A second engine (``kind``: tcp or tls) reached over the veth, holding this repo's bases
    (``docker save`` here, ``docker load`` there) and nothing else."""
    from imagegate.build.pipeline import ensure_bases

    missing = [tool for tool in ("ip", "nsenter", "dockerd", "openssl", "docker-registry",
                                 "unshare") if shutil.which(tool) is None]
    if missing or os.geteuid() != 0:
        pytest.skip(f"needs root and {', '.join(missing) or 'these tools'}: a namespace and a "
                    "second dockerd")
    bases = ensure_bases(settings, log=lambda _: None)
    with second_engine(kind) as engine:
        remote = engine.client()
        started = time.monotonic()
        for ref in bases.values():
            with tempfile.TemporaryFile() as tar:
                for chunk in docker_client.images.get(ref).save(named=True):
                    tar.write(chunk)
                tar.seek(0)
                remote.images.load(tar)
        print(f"\n[{engine.kind}] engine {engine.env['DOCKER_HOST']} in {engine.netns}; "
              f"bases {sorted(bases.values())} loaded in {time.monotonic() - started:.1f}s")
        yield engine
        remote.close()


# One engine of each kind for the module, each started once (a parametrized fixture would be
# started again for every test that names its param in another list).
@pytest.fixture(scope="module")
def tcp_engine(imagegate_settings: Any, docker_client: Any) -> Iterator[RemoteEngine]:
    """The second engine over plain TCP (a ``docker:dind`` service without TLS)."""
    with engine_with_bases("tcp", imagegate_settings, docker_client) as engine:
        yield engine


@pytest.fixture(scope="module")
def tls_engine(imagegate_settings: Any, docker_client: Any) -> Iterator[RemoteEngine]:
    """The second engine over TLS (GitLab's default ``docker:dind``)."""
    with engine_with_bases("tls", imagegate_settings, docker_client) as engine:
        yield engine


def gate_on(engine: RemoteEngine, project: Path, report: Path, *args: str,
            ) -> tuple[subprocess.CompletedProcess[str], float]:
    """``imagegate gate`` on ``project`` as CI runs it, and its wall time: with ``engine``'s
    DOCKER_* variables alone and the default socket covered (nothing can reach the local engine
    by mistake)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update(engine.env)
    blocker = report.parent / f"{report.name}.blocked"
    blocker.write_text("")
    argv = in_private_mount_ns(
        blocker, os.path.realpath("/var/run/docker.sock"),
        IMAGEGATE, "gate", "--project-dir", str(project), "--report-dir", str(report), *args)
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=GATE_TIMEOUT, env=env,
                          stdin=subprocess.DEVNULL)
    return proc, time.monotonic() - started


def passed(proc: subprocess.CompletedProcess[str], report: Path) -> dict[str, str]:
    """Assert the gate exited 0 with a passed report; its stage statuses."""
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    assert result(report)["status"] == "passed"
    return {s["name"]: s["status"] for s in result(report)["stages"]}


def nothing_labelled_left(engine: RemoteEngine) -> None:
    """No container, network or volume of any imagegate session on the engine (it is ours
    alone, so every labelled object is a leftover)."""
    remote = engine.client()
    try:
        assert labelled_objects(None, remote) == []
    finally:
        remote.close()


#: The sample project's own stack test in the copy gated remotely: a GET through ``stack_url``,
#: which on an engine whose ports this machine cannot reach is the forward through the probe.
FORWARD_TEST = """\
import requests


def test_health_through_stack_url(stack_url):
    assert requests.get(stack_url + "/health", timeout=10).status_code == 200
"""


@pytest.fixture
def sample_copy(tmp_path: Path, imagegate_settings: Any) -> Path:
    """A fresh copy of the sample project with this repo's hashed locks (its wheelhouse) and a
    stack test of its own (:data:`FORWARD_TEST`, run by the gate's stack stage)."""
    project = tmp_path / "sample"
    shutil.copytree(SAMPLE, project)
    for lock in imagegate_settings.locks:
        shutil.copy2(imagegate_settings.path(lock), project / lock)
    (project / "tests_remote").mkdir()
    (project / "tests_remote" / "test_forward.py").write_text(FORWARD_TEST)
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    assert "\n[tool.imagegate]\n" in text
    pyproject.write_text(text.replace("\n[tool.imagegate]\n",
                                      '\n[tool.imagegate]\nstack_tests = ["tests_remote"]\n'))
    return project


def test_gate_passes_on_a_remote_engine(tls_engine: RemoteEngine, sample_copy: Path,
                                        tmp_path: Path) -> None:
    """The sample project, push included, on the second engine over TLS: every stage passes;
    the web service answered only from inside its network (its published port on the engine's
    loopback is named unreachable, not failed), and the project's own stack test reached it
    through the forward; the image was built there and pushed to the registry beside it with
    the digest the gate reported; nothing labelled is left."""
    report = tmp_path / "remote"
    ref = f"{REGISTRY}/imagegate/sample:remote"
    proc, seconds = gate_on(tls_engine, sample_copy, report, "--push", ref)
    stages = passed(proc, report)
    assert stages == {"preflight": "passed", "lint": "passed", "bases": "passed",
                      "build": "passed", "image": "passed", "stack": "passed",
                      "push": "passed"}, stages
    # the loaded bases were found up to date: nothing was built from .debs over there
    assert "base imagegate/python:3.11-bookworm: up to date" in proc.stdout, proc.stdout[-3000:]

    http = [f for f in findings(report) if f["check_id"] == "IG-STACK-HTTP"]
    inside = [f for f in http if "from inside the network" in f["message"]]
    published = [f for f in http if "published port" in f["message"]]
    assert inside and all(f["ok"] and not f["skipped"] for f in inside), inside
    assert published and all(f"cannot be reached at {tls_engine.address}" in f["skipped"]
                             for f in published), published
    # IG-RUN-PIP-CHECK streams pip into the read-only container through an exec: over TLS too
    assert {f["check_id"] for f in findings(report, outcome="passed")} >= {
        "IG-RUN-HEALTHY", "IG-RUN-HTTP-HEALTH", "IG-RUN-PROCS-NONROOT", "IG-RUN-PIP-CHECK",
        "IG-STACK-HEALTHY", "IG-FLASK-DEBUGGER", "IG-FLASK-ROUTES"}
    assert not [f for f in findings(report, outcome="skipped") if f["stage"] == "image"]
    own = {c: o for c, o in junit_cases(report).items()
           if c.startswith("stack::") and "test_health_through_stack_url" in c}
    assert own and set(own.values()) == {"passed"}, own

    image_id = result(report)["image"]["id"]
    remote = tls_engine.client()
    try:
        assert remote.images.get("imagegate/sample:local").id == image_id
    finally:
        remote.close()
    digest = result(report)["pushed"]["digest"]
    link = (tls_engine.root / "registry/data/docker/registry/v2/repositories/imagegate/sample"
            "/_manifests/tags/remote/current/link")
    assert link.read_text().strip() == digest
    nothing_labelled_left(tls_engine)
    built = next((ln for ln in proc.stdout.splitlines() if ln.startswith("built ")), "")
    print(f"\n[{tls_engine.kind}] sample gate: remote {seconds:.1f}s "
          f"(build stage {_stage_seconds(report, 'build'):.1f}s: {built})")


def test_gate_passes_on_this_repo_remotely(tcp_engine: RemoteEngine, imagegate_settings: Any,
                                           tmp_path: Path) -> None:
    """This repository on the second engine over plain TCP: its own stack tests (``requests``
    on ``stack_url``) pass through the forward on 127.0.0.1 the gate makes through its probe."""
    report = tmp_path / "repo"
    proc, seconds = gate_on(tcp_engine, imagegate_settings.project_dir, report)
    stages = passed(proc, report)
    assert set(stages.values()) == {"passed"}, stages
    cases = junit_cases(report)
    own = {c: o for c, o in cases.items() if c.startswith("stack::") and "test_http" in c}
    assert own and set(own.values()) == {"passed"}, own
    nothing_labelled_left(tcp_engine)
    print(f"\n[{tcp_engine.kind}] this repo's gate: remote {seconds:.1f}s")


@pytest.mark.parametrize("kind", ["tcp", "tls"])
def test_prune_on_a_remote_engine(kind: str, request: pytest.FixtureRequest) -> None:
    """``imagegate prune`` with DOCKER_* alone removes a dead run's leftovers on that engine."""
    remote_engine: RemoteEngine = request.getfixturevalue(f"{kind}_engine")
    finished = subprocess.Popen(["true"])
    finished.wait(timeout=30)
    session = f"igdead{random.getrandbits(24):06x}"
    remote = remote_engine.client()
    try:
        # owner: a process of this host that has ended (start time 1: no live one has it)
        remote.networks.create(f"{session}-net", labels={
            SESSION_LABEL: session, PID_LABEL: f"{socket.gethostname()}:{finished.pid}:1"})
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        proc = subprocess.run([IMAGEGATE, "prune"], capture_output=True, text=True, timeout=120,
                              env={**env, **remote_engine.env}, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"session {session}" in proc.stdout, proc.stdout
        assert labelled_objects(session, remote) == []
    finally:
        remote.close()


def _stage_seconds(report: Path, name: str) -> float:
    """How long stage ``name`` took, from result.json."""
    return float(next(s["seconds"] for s in result(report)["stages"] if s["name"] == name))
