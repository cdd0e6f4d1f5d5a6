"""Runtime facts and readiness on real containers of tiny images, one of them without a shell.

Each image is built here from a few-line Dockerfile FROM the local base (no pull, no network)
and removed at the end; each container is labelled with the session and removed however the
test ends. The timings these tests measure are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from imagegate.config.settings import Settings
from imagegate.engine import SESSION_LABEL
from imagegate.facts import runtime
from imagegate.facts.policy import CHECKS, ImageFacts
from imagegate.facts.runtime import Skip
from imagegate.proc import wait_until
from imagegate.run.container import ContainerFailed, RunningContainer, engine_time, running

# The harness's own machinery, tested for real: `make test` runs it; the gate's fast
# stages (gate_select = "not slow") leave it out.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("container_runtime")]

BASE = "imagegate/python:3.11-bookworm"
PORT = 8000
SERVE = "/opt/venv/bin/serve"

HTTP = f"""\
FROM {BASE}
RUN set -eux; mkdir -p /srv/data; chown 10001:10001 /srv/data; echo hi > /srv/index.html
WORKDIR /srv
USER 10001:10001
EXPOSE {PORT}
CMD ["python3", "-m", "http.server", "{PORT}"]
"""
HEALTHY = HTTP + """\
HEALTHCHECK --interval=1s --timeout=2s --start-period=10s --retries=3 \\
    CMD ["python3", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/', timeout=1)"]
"""
# The base's rootfs without busybox (so no /bin/sh, cat, ps, ss, id or getent), a venv and a
# server script whose #! names the venv's python, as pip writes gunicorn's.
SHELL_LESS = f"""\
FROM {BASE} AS rootfs
ENV DROP_BUSYBOX="import os; [os.remove(p) for d, _, fs in os.walk('/rootfs') \\
    for p in (os.path.join(d, f) for f in fs) \\
    if os.path.islink(p) and os.readlink(p).endswith('busybox')]"
RUN set -eux; \\
    python3 -m venv --without-pip /opt/venv; \\
    printf '%s\\n' '#!/opt/venv/bin/python3' 'import runpy, sys' \\
        'sys.argv = ["http.server", "{PORT}"]' \\
        'runpy.run_module("http.server", run_name="__main__")' > {SERVE}; \\
    chmod 755 {SERVE}; \\
    mkdir -p /rootfs/tmp /rootfs/srv/data; chmod 1777 /rootfs/tmp; \\
    chown 10001:10001 /rootfs/srv/data; echo hi > /rootfs/srv/index.html; \\
    cp -a /etc /usr /lib /lib64 /var /root /opt /rootfs/; \\
    python3 -c "$DROP_BUSYBOX"

