"""Where published ports are reached (imagegate.engine.hosts), and who owns a session (engine labels):
no Docker needed (fakes stand in for the SDK and compose)."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from imagegate import engine
from imagegate.config.settings import Settings
from imagegate.engine import hosts
from imagegate.errors import UsageError
from imagegate.run.container import running
from imagegate.run.stack import Stack

#: What the fake resolver knows (a unit test never asks a real DNS server).
NAMES = {"localhost": ["127.0.0.1", "::1"], "vm": ["127.0.0.1"], "myhost": ["127.0.1.1"],
         "docker": ["172.17.0.2"], "build-1": ["10.0.0.7"], "build-1.example": ["10.0.0.8"]}


@pytest.fixture(autouse=True)
def resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    """Names resolve from :data:`NAMES` only (IP literals to themselves, as the real resolver
    does); anything else does not resolve."""
    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        with contextlib.suppress(ValueError):
            literal = ipaddress.ip_address(host)
            return [(socket.AF_INET6 if literal.version == 6 else socket.AF_INET,
                     socket.SOCK_STREAM, 6, "", (host, port))]
        if host not in NAMES:
            raise socket.gaierror(-2, "Name or service not known")
        return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (ip, 0)) for ip in NAMES[host]]

    monkeypatch.setattr(hosts.socket, "getaddrinfo", getaddrinfo)


# --- DOCKER_HOST → host --------------------------------------------------------------------------


@pytest.mark.parametrize(("docker_host", "host"), [
    ("", ""),
    ("unix:///var/run/docker.sock", ""),
    ("unix:///tmp/alt/alt.sock", ""),
    ("npipe:////./pipe/docker_engine", ""),
    ("fd://", ""),
    ("tcp://10.0.0.5:2376", "10.0.0.5"),
    ("tcp://build-1.example.internal:2375", "build-1.example.internal"),
    ("TCP://Docker:2376", "docker"),
    ("tcp://[fd00::5]:2376", "fd00::5"),
    ("tcp://:2375", ""),
    ("ssh://ci@build-1", "build-1"),
    ("ssh://ci@build-1:2222", "build-1"),
    ("ssh://build-1", "build-1"),
    ("ssh://ci@[fd00::5]:22", "fd00::5"),
    ("https://engine.example:2376/", "engine.example"),
    ("10.0.0.7:2375", "10.0.0.7"),
    ("tcp://[fd00::5:2376", ""),
])
def test_docker_host_address(docker_host: str, host: str) -> None:
    """The host part of DOCKER_HOST for network schemes; nothing for local sockets or junk."""
    assert hosts.docker_host_address(docker_host) == host


@pytest.mark.parametrize(("setting", "docker_host", "expected"), [
    ("", None, "127.0.0.1"),
    ("", "unix:///run/user/1000/docker.sock", "127.0.0.1"),
    ("", "tcp://10.0.0.5:2376", "10.0.0.5"),
    ("", "ssh://ci@build-1", "build-1"),
    ("docker", "tcp://10.0.0.5:2376", "docker"),
    ("  192.0.2.7 ", None, "192.0.2.7"),
    ("   ", "tcp://10.0.0.5:2376", "10.0.0.5"),
])
def test_published_host_resolution(setting: str, docker_host: str | None,
                                   expected: str) -> None:
    """The setting wins, else DOCKER_HOST's host, else 127.0.0.1."""
    environ = {} if docker_host is None else {"DOCKER_HOST": docker_host}
    assert hosts.published_host(Settings(published_host=setting), environ) == expected


def test_published_host_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without settings or an explicit environment, the process's DOCKER_HOST decides."""
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.1.2.3:2375")
    assert hosts.published_host() == "10.1.2.3"
    monkeypatch.delenv("DOCKER_HOST")
    assert hosts.published_host() == "127.0.0.1"


# --- URLs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("host", "bound", "expected"), [
    ("127.0.0.1", "127.0.0.1", "http://127.0.0.1:49153/x"),
    ("localhost", "127.0.0.1", "http://localhost:49153/x"),
    ("::1", "::1", "http://[::1]:49153/x"),
    ("10.0.0.5", "0.0.0.0", "http://10.0.0.5:49153/x"),
    ("fd00::5", "::", "http://[fd00::5]:49153/x"),
    ("docker", "", "http://docker:49153/x"),
    ("[fd00::5]", "", "http://[fd00::5]:49153/x"),
])
def test_url(host: str, bound: str, expected: str) -> None:
    """host:port with IPv6 literals bracketed; any binding reachable at that host is fine."""
    assert hosts.url(49153, "/x", host=host, bound_ip=bound) == expected


