"""Where published ports are reached: the one place a URL to a published port is made.

A local engine (``DOCKER_HOST`` unset, or a ``unix://`` socket) publishes on this machine:
``127.0.0.1``. A remote engine (``tcp://HOST:PORT``, ``ssh://user@HOST``) publishes on *its* host,
so the URL names that host, as pytest-docker's ``docker_ip`` does. The ``published_host`` setting
overrides both (a forwarded address, a CI service name).

The gate publishes every port on ``127.0.0.1`` *of the engine's host*: only that address
reaches it. :func:`url` therefore refuses, with a :class:`~imagegate.errors.UsageError` that says
what to do, a URL that cannot work (a loopback binding addressed through a host that stands for
another address), so a readiness wait does not spend its whole budget on "connection refused".
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from imagegate.errors import UsageError

if TYPE_CHECKING:
    from imagegate.config.settings import Settings

#: Where a local engine's published ports are reached.
LOOPBACK = "127.0.0.1"
#: DOCKER_HOST schemes that name a host over the network (the others are local sockets).
NETWORK_SCHEMES = ("tcp", "ssh", "http", "https")


def docker_host_address(docker_host: str) -> str:
    """The host part of a ``DOCKER_HOST`` value; empty for a local socket or an unset value.

    ``tcp://10.0.0.5:2376`` → ``10.0.0.5``; ``ssh://ci@build-1:2222`` → ``build-1``;
    ``tcp://[fd00::5]:2376`` → ``fd00::5``; ``unix:///var/run/docker.sock``, ``npipe://…`` → ``""``.
    A value without a scheme (``host:2375``) is tcp, as the docker SDK reads it; ``tcp://:2375``
    has no host (the SDK then uses 127.0.0.1).
    """
    value = docker_host.strip()
    if not value:
        return ""
    scheme, sep, rest = value.partition("://")
    if not sep:
        scheme, rest = "tcp", value
    if scheme.lower() not in NETWORK_SCHEMES:
        return ""
    try:
        return urlsplit("//" + rest.split("/", 1)[0]).hostname or ""
    except ValueError:  # an unclosed "[" or a bad port: the engine will not answer either
        return ""


def published_host(settings: Settings | None = None,
                   environ: Mapping[str, str] | None = None) -> str:
    """The host published ports are reached on: the ``published_host`` setting when set, else
    the host of a ``tcp://``/``ssh://`` ``DOCKER_HOST``, else ``127.0.0.1``."""
    if settings is not None and settings.published_host.strip():
        return settings.published_host.strip()
    env = os.environ if environ is None else environ
    return docker_host_address(env.get("DOCKER_HOST", "")) or LOOPBACK


def addresses(host: str) -> set[str]:
    """The IP addresses ``host`` stands for: itself when it is a literal, else what the resolver
    says (``/etc/hosts`` first); empty when it does not resolve."""
    name = host.strip().strip("[]")
    try:
        return {str(ipaddress.ip_address(name))}
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return set()
    return {str(ipaddress.ip_address(str(info[4][0]).split("%")[0])) for info in found}


def reachable(host: str, bound_ip: str) -> bool:
    """False when a port the engine bound to ``bound_ip`` surely cannot be reached at ``host``.

    Only a loopback binding can be judged from here: it answers at that very address of the
    engine's host and nowhere else, so ``host`` must stand for it (``localhost``, or a name that
    resolves to 127.0.0.1). Any other binding, or a name that does not resolve, is not judged.
    """
    try:
        bound = ipaddress.ip_address(bound_ip.strip().strip("[]"))
    except ValueError:
        return True
    if not bound.is_loopback:
        return True
    found = addresses(host)
    return not found or str(bound) in found


def url(port: int, path: str = "", *, host: str | None = None, bound_ip: str = "") -> str:
    """``http://HOST:PORT<path>`` for a published port; every URL to one is made here.

    ``host`` is where it is reached (``None`` or empty: :func:`published_host` from the
    environment); ``bound_ip`` the address the engine bound it to (``HostIp``; empty when not
    known). A port bound to loopback can only be reached at that address: when ``host`` stands
    for another, this raises :class:`UsageError` naming the fix instead of returning a dead URL.
    """
    where = (host or "").strip() or published_host()
    if not reachable(where, bound_ip):
        raise UsageError(
            f"port {port} is published on {bound_ip} of the engine's host, which cannot be "
            f"reached at {where} (the published_host setting, else DOCKER_HOST's host; "
            f"DOCKER_HOST={os.environ.get('DOCKER_HOST') or '(unset)'}): the gate binds "
            "published ports to loopback on the engine's host; run the gate on that host, or "
            "set published_host = \"127.0.0.1\" if the engine is on this machine "
            "(docs/engines.md)")
    shown = f"[{where}]" if ":" in where and not where.startswith("[") else where
    return f"http://{shown}:{port}{path}"


def listening(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when something accepts a TCP connection at ``host``:``port`` from this process."""
    try:
        with socket.create_connection((host.strip("[]"), port), timeout=timeout):
            return True
    except OSError:
        return False


_ENGINE_HOST: dict[str, str] = {}


def engine_hostname() -> str:
    """The name of the engine's host (``docker info``'s Name), asked once per DOCKER_HOST;
    "" when the engine does not say."""
    key = os.environ.get("DOCKER_HOST", "")
    if key not in _ENGINE_HOST:
        from imagegate.engine import client

        try:
            _ENGINE_HOST[key] = str(client(timeout=10).info().get("Name") or "")
        except Exception:
            _ENGINE_HOST[key] = ""
    return _ENGINE_HOST[key]


def published_url(port: int, path: str = "", *, host: str | None = None,
                  bound_ip: str = "") -> str:
    """:func:`url` for a port the engine has published *now*, judged from this process.

    A loopback binding addressed at this machine's loopback is reached only if this process
    shares the engine host's network namespace. It does not in a job container with the
    engine's socket mounted (GitHub's ``container:`` jobs, a runner mounting
    /var/run/docker.sock): there 127.0.0.1 is the job's own. That case is told by two facts,
    both needed: nothing accepts a TCP connection at the address here (the engine's proxy
    accepts as soon as the port is published), and this machine's name is not the engine
    host's (``docker info``), so an engine that publishes without a listening proxy on this
    very host is not misjudged. Then this is a :class:`UsageError` saying so, and the gate
    reaches the service from inside its network instead.
    """
    made = url(port, path, host=host, bound_ip=bound_ip)
    try:
        bound = ipaddress.ip_address(bound_ip.strip().strip("[]"))
    except ValueError:
        return made
    where = (host or "").strip() or published_host()
    if not bound.is_loopback or listening(where, port):
        return made
    engine_host, here = engine_hostname(), socket.gethostname()
    if not engine_host or engine_host == here:
        return made
    raise UsageError(
        f"port {port} is published on {bound_ip} of the engine's host ({engine_host}), and "
        f"nothing accepts connections at {where}:{port} here ({here}): this process is not "
        "on the engine host's network (a job container with the engine's socket mounted?); "
        "the gate reaches the service from inside its network instead (docs/engines.md)")
