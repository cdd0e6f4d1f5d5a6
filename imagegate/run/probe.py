"""HTTP from inside the network under test: a small container of the gate's, asked by exec.

A service that only ``expose``s its port behind a proxy, or any container of an engine whose
published ports this machine cannot reach (a CI job beside ``docker:dind``), is still reached
the way its neighbours reach it: by its compose name and container port, from a container on its
network. The probe container runs the tested image itself with only its Python (no curl or wget
needed; the image serves a Flask app, so it has an interpreter) idling; every request is one
``exec`` of a stdlib ``http.client`` script that prints the answer as JSON. The probe carries the
session's labels and is removed when its block is left, before the stack's network goes.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from imagegate.errors import ImagegateError

#: Interpreters tried in turn as the probe's entrypoint (PATH lookups first).
PYTHONS = ("python3", "python", "/usr/local/bin/python3", "/venv/bin/python",
           "/opt/venv/bin/python", "/usr/bin/python3")
#: The probe idles (bounded: the gate removes it long before) until a request is exec'd in it.
IDLE = "import time; time.sleep(86400)"
#: One GET: argv host, port, path, timeout; prints {"status", "headers", "body"} or {"error"}.
SCRIPT = """
import http.client, json, sys
host, port, path, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
try:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    conn.request("GET", path, headers={"User-Agent": "imagegate-probe"})
    resp = conn.getresponse()
    body = resp.read(65536).decode("utf-8", "replace")
    print(json.dumps({"status": resp.status, "headers": dict(resp.getheaders()), "body": body}))
except Exception as exc:
    print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
"""


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

    def get(self, host: str, port: int, path: str = "/", *, timeout: float = 5.0) -> Answer:
        """``GET http://host:port/path`` from inside the network; :class:`ProbeError` when
        nothing answers."""
        url = f"http://{host}:{port}{path}"
        try:
            code, out = self.container.exec_run(
                [self.interpreter, "-c", SCRIPT, host, str(port), path, f"{timeout:g}"])
        except Exception as exc:  # the engine refused the exec: the probe itself is gone
            raise ProbeError(f"GET {url} from the probe: {exc}") from None
        text = out.decode("utf-8", "replace").strip() if isinstance(out, bytes) else str(out)
        try:
            data = json.loads(text.splitlines()[-1]) if text else {}
        except ValueError:
            data = {}
        if code != 0 or not data:
            raise ProbeError(f"GET {url} from the probe: exit {code} {text[-200:]!r}")
        if "error" in data:
            raise ProbeError(f"GET {url}: {data['error']}")
        return Answer(int(data["status"]), url, dict(data.get("headers") or {}),
                      str(data.get("body") or ""))

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
            probe.close_tunnels()
            with contextlib.suppress(Exception):
                container.remove(force=True, v=True)
        return
    raise ProbeError(f"no Python in {image[:19]} to probe from (tried {', '.join(tried)})")
