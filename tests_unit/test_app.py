"""Route contracts of the app, against a fake Redis (and one tiny real RESP server)."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Callable, Iterator

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from app.config import DEFAULT_GREETING
from app.redis_client import get_redis, make_client
from conftest import PROD_SECRET, FakeRedis


def test_index_is_the_plain_text_greeting(client: FlaskClient) -> None:
    """``/`` answers the default greeting as text/plain."""
    response = client.get("/")
    assert (response.status_code, response.text) == (200, DEFAULT_GREETING)
    assert response.content_type == "text/plain; charset=utf-8"


def test_greeting_from_env(make_app: Callable[..., Flask]) -> None:
    """APP_GREETING replaces the greeting and /info says where it came from."""
    client = make_app(APP_ENV="testing", APP_GREETING="Hi there").test_client()
    assert client.get("/").text == "Hi there"
    assert client.get("/info").json["greeting_source"] == "env"


def test_healthz_and_readyz_when_redis_is_up(client: FlaskClient) -> None:
    """Both probes answer 200 JSON."""
    assert (client.get("/healthz").status_code, client.get("/healthz").json) == (
        200,
        {"status": "ok"},
    )
    assert (client.get("/readyz").status_code, client.get("/readyz").json) == (
        200,
        {"status": "ready"},
    )


def test_readyz_503_while_healthz_stays_200(client: FlaskClient, fake_redis: FakeRedis) -> None:
    """Redis down: readiness fails with a reason, liveness does not."""
    fake_redis.down = True
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json["status"] == "unavailable"
    assert (
        ready.json["reason"].startswith("redis: ") and "Connection refused" in ready.json["reason"]
    )
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize(("method", "expected"), [("get", 1), ("post", 1)])
def test_hits_increments(client: FlaskClient, method: str, expected: int) -> None:
    """GET and POST /hits both count, one per request."""
    first = getattr(client, method)("/hits")
    assert (first.status_code, first.json) == (200, {"hits": expected})
    assert getattr(client, method)("/hits").json == {"hits": expected + 1}


def test_hits_503_when_redis_is_down(client: FlaskClient, fake_redis: FakeRedis) -> None:
    """/hits reports Redis being down as a JSON 503, then recovers."""
    fake_redis.down = True
    response = client.get("/hits")
    assert response.status_code == 503
    assert response.json["status"] == 503 and response.json["reason"].startswith("redis: ")
    fake_redis.down = False
    assert client.get("/hits").json == {"hits": 1}


@pytest.mark.parametrize(
    ("env", "debug"), [("development", True), ("testing", False), ("production", False)]
)
def test_info(
    make_app: Callable[..., Flask], clean_env: pytest.MonkeyPatch, env: str, debug: bool
) -> None:
    """/info reports env, debug and version, and never the secret key."""
    clean_env.setenv("APP_VERSION", "1.2.3")
    app = make_app(APP_ENV=env, SECRET_KEY=PROD_SECRET)
    response = app.test_client().get("/info")
    assert response.json == {
        "env": env,
        "debug": debug,
        "greeting_source": "default",
        "version": "1.2.3",
    }
    assert PROD_SECRET not in response.text and app.debug is debug


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [("get", "/nope", 404, "not found"), ("delete", "/healthz", 405, "method not allowed")],
)
def test_http_errors_are_json(
    client: FlaskClient, method: str, path: str, status: int, error: str
) -> None:
    """404 and 405 answer JSON; 405 keeps its Allow header."""
    response = getattr(client, method)(path)
    assert (response.status_code, response.json) == (status, {"error": error, "status": status})
    if status == 405:
        assert "GET" in response.headers["Allow"]


@pytest.mark.parametrize("env", ["production", "testing"])
def test_500_leaks_nothing(
    make_app: Callable[..., Flask], env: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An unhandled error answers a generic JSON 500 and logs the traceback instead."""
    app = make_app(APP_ENV=env, SECRET_KEY=PROD_SECRET, APP_FAULT_ROUTES="yes")
    response = app.test_client().get("/_fault/error")
    assert (response.status_code, response.json) == (
        500,
        {"error": "internal server error", "status": 500},
    )
    for leak in ("Traceback", "RuntimeError", "secret detail", "Werkzeug", "debugger"):
        assert leak not in response.text
    assert "RuntimeError" in caplog.text and "Traceback" in caplog.text


