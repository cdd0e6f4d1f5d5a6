"""``app/gunicorn.conf.py``: env-to-setting mapping, config errors, a real start and stop."""

from __future__ import annotations

import json
import os
import runpy
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.config import ENV_VARS
from conftest import PROD_SECRET

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "app" / "gunicorn.conf.py"
GUNICORN = Path(sys.executable).parent / "gunicorn"
CONF_VARS = ("PORT", "WEB_CONCURRENCY", "GUNICORN_THREADS", "GUNICORN_TIMEOUT",
             "GUNICORN_GRACEFUL_TIMEOUT", "GUNICORN_ACCESS_LOG", "FORWARDED_ALLOW_IPS",
             "GUNICORN_CMD_ARGS")  # fmt: skip


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll *check* until it returns something truthy; fail with the last error seen."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            if result := check():
                return result
        except OSError as exc:
            last = exc
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last error: {last!r}")


@pytest.fixture
def conf_env(clean_env: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A clean environment for the conf file: production with a good secret."""
    for name in CONF_VARS:
        clean_env.delenv(name, raising=False)
    clean_env.setenv("APP_ENV", "production")
    clean_env.setenv("SECRET_KEY", PROD_SECRET)
    return clean_env


def gunicorn_env(**extra: str) -> dict[str, str]:
    """The current environment without anything the app or the conf reads, plus *extra*."""
    env = {k: v for k, v in os.environ.items() if k not in (*ENV_VARS, *CONF_VARS)}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def test_defaults(conf_env: pytest.MonkeyPatch) -> None:
    """With nothing set, the documented defaults apply."""
    conf = runpy.run_path(str(CONF))
    assert {k: conf[k] for k in ("bind", "workers", "threads", "worker_class", "timeout")} == {
        "bind": ["0.0.0.0:8000"], "workers": 2, "threads": 4, "worker_class": "gthread",
        "timeout": 30,
    }  # fmt: skip
    assert (conf["graceful_timeout"], conf["keepalive"], conf["loglevel"]) == (8, 5, "info")
    assert (conf["accesslog"], conf["errorlog"], conf["preload_app"]) == (None, "-", True)
    assert conf["forwarded_allow_ips"] == "127.0.0.1"
    assert conf["control_socket_disable"] is True
    assert conf["worker_tmp_dir"] == ("/dev/shm" if os.path.isdir("/dev/shm") else None)


@pytest.mark.parametrize(
    ("name", "value", "setting", "expected"),
    [
        ("PORT", "8080", "bind", ["0.0.0.0:8080"]),
        ("WEB_CONCURRENCY", "5", "workers", 5),
        ("GUNICORN_THREADS", "16", "threads", 16),
        ("GUNICORN_TIMEOUT", "60", "timeout", 60),
        ("GUNICORN_GRACEFUL_TIMEOUT", "3", "graceful_timeout", 3),
        ("LOG_LEVEL", "debug", "loglevel", "debug"),
        ("GUNICORN_ACCESS_LOG", "1", "accesslog", "-"),
        ("GUNICORN_ACCESS_LOG", "on", "accesslog", "-"),
        ("GUNICORN_ACCESS_LOG", "0", "accesslog", None),
        ("GUNICORN_ACCESS_LOG", "False", "accesslog", None),
        ("FORWARDED_ALLOW_IPS", "10.0.0.1,10.0.0.2", "forwarded_allow_ips", "10.0.0.1,10.0.0.2"),
    ],
)
def test_env_mapping(
    conf_env: pytest.MonkeyPatch, name: str, value: str, setting: str, expected: Any
) -> None:
    """Each variable lands in its gunicorn setting."""
    conf_env.setenv(name, value)
    assert runpy.run_path(str(CONF))[setting] == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [("PORT", "0"), ("PORT", "65536"), ("PORT", "http"), ("WEB_CONCURRENCY", "0"),
     ("GUNICORN_THREADS", "many"), ("GUNICORN_ACCESS_LOG", "maybe"), ("LOG_LEVEL", "loud"),
     ("SECRET_KEY", "changeme")],
)  # fmt: skip
def test_bad_value_exits_78_with_one_line(
    conf_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str, value: str
) -> None:
    """A bad variable stops the conf with SystemExit(78) and one line naming it."""
    conf_env.setenv(name, value)
    with pytest.raises(SystemExit) as excinfo:
        runpy.run_path(str(CONF))
    assert excinfo.value.code == 78
    err = capsys.readouterr().err
    assert err.startswith(f"imagegate-app: configuration error: {name} ")
    assert err.count("\n") == 1


@pytest.mark.slow  # a real gunicorn process (1-4 s): make test, not the gate
@pytest.mark.parametrize(
    ("extra", "named"),
    [({"SECRET_KEY": ""}, "SECRET_KEY"), ({"PORT": "99999"}, "PORT"),
     ({"REDIS_URL": "http://cache:6379"}, "REDIS_URL")],
)  # fmt: skip
def test_real_gunicorn_refuses_bad_config(extra: dict[str, str], named: str) -> None:
    """The real master exits 78 with exactly one stderr line and no traceback."""
    env = gunicorn_env(**{"APP_ENV": "production", "SECRET_KEY": PROD_SECRET, **extra})
    argv = [str(GUNICORN), "-c", str(CONF), "app.wsgi:app"]
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 78, proc.stderr
    assert len(lines) == 1 and named in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A listening socket on an ephemeral 127.0.0.1 port, held open for the whole test and
    handed to gunicorn (``--bind fd://N``): no window in which another process can take the
    port between choosing it and gunicorn using it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock


@pytest.fixture
def server(listener: socket.socket) -> Iterator[tuple[subprocess.Popen[str], list[str], str]]:
    """A real gunicorn (1 worker, fault routes on) serving on ``listener``; yields (process,
    log lines, base URL). The log reader thread is joined before the fixture ends."""
    fd = listener.fileno()
    env = gunicorn_env(APP_ENV="production", SECRET_KEY=PROD_SECRET, APP_FAULT_ROUTES="1",
                       WEB_CONCURRENCY="1")  # fmt: skip
    proc = subprocess.Popen([str(GUNICORN), "-c", str(CONF), "--bind", f"fd://{fd}"], cwd=ROOT,
                            env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            pass_fds=(fd,))  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
    reader.start()
    try:
        yield proc, lines, f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        reader.join(timeout=10)


def get(url: str, timeout: float = 5) -> tuple[int, dict[str, Any]]:
    """GET *url* and return (status, JSON body)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, json.loads(response.read())


@pytest.mark.slow  # a real gunicorn process (1-4 s): make test, not the gate
def test_serves_and_sigterm_finishes_in_flight_request(
    server: tuple[subprocess.Popen[str], list[str], str],
) -> None:
    """/healthz answers; on SIGTERM a running request completes and the master exits 0."""
    proc, lines, base = server
    assert wait_until(lambda: get(f"{base}/healthz", 1), 20, "/healthz") == (200, {"status": "ok"})
    slow: list[tuple[int, dict[str, Any]]] = []
    client = threading.Thread(target=lambda: slow.append(get(f"{base}/_fault/slow?seconds=1")),
                              daemon=True)  # fmt: skip
    client.start()
    wait_until(lambda: any("slow request sleeping" in line for line in lines), 10, "slow request")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0, "".join(lines)
    client.join(timeout=10)  # the response may still be in flight when the master has exited
    assert not client.is_alive(), "the slow request never returned"
    assert slow == [(200, {"status": "ok", "slept": 1.0})]
    assert not any("Traceback" in line for line in lines), "".join(lines)


@pytest.mark.slow  # a real gunicorn process (1-4 s): make test, not the gate
def test_serves_on_the_socket_it_was_given(
    server: tuple[subprocess.Popen[str], list[str], str], listener: socket.socket,
) -> None:
    """gunicorn serves on the inherited socket (fd://), not on a port of its own: the port the
    test holds is the one that answers."""
    _proc, lines, base = server
    assert wait_until(lambda: get(f"{base}/healthz", 1), 20, "/healthz")[0] == 200
    port = listener.getsockname()[1]
    assert base == f"http://127.0.0.1:{port}"
    assert any(f"Listening at: http://127.0.0.1:{port} " in line for line in lines), "".join(lines)
    assert not any("0.0.0.0" in line for line in lines), "".join(lines)