def test_url_without_host_uses_docker_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """No host given: resolved from DOCKER_HOST (a local socket: 127.0.0.1)."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///tmp/x.sock")
    assert hosts.url(5000) == "http://127.0.0.1:5000"
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.5:2375")
    assert hosts.url(5000, "/h", bound_ip="0.0.0.0") == "http://10.0.0.5:5000/h"


@pytest.mark.parametrize("host", ["10.0.0.5", "docker", "fd00::5", "build-1.example", "myhost"])
def test_loopback_binding_is_unreachable_from_another_host(host: str) -> None:
    """A port bound to the engine host's 127.0.0.1, addressed through a host that stands for
    another address (even 127.0.1.1): a clear error naming the fix, not a URL that would time
    out."""
    with pytest.raises(UsageError, match=r"published on 127\.0\.0\.1 of the engine's host, "
                                         rf"which cannot be reached at {host}") as info:
        hosts.url(49153, host=host, bound_ip="127.0.0.1")
    assert "published_host" in info.value.message and info.value.exit_code == 2


@pytest.mark.parametrize(("host", "bound", "reachable"), [
    ("127.0.0.1", "127.0.0.1", True),
    ("localhost", "127.0.0.1", True),
    ("vm", "127.0.0.1", True),  # a name for this machine's 127.0.0.1
    ("localhost", "::1", True),
    ("[::1]", "::1", True),
    ("myhost", "127.0.0.1", False),  # Debian's 127.0.1.1: loopback, but not where it listens
    ("127.0.0.2", "127.0.0.1", False),
    ("docker", "127.0.0.1", False),
    ("docker", "0.0.0.0", True),  # every interface: not judged
    ("docker", "172.17.0.1", True),  # another specific address: not judged
    ("no-such-name", "127.0.0.1", True),  # does not resolve: the HTTP call will say so
    ("docker", "", True),
])
def test_reachable(host: str, bound: str, reachable: bool) -> None:
    """Only a loopback binding is judged: the host must stand for that very address."""
    assert hosts.reachable(host, bound) is reachable


# --- container.running and Stack.url go through hosts.url ---------------------------------------


class FakeContainer:
    """A created container that starts and is published on ``host_ip:49153``."""

    def __init__(self, host_ip: str) -> None:
        self.id, self.name, self.removed = "c" * 64, "fake", False
        self.attrs = {"NetworkSettings": {"Ports": {"8000/tcp": [
            {"HostIp": host_ip, "HostPort": "49153"}]}}}

    def start(self) -> None:
        """Starts."""

    def reload(self) -> None:
        """Nothing to reload."""

    def remove(self, **kwargs: Any) -> None:
        self.removed = True


def _cli(created: FakeContainer) -> Any:
    """A docker SDK client whose ``containers.create`` returns ``created``."""
    containers = type("Containers", (), {"create": lambda self, *a, **k: created})()
    return type("Cli", (), {"containers": containers})()


def test_running_url_uses_the_published_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """The container's URL names the published host: DOCKER_HOST's, or the one given."""
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    created = FakeContainer("0.0.0.0")
    with running(_cli(created), "img", "igtest", env={}, port=8000) as ctr:
        assert ctr.url == "http://127.0.0.1:49153"
    with running(_cli(created), "img", "igtest", env={}, port=8000,
                 published_host="10.0.0.5") as ctr:
        assert ctr.url == "http://10.0.0.5:49153"
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.9:2375")
    with running(_cli(created), "img", "igtest", env={}, port=8000) as ctr:
        assert ctr.url == "http://10.0.0.9:49153"
    assert created.removed


def test_running_refuses_an_unreachable_binding_and_removes_the_container() -> None:
    """The gate's loopback binding on a remote engine: a UsageError, and nothing left."""
    created = FakeContainer("127.0.0.1")
    with (pytest.raises(UsageError, match=r"cannot be reached at 10\.0\.0\.5"),
          running(_cli(created), "img", "igtest", env={}, port=8000,
                  published_host="10.0.0.5")):
        pytest.fail("must not get here")
    assert created.removed


