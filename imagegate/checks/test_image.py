"""Generic image checks every gated Flask project gets, one property per test, stable ids.

``TestImagePolicy`` reads metadata and saved layers (no shell in the image needed);
``TestRunningContainer`` looks inside one running container with pytest-testinfra. A project's
own ``tests_image/`` imports these classes so they run there too, on the same fixtures.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import pytest

from imagegate.policy import CHECKS

pytestmark = pytest.mark.image


def _findings(result: Any) -> list[Any]:
    """A check returns one Finding or a list of them."""
    return list(result) if isinstance(result, list | tuple) else [result]


class TestImagePolicy:
    """Image policy from `docker image inspect`, history and the flattened layers."""

    @pytest.mark.parametrize("check_id", sorted(CHECKS))
    def test_policy(self, check_id: str, image_facts: Any, imagegate_settings: Any) -> None:
        """IG-* policy check ``check_id`` holds for the image."""
        __tracebackhide__ = True
        if imagegate_settings.ignored(check_id):
            pytest.skip(f"{check_id} is on the ignore list")
        failed = [f for f in _findings(CHECKS[check_id](image_facts, imagegate_settings))
                  if not f.ok]
        if failed:
            pytest.fail("\n".join(
                f"{f.check_id}: {f.message}" + (f"\n{f.detail}" if f.detail else "")
                for f in failed
            ), pytrace=False)


class TestRunningContainer:
    """Inside one running container of the image (pytest-testinfra over ``docker exec``)."""

    def test_IG_RUN_HEALTHY(self, app_healthy: float, app_container: Any) -> None:
        """IG-RUN-HEALTHY: the healthcheck turns healthy within its start period."""
        assert app_container.health() == "healthy"
        hc = app_container.container.image.attrs["Config"]["Healthcheck"]
        start_period = hc.get("StartPeriod", 0) / 1e9
        took = app_container.seconds_to_healthy()
        assert took is not None and took <= start_period, (
            f"first passing probe {took}s after start; start period is {start_period:g}s")

    def test_IG_RUN_USER_NONROOT(self, app_healthy: float, app_host: Any) -> None:
        """IG-RUN-USER-NONROOT: commands run as a non-root user that exists in /etc/passwd."""
        user = app_host.user()
        assert user.uid != 0, f"exec runs as uid 0 ({user.name})"
        assert app_host.run("getent passwd %s", str(user.uid)).rc == 0, (
            f"uid {user.uid} has no /etc/passwd entry")

    def test_IG_RUN_PROCS_NONROOT(self, app_healthy: float, app_host: Any) -> None:
        """IG-RUN-PROCS-NONROOT: no process in the container (server master, workers) is root."""
        out = app_host.check_output("cat /proc/[0-9]*/status")
        uids = {line.split()[1] for line in out.splitlines() if line.startswith("Uid:")}
        assert uids, "no processes seen"
        assert "0" not in uids, f"a process runs as root (real uids seen: {sorted(uids)})"

    def test_IG_RUN_PORT_LISTENING(self, app_healthy: float, app_host: Any,
                                   imagegate_settings: Any) -> None:
        """IG-RUN-PORT-LISTENING: the web port is listening inside the container."""
        port = imagegate_settings.web_port
        assert app_host.socket(f"tcp://0.0.0.0:{port}").is_listening, (
            f"nothing listens on 0.0.0.0:{port}; listening: {app_host.socket.get_listening_sockets()}")

    def test_IG_RUN_HTTP_HEALTH(self, app_healthy: float, app_container: Any,
                                imagegate_settings: Any) -> None:
        """IG-RUN-HTTP-HEALTH: the health path answers 200 through the published loopback port."""
        import requests

        resp = requests.get(app_container.url + imagegate_settings.health_path, timeout=5)
        assert resp.status_code == 200, f"{imagegate_settings.health_path}: {resp.status_code}"

    def test_IG_RUN_APP_NOT_WRITABLE(self, app_healthy: float, app_host: Any) -> None:
        """IG-RUN-APP-NOT-WRITABLE: the runtime user can write nothing under its WORKDIR."""
        workdir = app_host.check_output("pwd") or "/"
        script = (
            "import os, sys\n"
            "bad = [os.path.join(d, n) for d, ds, fs in os.walk(sys.argv[1])"
            " for n in [''] + fs if os.access(os.path.join(d, n), os.W_OK)]\n"
            "print('\\n'.join(bad[:20]))"
        )
        writable = app_host.check_output("python3 -c %s %s", script, workdir)
        assert not writable, f"writable by the app user under {workdir}:\n{writable}"

    @pytest.mark.parametrize("tool", ["gcc", "cc", "make", "pip", "pip3", "apt-get", "dpkg"])
    def test_IG_RUN_NO_BUILD_TOOLS(self, app_healthy: float, app_host: Any, tool: str) -> None:
        """IG-RUN-NO-BUILD-TOOLS: no compiler, pip or package manager in the final image."""
        assert not app_host.exists(tool), f"{tool} is on PATH in the final image"

    def test_IG_RUN_NO_PIP_MODULE(self, app_healthy: float, app_host: Any) -> None:
        """IG-RUN-NO-PIP-MODULE: ``python3 -m pip`` is not importable at run time."""
        assert app_host.run("python3 -c 'import pip'").rc != 0, "pip is importable"

    def test_IG_RUN_PIP_CHECK(self, app_healthy: float, app_host: Any, app_container: Any) -> None:
        """IG-RUN-PIP-CHECK: `pip check` is clean, run from a pip copied in (not installed)."""
        app_container.container.put_archive("/tmp", _pip_zip())
        result = app_host.run("python3 /tmp/imagegate-pip.zip/pip check --disable-pip-version-check")
        assert result.rc == 0, f"pip check: {result.stdout.strip()} {result.stderr.strip()}"


def _pip_zip() -> bytes:
    """This interpreter's pip package zipped (runnable as ``python pip.zip/pip``), in a tar."""
    import pip

    source = Path(pip.__file__).parent
    zbuf = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(zbuf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in source.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                zf.write(path, Path("pip") / path.relative_to(source))
    tbuf = io.BytesIO()
    with tarfile.open(fileobj=tbuf, mode="w") as tar:
        info = tarfile.TarInfo("imagegate-pip.zip")
        info.size = len(zbuf.getvalue())
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(zbuf.getvalue()))
    return tbuf.getvalue()