def test_fault_routes_are_off_by_default(make_app: Callable[..., Flask]) -> None:
    """Without APP_FAULT_ROUTES the /_fault routes do not exist."""
    client = make_app(APP_ENV="testing").test_client()
    assert client.get("/_fault/error").status_code == 404
    assert client.get("/_fault/slow?seconds=0").status_code == 404


@pytest.mark.parametrize(
    ("query", "status"), [("seconds=0", 200), ("seconds=0.01", 200), ("seconds=31", 400),
                          ("seconds=-1", 400), ("seconds=abc", 400)],
)  # fmt: skip
def test_fault_slow(client: FlaskClient, query: str, status: int) -> None:
    """/_fault/slow sleeps a bounded time, and refuses anything else with a JSON 400."""
    response = client.get(f"/_fault/slow?{query}")
    assert (response.status_code, response.json["status"]) == (
        status,
        "ok" if status == 200 else 400,
    )


@pytest.mark.parametrize(
    ("down", "exit_code", "output"), [(False, 0, "redis: ok"), (True, 1, "redis: Error 111")]
)
def test_redis_ping_command(
    runner: FlaskCliRunner, fake_redis: FakeRedis, down: bool, exit_code: int, output: str
) -> None:
    """``flask redis-ping`` reports Redis' state in its output and exit code."""
    fake_redis.down = down
    result = runner.invoke(args=["redis-ping"])
    assert (result.exit_code, output in result.output) == (exit_code, True)


def test_redis_client_is_created_once_with_short_timeouts(make_app: Callable[..., Flask]) -> None:
    """Without an injected client, one lazily built real client serves every request."""
    app = make_app(APP_ENV="testing", REDIS_CLIENT=None, REDIS_URL="redis://127.0.0.1:1/0")
    assert app.extensions["redis"] is None
    with app.app_context():
        client = get_redis()
        assert get_redis() is client and app.extensions["redis"] is client
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["socket_connect_timeout"], kwargs["socket_timeout"]) == (1, 1)
    assert app.test_client().get("/readyz").status_code == 503


class _RespHandler(socketserver.StreamRequestHandler):
    """Speak just enough RESP3 for redis-py: HELLO, PING, INCR, and +OK to anything else."""

    def handle(self) -> None:
        """Answer commands until the client (or the test) closes the connection."""
        self.server.conns.add(self.connection)  # type: ignore[attr-defined]
        while header := self.rfile.readline():
            argv = [self.rfile.readline() and self.rfile.readline().strip()
                    for _ in range(int(header[1:]))]  # fmt: skip
            if argv[0].upper() == b"HELLO":
                self.wfile.write(b"%1\r\n$5\r\nproto\r\n:3\r\n")
            elif argv[0].upper() == b"PING":
                self.wfile.write(b"+PONG\r\n")
            elif argv[0].upper().startswith(b"INCR"):
                self.server.hits += 1  # type: ignore[attr-defined]
                self.wfile.write(b":%d\r\n" % self.server.hits)  # type: ignore[attr-defined]
            else:
                self.wfile.write(b"+OK\r\n")


def _serve(port: int) -> socketserver.ThreadingTCPServer:
    """Start a RESP server on 127.0.0.1:*port* in a daemon thread."""
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    server = socketserver.ThreadingTCPServer(("127.0.0.1", port), _RespHandler)
    server.daemon_threads, server.conns, server.hits = True, set(), 0  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    return server


def _kill(server: socketserver.ThreadingTCPServer) -> None:
    """Stop like a restarted Redis: listener and every open connection gone."""
    server.shutdown()
    server.server_close()
    for conn in server.conns:  # type: ignore[attr-defined]
        conn.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def resp_port() -> Iterator[int]:
    """A free 127.0.0.1 port for the RESP server."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    yield port


def test_redis_client_survives_a_redis_restart(resp_port: int) -> None:
    """After a restart the pooled connection is stale; the client reconnects by itself."""
    client = make_client(f"redis://127.0.0.1:{resp_port}/0")
    server = _serve(resp_port)
    assert client.incr("hits") == 1
    _kill(server)
    with pytest.raises(redis.exceptions.ConnectionError):
        client.ping()
    server = _serve(resp_port)
    assert client.incr("hits") == 1
    _kill(server)
    server = _serve(resp_port)
    try:
        assert client.ping() is True  # stale connection, no error in between
    finally:
        _kill(server)
