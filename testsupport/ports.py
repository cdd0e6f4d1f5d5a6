"""Ports a test owns from start to end: a server that binds port 0 and says which it got, and a
port that refuses connections for as long as the test holds it. A port found free, released and
bound again later may meanwhile be another worker's (two xdist workers, a registry each)."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator

from imagegate.proc import wait_until

LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's ``st`` column


def listening_port(pid: int, timeout: float = 20) -> int:
    """The TCP port process ``pid`` listens on (it was told to bind 127.0.0.1:0), once it does:
    its socket inodes matched against the listening sockets of its network namespace."""

    def port() -> int | None:
        fds = f"/proc/{pid}/fd"
        links = (os.readlink(f"{fds}/{fd}") for fd in os.listdir(fds))
        inodes = {link[len("socket:["):-1] for link in links if link.startswith("socket:[")}
        with open(f"/proc/{pid}/net/tcp") as table:
            for row in table.read().splitlines()[1:]:
                cols = row.split()
                if cols[3] == LISTEN and cols[9] in inodes:
                    return int(cols[1].rsplit(":", 1)[1], 16)
        return None

    return int(wait_until(port, timeout=timeout, what=f"process {pid} listening"))


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A 127.0.0.1 port that refuses every connection while held: bound, never listening, so no
    other process can take it meanwhile."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])