FROM scratch
COPY --from=rootfs /rootfs/ /
ENV PATH=/opt/venv/bin:/usr/bin LANG=C.UTF-8
WORKDIR /srv
USER app
EXPOSE {PORT}
CMD ["serve"]
"""
EXITS = f"""\
FROM {BASE}
CMD ["python3", "-c", "import sys, time; print('about to fail', flush=True); time.sleep(1); sys.exit(3)"]
"""
NO_GUNICORN = f"""\
FROM {BASE}
ENV PATH=/usr/local/bin:/usr/bin:/bin
CMD ["gunicorn", "app:app"]
"""


@pytest.fixture(scope="module")
def build(docker_client: Any, imagegate_session: str, tmp_path_factory: pytest.TempPathFactory,
          ) -> Iterator[Callable[..., str]]:
    """Build a Dockerfile text (plus directories copied into its context) with no pull and no
    network; return the image id. Each image is removed after the module, never its parents:
    an intermediate image may be the cache another worker's build is standing on right now."""
    built: list[str] = []

    def make(dockerfile: str, extra: dict[str, Path] | None = None) -> str:
        context = tmp_path_factory.mktemp("img")
        (context / "Dockerfile").write_text(dockerfile)
        for name, source in (extra or {}).items():
            shutil.copytree(source, context / name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        # tagged (session-unique) so a dangling-image sweep by a parallel run leaves it alone
        tag = f"imagegate/runtime-test:{imagegate_session}-{len(built)}"
        image, _ = docker_client.images.build(
            path=str(context), tag=tag, pull=False, network_mode="none", rm=True,
            forcerm=True, labels={"imagegate.managed": "true"})
        built.append(image.id)
        return str(image.id)

    yield make
    for image_id in reversed(built):
        with contextlib.suppress(Exception):
            docker_client.images.remove(image_id, force=True, noprune=True)


@contextlib.contextmanager
def started(docker_client: Any, session: str, image: str,
            **options: Any) -> Iterator[RunningContainer]:
    """One labelled container of ``image``, ready (it answers on its port), removed after;
    ``options`` are ``containers.run``'s (read_only, tmpfs …)."""
    with running(docker_client, image, session, env={}, port=PORT, **options) as ctr:
        ctr.wait_ready("/", timeout=30)
        yield ctr


def left_behind(docker_client: Any, session: str, image: str) -> list[Any]:
    """This session's containers of ``image`` still there (the session's other containers, e.g.
    the app container the image suite shares, are not this test's)."""
    return docker_client.containers.list(all=True, filters={
        "label": f"{SESSION_LABEL}={session}", "ancestor": image})


def test_wait_ready_without_healthcheck_answers_in_seconds(
        docker_client: Any, imagegate_session: str, build: Callable[..., str]) -> None:
    """No HEALTHCHECK: ready as soon as GET / answers through the published loopback port."""
    image = build(HTTP)
    with running(docker_client, image, imagegate_session, env={}, port=PORT) as ctr:
        assert ctr.url.startswith("http://127.0.0.1:")
        took = ctr.wait_ready("/", expect_2xx=True, timeout=30)
    print(f"\nwait_ready, no HEALTHCHECK: {took:.2f}s")  # returning at all is the claim


def test_wait_ready_with_healthcheck_waits_for_healthy(
        docker_client: Any, imagegate_session: str, build: Callable[..., str]) -> None:
    """With a HEALTHCHECK, ready means the engine says healthy."""
    image = build(HEALTHY)
    with running(docker_client, image, imagegate_session, env={}, port=PORT) as ctr:
        took = ctr.wait_ready("/", timeout=30)
        assert ctr.health() == "healthy" and ctr.seconds_to_healthy() is not None
    print(f"\nwait_ready, HEALTHCHECK every 1s: {took:.2f}s")


def test_time_to_healthy_asked_long_after(
        docker_client: Any, imagegate_session: str, build: Callable[..., str]) -> None:
    """Asked once the engine's health log (its last 5 probes) no longer holds the first passing
    one, the time to healthy is the same: read from the engine's health event, not the log, and
    kept (the engine holds its last 256 events only, gone within seconds on a busy engine): a
    check asked late, after other checks ran, must not see a healthy start as a late one."""
    image = build(HEALTHY)
    with running(docker_client, image, imagegate_session, env={}, port=PORT) as ctr:
        ctr.wait_ready("/", timeout=30)
        first = ctr.seconds_to_healthy()
        assert first is not None

        def rotated() -> bool:
            ctr.container.reload()
            state = ctr.container.attrs["State"]
            log = state["Health"]["Log"]
            oldest = engine_time(log[0]["Start"]) - engine_time(state["StartedAt"])
            return len(log) == 5 and oldest.total_seconds() > first

        wait_until(rotated, timeout=30, interval=0.5, what="the first passing probe rotated out")
        assert ctr.seconds_to_healthy() == first


def test_wait_ready_fails_fast_when_the_cmd_exits(
        docker_client: Any, imagegate_session: str, build: Callable[..., str]) -> None:
    """A CMD that exits 3 while we wait fails wait_ready within a poll or two of the exit,
    naming exit 3 and its last log line: seconds after the engine's own exit time, well before
    the 60 s timeout."""
    image = build(EXITS)
    with running(docker_client, image, imagegate_session, env={}, port=PORT) as ctr:
        with pytest.raises(ContainerFailed) as info:
            ctr.wait_ready("/", timeout=60)
        noticed = datetime.now(UTC).replace(tzinfo=None)
        ctr.container.reload()
        after_exit = (noticed - engine_time(ctr.container.attrs["State"]["FinishedAt"])
                      ).total_seconds()
    print(f"\nwait_ready fail-fast on exit 3: noticed {after_exit:.2f}s after the engine's exit "
          f"time ({info.value.message})")
    assert after_exit < 10, f"exit noticed {after_exit:.1f}s after it happened (timeout 60 s)"
    assert "exited 3: about to fail" in info.value.message
    assert info.value.status == 3 and "about to fail" in info.value.detail
    assert left_behind(docker_client, imagegate_session, image) == []


def test_a_missing_executable_fails_running_and_leaves_no_container(
        docker_client: Any, imagegate_session: str, build: Callable[..., str]) -> None:
    """The engine's exec error is the message; the created container is removed; the static
    IG-CMD-EXISTS check says the same from the image's files."""
    image = build(NO_GUNICORN)
    with pytest.raises(ContainerFailed) as info, \
            running(docker_client, image, imagegate_session, env={}, port=PORT):
        pytest.fail("the container must not start")
    assert 'exec: "gunicorn": executable file not found in $PATH' in info.value.message
    assert "\n" not in info.value.message
    assert left_behind(docker_client, imagegate_session, image) == []
    finding = CHECKS["IG-CMD-EXISTS"](ImageFacts.load(docker_client, image), Settings())
    assert not finding.ok  # type: ignore[union-attr]
    assert finding.message == ('CMD runs "gunicorn", which is not in the image '  # type: ignore[union-attr]
                               "(searched PATH /usr/local/bin:/usr/bin:/bin)")


def test_runtime_facts_on_an_image_with_busybox(
        docker_client: Any, imagegate_session: str, build: Callable[..., str]) -> None:
    """The facts agree with what the image is: port 8000, uid 10001, its python, /srv/data."""
    image = build(HTTP)
    with started(docker_client, imagegate_session, image) as ctr:
        c = ctr.container
        assert runtime.listening_ports(c) == {PORT}
        procs = runtime.process_uids(c)
        assert not isinstance(procs, Skip), procs
        assert {p.uid for p in procs} == {10001} and "http.server" in procs[0].command
        assert runtime.exec_uid(c) == 10001
        interpreter = runtime.server_interpreter(c)
        assert interpreter == "/usr/bin/python3"  # bare "python3" resolved on the image's PATH
        assert runtime.pip_importable(c, interpreter) is False
        assert runtime.writable_paths(c, "/srv", interpreter) == ["/srv/data"]


def test_runtime_facts_on_a_shell_less_image(
        docker_client: Any, imagegate_session: str, build: Callable[..., str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """No /bin/sh, cat, ps, id or getent: every fact is still read, from outside, or skipped
    with a reason (never an error)."""
    image = build(SHELL_LESS)
    facts = ImageFacts.load(docker_client, image)
    assert "/bin/sh" not in facts.files and "/bin/busybox" not in facts.files
    static = CHECKS["IG-CMD-EXISTS"](facts, Settings())
    assert static.ok, static.message  # type: ignore[union-attr]
    with started(docker_client, imagegate_session, image) as ctr:
        c = ctr.container
        assert c.exec_run(["sh", "-c", "true"]).exit_code in (126, 127)  # really no shell
        timings = {}
        for name, fact in [("listening_ports", lambda: runtime.listening_ports(c)),
                           ("process_uids", lambda: runtime.process_uids(c)),
                           ("exec_uid", lambda: runtime.exec_uid(c)),
                           ("server_interpreter", lambda: runtime.server_interpreter(c))]:
            t0 = time.monotonic()
            fact()
            timings[name] = time.monotonic() - t0
        print("\nshell-less facts: " + ", ".join(f"{k} {v * 1000:.0f}ms"
                                                  for k, v in timings.items()))
        assert runtime.listening_ports(c) == {PORT}
        procs = runtime.process_uids(c)
        assert not isinstance(procs, Skip), procs
        assert [p.uid for p in procs] == [10001]
        assert runtime.exec_uid(c) == 10001  # USER app, resolved in the image's own passwd
        interpreter = runtime.server_interpreter(c)
        assert interpreter == "/opt/venv/bin/python3"  # from the #! of serve, not PATH
        assert runtime.pip_importable(c, interpreter) is False
        checked = runtime.pip_check(c, interpreter)
        assert checked == (True, "No broken requirements found."), checked
        assert runtime.writable_paths(c, None, interpreter) == ["/srv/data"]

        missing = runtime.pip_importable(c, "/usr/bin/python9")
        assert isinstance(missing, Skip) and "python9" in missing.reason
        assert isinstance(runtime.pip_check(c, "/usr/bin/python9"), Skip)
        assert isinstance(runtime.writable_paths(c, "/srv", "/usr/bin/python9"), Skip)

        # As a remote engine: no host /proc, and no `cat` in the image: a skip with both reasons.
        monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
        ports = runtime.listening_ports(c)
        assert isinstance(ports, Skip)
        assert "remote" in ports.reason and '"cat"' in ports.reason, ports.reason
        procs = runtime.process_uids(c)  # docker top still works: the engine runs ps
        assert not isinstance(procs, Skip) and [p.uid for p in procs] == [10001]
        assert runtime.server_interpreter(c) == "/opt/venv/bin/python3"  # from docker top


def test_pip_importable_when_installed_for_that_interpreter(
        docker_client: Any, imagegate_session: str, build: Callable[..., str]) -> None:
    """pip copied into the interpreter's dist-packages: importable, and pip check runs."""
    import pip

    image = build(HTTP + "COPY pip /usr/local/lib/python3.11/dist-packages/pip\n",
                  {"pip": Path(pip.__file__).parent})
    with started(docker_client, imagegate_session, image) as ctr:
        assert runtime.pip_importable(ctr.container, "/usr/bin/python3") is True
        checked = runtime.pip_check(ctr.container, "/usr/bin/python3")
        assert not isinstance(checked, Skip) and checked[0], checked


def test_generic_checks_on_a_shell_less_image_never_error(
        build: Callable[..., str], tmp_path: Path, imagegate_session: str) -> None:
    """The generic image checks, run as the gate runs them on an image with no shell, no ps, no
    ss, no getent: every running check passes or is skipped with a reason; none errors."""
    from testsupport.generic import run_generic

    image = build(SHELL_LESS)
    found, output, _ = run_generic("image", image=image, session=f"{imagegate_session}-sl",
                                   project_dir=tmp_path, rootdir=tmp_path, timeout=300,
                                   args=("--imagegate-web-port", str(PORT)))
    run = [f for f in found if f["check_id"].startswith("IG-RUN-")]
    assert {f["check_id"] for f in run} >= {"IG-RUN-HEALTHY", "IG-RUN-PROCS-NONROOT",
                                            "IG-RUN-PORT-LISTENING", "IG-RUN-PIP-CHECK"}, run
    broken = [f for f in found if f["message"].startswith("could not run")
              or (not f["ok"] and not f["skipped"] and f["severity"] == "error")]
    assert not broken, output
    assert all(f["ok"] or (f["skipped"] and f["message"]) for f in run
               if f["check_id"] != "IG-RUN-APP-NOT-WRITABLE"), run
    assert "Traceback" not in output, output


def test_pip_check_in_a_read_only_container(
        docker_client: Any, imagegate_session: str, build: Callable[..., str]) -> None:
    """A read-only root filesystem (compose's ``read_only: true``) refuses the archive even
    where a tmpfs is mounted: pip's zip is streamed in through the interpreter instead (the
    archive is not even offered), into the tmpfs, or /dev/shm (every container has one) when
    there is none, and pip check runs."""
    import gc
    import warnings

    image = build(SHELL_LESS)
    with started(docker_client, imagegate_session, image, read_only=True,
                 tmpfs={"/tmp": "size=16m"}) as ctr:
        asked: list[str] = []
        ctr.container.put_archive = lambda path, data: asked.append(path)  # type: ignore[method-assign]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            checked = runtime.pip_check(ctr.container, "/opt/venv/bin/python3")
            gc.collect()
        assert checked == (True, "No broken requirements found."), checked
        assert asked == [], "an archive was offered to a read-only root (refused, after 0.5 s)"
        # the streamed exec's socket is closed, not left to the collector (a user's suite
        # under filterwarnings = ["error"] would fail on it)
        leaked = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
        assert not leaked, leaked
        listed = ctr.container.exec_run(["/opt/venv/bin/python3", "-c",
                                         "import os; print(os.listdir('/tmp'))"]).output
        assert b"imagegate-pip.zip" in listed, listed
    with started(docker_client, imagegate_session, image, read_only=True) as ctr:
        checked = runtime.pip_check(ctr.container, "/opt/venv/bin/python3")
        assert checked == (True, "No broken requirements found."), checked
        listed = ctr.container.exec_run(["/opt/venv/bin/python3", "-c",
                                         "import os; print(os.listdir('/dev/shm'))"]).output
        assert b"imagegate-pip.zip" in listed, listed


def test_the_image_alone_is_reached_from_inside_where_its_port_is_not(
        docker_client: Any, imagegate_session: str, build: Callable[..., str]) -> None:
    """No compose file, and a published port this machine cannot reach (a remote engine whose
    loopback is its own: published_host elsewhere): the container is still judged, through the
    gate's probe on a network of its own, removed afterwards with the probe."""
    from imagegate.config.settings import Settings
    from imagegate.engine import labelled_objects
    from imagegate.pytest_plugin import alone

    image = build(HTTP)
    settings = Settings(web_port=PORT, published_host="192.0.2.1",  # never contacted: no URL
                        sources={"web_port": "test"})
    session = f"{imagegate_session}-alone"
    with alone(docker_client, image, session, settings, {}) as ctr:
        assert ctr.url == "" and "cannot be reached at 192.0.2.1" in ctr.unreachable
        ctr.wait_ready("/", timeout=30)
        answer = ctr.get("/index.html")
        assert (answer.status_code, answer.text) == (200, "hi\n")
        assert labelled_objects(session, docker_client), "the container, probe and network"
    assert labelled_objects(session, docker_client) == []
