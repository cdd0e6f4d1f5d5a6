"""HTTP from inside the network under test: a small container of the gate's, asked by exec.

A service that only ``expose``s its port behind a proxy, or any container of an engine whose
published ports this machine cannot reach (a CI job beside ``docker:dind``), is still reached
the way its neighbours reach it: by its compose name and container port, from a container on its
network. The probe container runs the tested image itself with only its Python (no curl or wget
needed; the image serves a Flask app, so it has an interpreter) idling. Requests go to one
long-lived ``exec`` of a stdlib ``http.client`` loop in it — a JSON line in on its stdin, the
answer as a JSON line out on its stdout — so a gate's dozen GETs cost one exec, not a dozen
(each is a Python started in the container and engine work). Should that stream break, each
request falls back to an ``exec`` of its own. The probe carries the session's labels and is
removed when its block is left, before the stack's network goes.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from imagegate.errors import ImagegateError

#: Interpreters tried in turn as the probe's entrypoint (PATH lookups first).
PYTHONS = ("python3", "python", "/usr/local/bin/python3", "/venv/bin/python",
           "/opt/venv/bin/python", "/usr/bin/python3")
#: The probe idles (bounded: the gate removes it long before) until a request is exec'd in it.
IDLE = "import time; time.sleep(86400)"
#: One GET of host, port, path, timeout: {"status", "headers", "body"} or {"error"}.
GET = """
import http.client, json, sys
def get(host, port, path, timeout):
    try:
        conn = http.client.HTTPConnection(host, int(port), timeout=float(timeout))
        conn.request("GET", path, headers={"User-Agent": "imagegate-probe"})
        resp = conn.getresponse()
        body = resp.read(65536).decode("utf-8", "replace")
        conn.close()
        return {"status": resp.status, "headers": dict(resp.getheaders()), "body": body}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
"""
#: One GET from argv (host, port, path, timeout), printed as a JSON line.
SCRIPT = GET + "print(json.dumps(get(*sys.argv[1:5])))\n"
#: The request loop: a JSON list [host, port, path, timeout] per stdin line, a JSON answer per
#: stdout line; it ends with its stdin.
LOOP = GET + """
while True:
    line = sys.stdin.readline()
    if not line:
        break
    sys.stdout.write(json.dumps(get(*json.loads(line))) + "\\n")
    sys.stdout.flush()
"""
#: Seconds a request may take beyond its own HTTP timeout before the loop counts as broken.
LOOP_SLACK = 10.0


class ProbeError(ImagegateError):
    """The probe got no HTTP answer (refused, timed out, name not resolved) or could not run."""


@dataclass(frozen=True)
class Answer:
    """One HTTP answer seen from inside the network (the parts of a ``requests.Response`` the
    checks read)."""

    status_code: int
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    text: str = ""

    def header(self, name: str) -> str:
        """A header's value, case-insensitively ("" when absent)."""
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), "")


