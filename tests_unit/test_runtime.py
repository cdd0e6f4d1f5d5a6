"""Waiting, container readiness and runtime facts without Docker: fakes and captured /proc text."""

from __future__ import annotations

from typing import Any

import docker.errors
import pytest

from imagegate.facts.runtime import Proc, Skip, Socket, _parse_top, parse_proc_net_tcp
from imagegate.proc import StopWaiting, WaitTimeout, wait_until
from imagegate.run import container as container_mod
from imagegate.run.container import ContainerFailed, ContainerNotReady, RunningContainer, running

# --- wait_until ----------------------------------------------------------------------------------


def test_wait_until_treats_exceptions_as_not_yet() -> None:
    """A check that raises is retried; its last error is what the timeout reports."""
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("refused")
        return "up"

    assert wait_until(flaky, timeout=5, interval=0.01) == "up"
    with pytest.raises(WaitTimeout, match=r"ConnectionError: refused"):
        wait_until(lambda: (_ for _ in ()).throw(ConnectionError("refused")), timeout=0.05,
                   interval=0.01)


def test_stop_waiting_ends_the_wait_at_once() -> None:
    """StopWaiting (and subclasses such as ContainerFailed) propagate on the first call."""
    calls = []

    def gone() -> bool:
        calls.append(1)
        raise ContainerFailed("container x exited 3: boom", status=3)

    with pytest.raises(ContainerFailed, match="exited 3") as info:
        wait_until(gone, timeout=30, interval=0.01)
    assert calls == [1]  # the first call ended the wait: no second poll
    assert info.value.status == 3 and isinstance(info.value, StopWaiting)


# --- RunningContainer.wait_ready on a fake container ----------------------------------------------


class FakeContainer:
    """Just enough of docker's Container: attrs that change over time, logs, reload."""

    def __init__(self, states: list[dict[str, Any]], *, healthcheck: bool = False,
                 logs: bytes = b"") -> None:
        self.states = states
        self.id = "f" * 64
        self.name = "fake"
        self._logs = logs
        self.attrs: dict[str, Any] = {}
        self.reloads = 0
        self.config = {"Healthcheck": {"Test": ["CMD", "true"]}} if healthcheck else {}
        self.reload()

    def reload(self) -> None:
        self.reloads += 1
        state = dict(self.states.pop(0) if len(self.states) > 1 else self.states[0])
        restarts = state.pop("RestartCount", 0)  # a top-level field in the real attrs
        self.attrs = {"State": state, "Config": self.config, "RestartCount": restarts}

    def logs(self, tail: int) -> bytes:
        return b"\n".join(self._logs.splitlines()[-tail:])


RUNNING = {"Status": "running", "Running": True, "ExitCode": 0}
EXITED = {"Status": "exited", "Running": False, "ExitCode": 3, "OOMKilled": False}


def test_wait_ready_fails_fast_when_the_container_exits() -> None:
    """Exit code and the last log line in the message, the log tail in the detail, no waiting."""
    fake = FakeContainer([RUNNING, EXITED], logs=b"starting\nTraceback ...\nValueError: bad\n")
    with pytest.raises(ContainerFailed) as info:
        RunningContainer(fake, "http://127.0.0.1:9").wait_ready("/", timeout=60)
    assert fake.reloads <= 3, f"{fake.reloads} looks at the container to see one exit"
    assert info.value.message == "container fake exited 3: ValueError: bad"
    assert "starting" in info.value.detail and info.value.status == 3


def test_wait_ready_fails_at_once_on_unhealthy() -> None:
    """With a healthcheck, "unhealthy" ends the wait with the last probe's output."""
    log = [{"Start": "2026-01-01T00:00:00", "ExitCode": 1, "Output": "connection refused"}]
    unhealthy = {**RUNNING, "Health": {"Status": "unhealthy", "Log": log}}
    fake = FakeContainer([{**RUNNING, "Health": {"Status": "starting"}}, unhealthy],
                         healthcheck=True)
    with pytest.raises(ContainerFailed, match="went unhealthy: probe exit 1: connection refused"):
        RunningContainer(fake, "").wait_ready(timeout=60)


def test_wait_ready_counts_a_restart_as_a_failure() -> None:
    """A restart policy hides an exit: a higher RestartCount is caught all the same."""
    fake = FakeContainer([RUNNING, RUNNING, {**RUNNING, "RestartCount": 1}], logs=b"oops\n")
    with pytest.raises(ContainerFailed, match="restarted after exit 0: oops"):
        RunningContainer(fake, "http://127.0.0.1:9").wait_ready(timeout=5)


def test_wait_ready_times_out_with_what_it_last_saw() -> None:
    """Healthy never comes: ContainerNotReady names the last status."""
    fake = FakeContainer([{**RUNNING, "Health": {"Status": "starting"}}], healthcheck=True)
    with pytest.raises(ContainerNotReady, match="last seen: health starting"):
        RunningContainer(fake, "").wait_ready(timeout=0.3)


def test_wait_ready_needs_something_to_probe() -> None:
    """No healthcheck and no published port: an immediate, clear error."""
    with pytest.raises(ContainerNotReady, match="nothing tells when it is ready"):
        RunningContainer(FakeContainer([RUNNING]), "").wait_ready(timeout=60)


# --- running(): a container the engine cannot start is removed -----------------------------------