def _stack(published: str, port_line: str, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """A Stack whose ``compose port`` prints ``port_line``."""
    stack = Stack((Path("compose.yml"),), "p", Path("."), {}, Path("empty.env"), "igtest",
                  published_host=published)

    def compose(*args: str, **kwargs: Any) -> Any:
        assert args[0] == "port"
        return type("Proc", (), {"stdout": port_line + "\n"})()

    monkeypatch.setattr(stack, "compose", compose)
    monkeypatch.setattr(hosts, "listening", lambda *args, **kwargs: True)  # the engine's proxy
    return stack


@pytest.mark.parametrize(("published", "line", "url"), [
    ("", "127.0.0.1:49153", "http://127.0.0.1:49153/h"),
    ("localhost", "127.0.0.1:49153", "http://localhost:49153/h"),
    ("10.0.0.5", "0.0.0.0:49153", "http://10.0.0.5:49153/h"),
    ("fd00::5", "[::]:49153", "http://[fd00::5]:49153/h"),
])
def test_stack_url(published: str, line: str, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stack.url: the published host and the port compose reports."""
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    stack = _stack(published, line, monkeypatch)
    assert stack.url("web", "/h") == url
    assert stack.port("web", 8000) == 49153


def test_stack_url_refuses_an_unreachable_binding(monkeypatch: pytest.MonkeyPatch) -> None:
    """A remote engine's loopback binding through its own host: a clear error."""
    monkeypatch.setenv("DOCKER_HOST", "ssh://ci@build-1")
    with pytest.raises(UsageError, match="cannot be reached at build-1"):
        _stack("", "127.0.0.1:49153", monkeypatch).url("web", "/")


# --- a job container with the socket mounted: its 127.0.0.1 is not the engine host's -----------


@pytest.fixture
def refused_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, never listened, closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_published_url_in_another_network_namespace(refused_port: int,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing listens at the loopback port here and the engine's host has another name: this
    process is not on the engine host's network; a clear error, not a dead URL."""
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(hosts, "engine_hostname", lambda: "runner-host")
    with pytest.raises(UsageError, match=rf"nothing accepts connections at 127\.0\.0\.1:"
                                         rf"{refused_port} here .*job container") as info:
        hosts.published_url(refused_port, "/x", bound_ip="127.0.0.1")
    assert "runner-host" in info.value.message


@pytest.mark.parametrize("engine_host", ["", "same"])
def test_published_url_on_the_engines_host(refused_port: int, engine_host: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """On the engine's own host (or when the engine gives no name) a port that does not accept
    yet is still its URL: an engine publishing without a listening proxy is not misjudged."""
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    name = socket.gethostname() if engine_host == "same" else ""
    monkeypatch.setattr(hosts, "engine_hostname", lambda: name)
    assert hosts.published_url(refused_port, "/x", bound_ip="127.0.0.1") == \
        f"http://127.0.0.1:{refused_port}/x"


def test_published_url_listening(monkeypatch: pytest.MonkeyPatch) -> None:
    """A loopback port that accepts here is reached here, whatever the engine's host is called;
    the engine is not asked."""
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(hosts, "engine_hostname", lambda: pytest.fail("engine asked"))
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        assert hosts.published_url(port, bound_ip="127.0.0.1") == f"http://127.0.0.1:{port}"


# --- session owners ------------------------------------------------------------------------------


def test_owner_label_names_this_process() -> None:
    """host:pid:start of this process; alive as long as we run, not for a reused PID."""
    owner = engine.session_labels("igx")[engine.PID_LABEL]
    host, pid, start = owner.split(":")
    assert pid == str(os.getpid()) and start.isdigit()
    assert engine.owner_alive(owner, host) is True
    assert engine.owner_alive(f"{host}:{pid}", host) is True  # older labels: host:pid
    assert engine.owner_alive(f"{host}:{pid}:{int(start) + 1}", host) is False  # PID reused
    assert engine.owner_alive(f"{host}:999999999:1", host) is False
    assert engine.owner_alive(f"elsewhere:{pid}:{start}", host) is None
    assert engine.owner_alive("", host) is None


class Labelled:
    """An SDK container/network/volume with labels."""

    def __init__(self, session: str, owner: str) -> None:
        self.attrs = {"Labels": {engine.SESSION_LABEL: session, engine.PID_LABEL: owner}}


def test_stale_sessions_only_when_every_owner_is_gone() -> None:
    """A session is stale when no object's owner lives; one live owner (or one on another host,
    which cannot be judged) keeps the whole session."""
    host = engine.socket.gethostname()
    me = engine.session_labels("x")[engine.PID_LABEL]
    dead = f"{host}:999999999:1"
    objects = {
        "containers": [Labelled("dead", dead), Labelled("mixed", dead), Labelled("live", me)],
        "networks": [Labelled("mixed", me), Labelled("dead", dead)],
        "volumes": [Labelled("remote", f"ci-runner-7:{os.getpid()}"),
                    Labelled("remote", dead)],
    }

    def listing(kind: str) -> Any:
        return type("Listing", (), {"list": lambda self, **kw: objects[kind]})()

    cli = type("Cli", (), {k: listing(k) for k in objects})()
    assert engine.stale_sessions(cli) == {"dead"}
