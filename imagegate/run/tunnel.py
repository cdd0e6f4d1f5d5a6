"""A port on this machine's loopback that reaches a container port through the gate's probe.

A remote engine (GitLab's ``docker:dind``, any ``tcp://`` engine) publishes ports on *its* host's
loopback, which this machine cannot reach; the generic checks then ask through the probe
(:mod:`imagegate.run.probe`). A project's own stack tests ask with ``requests.get(stack_url)``:
for them the gate opens a listening socket on 127.0.0.1 here, and carries each connection to
``service:port`` inside the project's network as one ``docker exec`` of a tiny relay in the probe
container (the relay's stdin and stdout are the connection, over the engine's API: the one path
to the engine that every setup has). The same idea as ``kubectl port-forward``.

Each forwarded connection costs one exec (tens of milliseconds); nothing is published on the
engine, and nothing listens anywhere but 127.0.0.1 of this machine.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
from dataclasses import dataclass
from typing import Any

#: The relay: connect to argv host:port, copy stdin → socket and socket → stdout until either
#: side ends (then exit at once: the other direction has nobody left to talk to).
RELAY = """
import os, socket, sys, threading
try:
    sock = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
except OSError as exc:
    sys.stderr.write(f"{type(exc).__name__}: {exc}\\n"); sys.stderr.flush(); os._exit(1)
sock.settimeout(None)
def upstream():
    while True:
        data = os.read(0, 65536)
        if not data:
            os._exit(0)
        sock.sendall(data)
threading.Thread(target=upstream, daemon=True).start()
out = sys.stdout.buffer
while True:
    data = sock.recv(65536)
    if not data:
        os._exit(0)
    out.write(data)
    out.flush()
"""
#: Seconds the relay waits for the service to accept a connection.
CONNECT_TIMEOUT = 10.0
#: Seconds between looks at the stop flag while no connection comes in.
ACCEPT_POLL = 0.5


class Tunnel:
    """``127.0.0.1:<ephemeral>`` here → ``host:port`` seen from ``container`` (a running probe
    whose ``interpreter`` runs :data:`RELAY`). :meth:`close` stops listening and cuts every
    connection; a connection the relay cannot make is closed without an answer (the client
    sees the connection dropped, as with a refused port)."""

    def __init__(self, container: Any, interpreter: str, host: str, port: int) -> None:
        self.container, self.interpreter, self.host, self.port = container, interpreter, host, port
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(64)
        self._server.settimeout(ACCEPT_POLL)
        self.local_port: int = self._server.getsockname()[1]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._open: list[Any] = []
        #: The last thing the relay said on stderr (a refused or unresolved target), for errors.
        self.last_error = ""
        self._threads = [threading.Thread(target=self._accept, daemon=True,
                                          name=f"tunnel-{host}:{port}")]
        self._threads[0].start()

    def url(self, path: str = "") -> str:
        """``http://127.0.0.1:<local port><path>``."""
        return f"http://127.0.0.1:{self.local_port}{path}"

    def close(self) -> None:
        """Stop accepting, cut every open connection, join the threads."""
        self._stop.set()
        self._threads[0].join(timeout=10)
        self._server.close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.close()
        for thread in self._threads[1:]:
            thread.join(timeout=10)

    def _accept(self) -> None:
        """Accept connections until closed; each is carried by a thread of its own."""
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._carry, args=(client,), daemon=True)
            with self._lock:
                self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()

    def _carry(self, client: socket.socket) -> None:
        """Copy one connection both ways until either side ends; the exec stream carries the
        relay's stdout and stderr multiplexed (8-byte frame headers, tty off)."""
        try:
            stream = ExecStream.start(self.container, [
                self.interpreter, "-c", RELAY, self.host, str(self.port), f"{CONNECT_TIMEOUT:g}"])
        except Exception as exc:  # the probe is gone or the engine refused the exec
            self.last_error = f"exec in the probe: {str(exc)[:200]}"
            client.close()
            return
        remote = stream.sock
        with self._lock:
            self._open += [client, remote]
        buffer = b""
        try:
            with selectors.DefaultSelector() as sel:
                sel.register(client, selectors.EVENT_READ, "client")
                sel.register(remote, selectors.EVENT_READ, "remote")
                while not self._stop.is_set():
                    # a TLS socket may hold decrypted bytes select cannot see
                    pending = getattr(remote, "pending", lambda: 0)()
                    ready = ["remote"] if pending else [k.data for k, _ in sel.select(ACCEPT_POLL)]
                    if "client" in ready:
                        data = client.recv(65536)
                        if not data:
                            return
                        remote.sendall(data)
                    if "remote" in ready:
                        data = remote.recv(65536)
                        if not data:
                            return
                        buffer += data
                        buffer = self._frames(buffer, client)
        except OSError:
            return
        finally:
            with self._lock:
                self._open = [s for s in self._open if s is not client and s is not remote]
            with contextlib.suppress(Exception):
                client.close()
            stream.close()

    def _frames(self, buffer: bytes, client: socket.socket) -> bytes:
        """Send every complete stdout frame in ``buffer`` to ``client``, keep stderr as
        :attr:`last_error`; return the incomplete rest."""
        frames, rest = split_frames(buffer)
        for stream, payload in frames:
            if stream == 1:
                client.sendall(payload)
            else:
                self.last_error = payload.decode("utf-8", "replace").strip()[-300:]
        return rest


@dataclass(frozen=True)
class ExecStream:
    """A command exec'd in a container with its stdin open (tty off), over the engine's API:
    write its stdin and read its multiplexed output on :attr:`sock` (a SocketIO's socket on
    unix and tcp, the TLS socket itself on TLS). :meth:`close` closes both the hijacked stream
    and the socket (the SocketIO alone leaves the engine's socket open)."""

    id: str
    raw: Any
    sock: Any

    @classmethod
    def start(cls, container: Any, argv: list[str]) -> ExecStream:
        """Create and start ``argv`` in ``container``, its stdin attached."""
        api = container.client.api
        exec_id = api.exec_create(container.id, argv, stdin=True, stdout=True, stderr=True,
                                  tty=False)["Id"]
        raw = api.exec_start(exec_id, socket=True)
        return cls(exec_id, raw, getattr(raw, "_sock", raw))

    def close(self) -> None:
        """Close the stream and its socket (each tolerates being closed already)."""
        for one in (self.raw, self.sock):
            with contextlib.suppress(Exception):
                one.close()


def split_frames(buffer: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """The complete frames of a multiplexed exec stream (tty off: an 8-byte header, stream
    number first, payload size last, big-endian) at the start of ``buffer``, and the rest."""
    frames = []
    while len(buffer) >= 8:
        stream, size = buffer[0], struct.unpack(">I", buffer[4:8])[0]
        if len(buffer) < 8 + size:
            break
        frames.append((stream, buffer[8:8 + size]))
        buffer = buffer[8 + size:]
    return frames, buffer