class FakeContainers:
    """``cli.containers`` whose created container fails to start."""

    def __init__(self) -> None:
        self.removed: list[str] = []

    def create(self, image: str, command: Any = None, **kwargs: Any) -> Any:
        outer = self

        class Created:
            id = "c" * 64
            name = "created"

            def start(self) -> None:
                raise docker.errors.APIError("500", explanation=(
                    'OCI runtime create failed: container_linux.go:380: starting container '
                    'process caused: exec: "gunicorn": executable file not found in $PATH: '
                    "unknown"))

            def remove(self, **kw: Any) -> None:
                outer.removed.append(self.id)
        assert "detach" not in kwargs
        return Created()


def test_running_raises_the_engines_reason_and_removes_the_container() -> None:
    """exec failures at start are a ContainerFailed naming the executable; nothing is left."""
    containers = FakeContainers()
    cli = type("Cli", (), {"containers": containers})()
    with (pytest.raises(ContainerFailed) as info,
          running(cli, "imagegate/x:1", "igtest", env={}, port=8000, detach=True)):
        pytest.fail("must not get here")
    assert info.value.message == ('container of imagegate/x:1 could not start: exec: "gunicorn": '
                                  "executable file not found in $PATH")
    assert info.value.exit_code == 1
    assert containers.removed == ["c" * 64]


def test_engine_reason_keeps_the_useful_part() -> None:
    """The OCI runtime's wrapping is dropped; other errors are kept on one line."""
    assert container_mod.engine_reason(
        'OCI runtime exec failed: exec failed: unable to start container process: exec: '
        '"/etc/passwd": permission denied: unknown') == 'exec: "/etc/passwd": permission denied'
    assert container_mod.engine_reason("No such container:\n abc") == "No such container: abc"


# --- parsing what the kernel and the engine say ---------------------------------------------------

PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000 10001        0 1 1
   1: 0100007F:18EB 00000000:0000 0A 00000000:00000000 00:00000000 00000000 10001        0 2 1
   2: 0100007F:1F40 0100007F:9C40 01 00000000:00000000 00:00000000 00000000 10001        0 3 1
  sl  local_address                         remote_address                        st tx_queue
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 0:0 0 0
   1: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 0:0 0 0
"""


def test_proc_net_tcp_listening_sockets() -> None:
    """st 0A only; IPv4 and IPv6 addresses decoded (kernel byte order); loopback flagged."""
    sockets = parse_proc_net_tcp(PROC_NET_TCP)
    assert sockets == {Socket("0.0.0.0", 8000), Socket("127.0.0.1", 6379), Socket("::", 8080),
                       Socket("::1", 80)}
    assert {s.port for s in sockets if s.loopback_only} == {6379, 80}


def test_docker_top_rows() -> None:
    """``docker top -o pid,uid,args`` rows become Procs; a table without UID gives none."""
    top = {"Titles": ["PID", "UID", "COMMAND"],
           "Processes": [["7729", "10001", "/opt/venv/bin/python3 /opt/venv/bin/gunicorn x"],
                         ["7800", "0", "sleep 1"]]}
    assert _parse_top(top) == [Proc(7729, 10001, "/opt/venv/bin/python3 /opt/venv/bin/gunicorn x"),
                               Proc(7800, 0, "sleep 1")]
    assert _parse_top({"Titles": ["UID", "PID", "CMD"], "Processes": [["root", "1", "x"]]}) == []


def test_skip_is_neither_true_nor_false() -> None:
    """A Skip cannot pass for a result: truth-testing it is a TypeError naming the reason."""
    skip = Skip("no python3 in the image")
    assert str(skip) == "no python3 in the image"
    with pytest.raises(TypeError, match="no python3 in the image"):
        bool(skip)


def test_pip_zip_ships_bytecode_this_python_imports_without_compiling(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every module of the copied-in pip is there as source and as an unchecked-hash .pyc beside
    it; this Python runs pip from the zip; a second call reads the made zip from the state dir."""
    import io
    import subprocess
    import sys
    import tarfile
    import zipfile

    from imagegate.facts import runtime

    monkeypatch.setattr(runtime, "STATE_DIR", tmp_path)
    runtime.pip_zip.cache_clear()
    try:
        data = runtime.pip_zip()
        assert list((tmp_path / "pip").glob("*.tar")), "the zip was not kept"
        assert runtime.pip_zip() == data
    finally:
        runtime.pip_zip.cache_clear()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.getmembers()[0]
        zipped = tar.extractfile(member).read()  # type: ignore[union-attr]
    names = set(zipfile.ZipFile(io.BytesIO(zipped)).namelist())
    sources = {n for n in names if n.endswith(".py")}
    assert "pip/__main__.py" in sources and "pip/_internal/cli/main.py" in sources
    assert {s[:-3] + ".pyc" for s in sources} <= names
    pyc = zipfile.ZipFile(io.BytesIO(zipped)).read("pip/_internal/cli/main.pyc")
    assert int.from_bytes(pyc[4:8], "little") == 0b01, "expected an unchecked-hash pyc"
    (tmp_path / "pip.zip").write_bytes(zipped)
    out = subprocess.run([sys.executable, "-I", str(tmp_path / "pip.zip" / "pip"), "--version"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("pip "), out.stdout + out.stderr