@dataclass
class Probe:
    """A running probe container on ``network`` (see the module doc)."""

    container: Any
    interpreter: str
    network: str
    #: Forwards from this machine's loopback, one per (host, port) (:meth:`forward`).
    tunnels: dict[tuple[str, int], Any] = field(default_factory=dict, repr=False)
    #: How many execs the probe has cost (the loop's one, and one per request after it broke).
    execs: int = 0
    #: Why the request loop broke ("" while it serves, or before the first request).
    broken: str = ""
    _loop: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def get(self, host: str, port: int, path: str = "/", *, timeout: float = 5.0) -> Answer:
        """``GET http://host:port/path`` from inside the network; :class:`ProbeError` when
        nothing answers."""
        url = f"http://{host}:{port}{path}"
        data = self._ask_loop([host, port, path, timeout])
        if data is None:
            data = self._ask_exec(url, [host, str(port), path, f"{timeout:g}"])
        if "error" in data:
            raise ProbeError(f"GET {url}: {data['error']}")
        return Answer(int(data["status"]), url, dict(data.get("headers") or {}),
                      str(data.get("body") or ""))

    def _ask_loop(self, request: list[Any]) -> dict[str, Any] | None:
        """The answer to ``request`` from the request loop (started on first use); None when
        the loop cannot serve it (then it is closed for good, and requests exec one by one)."""
        with self._lock:
            if self.broken:
                return None
            try:
                if self._loop is None:
                    self._loop = _Loop(self.container, self.interpreter)
                    self.execs += 1
                return self._loop.ask(request, timeout=float(request[3]) + LOOP_SLACK)
            except Exception as exc:  # any failure of the stream: fall back, never fail a GET
                self.broken = f"{type(exc).__name__}: {str(exc)[:200]}"
                self._close_loop()
                return None

    def _ask_exec(self, url: str, argv: list[str]) -> dict[str, Any]:
        """The answer from one exec of :data:`SCRIPT` (:class:`ProbeError` when it did not run)."""
        try:
            self.execs += 1
            code, out = self.container.exec_run([self.interpreter, "-c", SCRIPT, *argv])
        except Exception as exc:  # the engine refused the exec: the probe itself is gone
            raise ProbeError(f"GET {url} from the probe: {exc}") from None
        text = out.decode("utf-8", "replace").strip() if isinstance(out, bytes) else str(out)
        try:
            data = json.loads(text.splitlines()[-1]) if text else {}
        except ValueError:
            data = {}
        if code != 0 or not data:
            raise ProbeError(f"GET {url} from the probe: exit {code} {text[-200:]!r}")
        return dict(data)

    def _close_loop(self) -> None:
        if self._loop is not None:
            self._loop.close()
            self._loop = None

    def close(self) -> None:
        """End the request loop and every :meth:`forward` (before the container goes)."""
        with self._lock:
            self._close_loop()
        self.close_tunnels()

    def status(self, host: str, port: int, path: str = "/") -> tuple[int | None, str]:
        """(status, what was seen) of one GET, for waits; status None when nothing answered."""
        try:
            answer = self.get(host, port, path, timeout=2.0)
        except ProbeError as exc:
            return None, exc.message
        return answer.status_code, f"GET {answer.url}: {answer.status_code}"

    def forward(self, host: str, port: int) -> Any:
        """A :class:`~imagegate.run.tunnel.Tunnel`: a port on 127.0.0.1 here that reaches
        ``host:port`` as this probe does (one per target, closed with the probe)."""
        from imagegate.run.tunnel import Tunnel

        if (host, port) not in self.tunnels:
            self.tunnels[(host, port)] = Tunnel(self.container, self.interpreter, host, port)
        return self.tunnels[(host, port)]

    def close_tunnels(self) -> None:
        """Close every :meth:`forward` (before the container goes)."""
        for tunnel in self.tunnels.values():
            with contextlib.suppress(Exception):
                tunnel.close()
        self.tunnels.clear()


@contextlib.contextmanager
def running_probe(cli: Any, image: str, network: str, labels: Mapping[str, str]
                  ) -> Iterator[Probe]:
    """A :class:`Probe` of ``image`` on ``network``; removed however the block is left.

    :class:`ProbeError` when no interpreter of :data:`PYTHONS` runs in the image.
    """
    import docker.errors

    tried = []
    for interpreter in PYTHONS:
        container = None
        try:
            container = cli.containers.create(
                image, [("-c"), IDLE], entrypoint=[interpreter], network=network,
                labels=dict(labels), detach=True, healthcheck={"test": ["NONE"]})
            container.start()
        except docker.errors.APIError as exc:
            tried.append(interpreter)
            if container is not None:
                with contextlib.suppress(Exception):
                    container.remove(force=True)
            if "not found" in str(exc) or "no such file" in str(exc).lower():
                continue
            raise ProbeError(f"cannot start a probe of {image[:19]} on {network}: "
                             f"{str(exc)[:200]}") from None
        probe = Probe(container, interpreter, network)
        try:
            yield probe
        finally:
            probe.close()
            with contextlib.suppress(Exception):
                container.remove(force=True, v=True)
        return
    raise ProbeError(f"no Python in {image[:19]} to probe from (tried {', '.join(tried)})")


class _Loop:
    """One exec of :data:`LOOP` in a probe container: a request written to its stdin, the
    answer read from its multiplexed stdout (8-byte frame headers, tty off)."""

    def __init__(self, container: Any, interpreter: str) -> None:
        from imagegate.run.tunnel import ExecStream

        self._stream = ExecStream.start(container, [interpreter, "-c", LOOP])
        self._sock = self._stream.sock
        self._buffer = b""
        self._out = b""
        self._err = b""

    def ask(self, request: list[Any], timeout: float) -> dict[str, Any]:
        """Send one request line; return the answer line, parsed (raises on a broken stream)."""
        from imagegate.run.tunnel import split_frames

        self._sock.settimeout(timeout)
        self._sock.sendall(json.dumps(request).encode() + b"\n")
        while b"\n" not in self._out:
            data = self._sock.recv(65536)
            if not data:
                said = self._err.decode("utf-8", "replace").strip()[-200:]
                raise ConnectionError(f"the request loop ended{': ' + said if said else ''}")
            frames, self._buffer = split_frames(self._buffer + data)
            for stream, payload in frames:
                if stream == 1:
                    self._out += payload
                else:
                    self._err = (self._err + payload)[-4096:]
        line, _, self._out = self._out.partition(b"\n")
        answer = json.loads(line)
        if not isinstance(answer, dict):
            raise ValueError(f"the request loop answered {line[:100]!r}")
        return answer

    def close(self) -> None:
        """Close the stream (the loop then ends with its stdin)."""
        self._stream.close()
