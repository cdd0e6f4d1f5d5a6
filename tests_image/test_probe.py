"""The gate's probe: HTTP from inside a network, through one long-lived exec, with a fallback.

A server container and a probe on a labelled network of their own (removed after): the probe's
requests are answered by one exec of its request loop, its errors are the target's, and a
broken loop falls back to one exec per request without failing a GET.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from imagegate.engine import session_labels
from imagegate.run.probe import ProbeError, running_probe

SERVER = ("import http.server as h\n"
          "class H(h.BaseHTTPRequestHandler):\n"
          "    def do_GET(self):\n"
          "        body = self.path.encode()\n"
          "        self.send_response(404 if self.path == '/missing' else 200)\n"
          "        self.send_header('X-Seen', self.path)\n"
          "        self.end_headers()\n"
          "        self.wfile.write(body)\n"
          "h.HTTPServer(('', 8080), H).serve_forever()\n")


@pytest.fixture
def server_and_probe(docker_client: Any, imagegate_session: str,
                     python_slim_image: str) -> Iterator[tuple[Any, str]]:
    """(a probe, the server's alias) on a labelled network of their own."""
    labels = session_labels(imagegate_session)
    network = docker_client.networks.create(f"{imagegate_session}-probe-{uuid.uuid4().hex[:6]}",
                                            labels=labels)
    server = None
    try:
        server = docker_client.containers.run(
            python_slim_image, ["python3", "-c", SERVER], detach=True, network=network.name,
            labels=labels)
        with running_probe(docker_client, python_slim_image, network.name, labels) as probe:
            yield probe, server.id[:12]
    finally:
        if server is not None:
            with contextlib.suppress(Exception):
                server.remove(force=True)
        network.remove()


def test_requests_share_one_exec(server_and_probe: tuple[Any, str]) -> None:
    """A dozen GETs, their answers each its own (status, header, body), cost one exec; a
    refused port is a ProbeError naming the refusal, and the loop serves on after it."""
    from imagegate.proc import wait_until

    probe, server = server_and_probe
    wait_until(lambda: probe.status(server, 8080, "/")[0] == 200, timeout=30,
               what="the test server answering through the probe")
    for n in range(12):
        answer = probe.get(server, 8080, f"/page/{n}")
        assert (answer.status_code, answer.text, answer.header("x-seen")) == \
            (200, f"/page/{n}", f"/page/{n}")
    assert probe.get(server, 8080, "/missing").status_code == 404
    with pytest.raises(ProbeError, match="ConnectionRefusedError"):
        probe.get(server, 8081, "/")
    assert probe.get(server, 8080, "/after").text == "/after"
    assert (probe.execs, probe.broken) == (1, ""), "each GET paid an exec of its own"


def test_a_broken_loop_falls_back_to_an_exec_per_request(
        server_and_probe: tuple[Any, str]) -> None:
    """The loop's stream cut under it: the next GET still answers (by an exec of its own), the
    loop is not asked again, and the reason it broke is kept."""
    from imagegate.proc import wait_until

    probe, server = server_and_probe
    wait_until(lambda: probe.status(server, 8080, "/")[0] == 200, timeout=30,
               what="the test server answering through the probe")
    probe._loop.close()  # the stream is gone, as when an engine connection drops
    assert probe.get(server, 8080, "/one").text == "/one"
    assert probe.broken, "the cut went unnoticed"
    assert probe.get(server, 8080, "/two").text == "/two"
    assert probe.execs == 3  # the loop's, then one per request
