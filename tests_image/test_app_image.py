"""This app's image: the generic checks plus what is specific to this service."""

from __future__ import annotations

import posixpath
import re
import shlex
import subprocess
from typing import Any

import pytest

from imagegate.facts.policy import pip_in_image, tools_on_path
from imagegate.suites.test_image import TestImagePolicy, TestRunningContainer  # noqa: F401

pytestmark = pytest.mark.image

APP_UID = 10001
#: File names of compilers, make, pip and package managers (gcc-12, x86_64-linux-gnu-gcc, pip3.11).
BUILD_TOOL_NAME = re.compile(r"(?:[\w-]+-linux-gnu-)?(?:gcc|g\+\+|c\+\+|cc|cpp|cc1|cc1plus|"
                             r"ld|as|make|gmake|pip|pip3|apt|apt-get|dpkg|dpkg-deb|"
                             r"easy_install)(?:[-.]?\d+(?:\.\d+)*)?")
APP_FILES = ["/srv/app/app/__init__.py", "/srv/app/app/wsgi.py", "/srv/app/app/gunicorn.conf.py"]


@pytest.fixture(scope="module")
def healthy_host(app_host: Any) -> Any:
    """The testinfra host once the container is ready (app_host waits for that)."""
    return app_host


def test_user_is_fixed_uid(image_facts: Any, app_host: Any) -> None:
    """The image runs as the fixed UID/GID 10001, named ``app`` in its own /etc/passwd."""
    assert image_facts.attrs["Config"]["User"] == f"{APP_UID}:{APP_UID}"
    user = app_host.user()
    assert (user.uid, user.gid, user.name) == (APP_UID, APP_UID, "app")


def test_gunicorn_master_and_workers_not_root(healthy_host: Any) -> None:
    """gunicorn's master (PID 1) and its 2 default workers all run as the app user.

    busybox's ps has no ``time`` column, which testinfra's process module asks for, so the
    table is read with the columns busybox has.
    """
    rows = [line.split(None, 2) for line in
            healthy_host.check_output("ps -o pid,user,args").splitlines()[1:]]
    procs = [(int(pid), user) for pid, user, args in rows if "gunicorn" in args]
    assert len(procs) >= 3 and procs[0][0] == 1, f"expected PID 1 master + 2 workers: {rows}"
    assert {user for _, user in procs} == {"app"}, procs


def test_package_inventory(healthy_host: Any) -> None:
    """The image's dpkg status lists the runtime it was made of (what the base builder wrote:
    a record, not evidence of what is on disk — see the next test for that)."""
    status = healthy_host.file("/var/lib/dpkg/status").content_string
    packages = {line.split(": ", 1)[1] for line in status.splitlines()
                if line.startswith("Package: ")}
    assert {"libc6", "libssl3", "busybox"} <= packages, sorted(packages)
    assert any(p.startswith("python3.") and p.endswith("-minimal") for p in packages)


def test_no_compiler_pip_or_package_manager_on_disk(image_facts: Any) -> None:
    """No compiler, make, pip or package manager anywhere in the final filesystem — judged from
    the image's files (every path of every layer, whiteouts applied), not from a package list:
    nothing of the kind on PATH, no such file anywhere, no installed pip package."""
    assert tools_on_path(image_facts) == {}, "build tools on PATH"
    found = sorted(path for path, info in image_facts.files.items()
                   if info.type != "dir" and BUILD_TOOL_NAME.fullmatch(posixpath.basename(path)))
    assert found == [], f"build tools in the image: {found[:20]}"
    assert pip_in_image(image_facts) == [], "pip is installed in the image"


@pytest.fixture(scope="module")
def app_file_stats(healthy_host: Any) -> dict[str, tuple[str, str, str, int]]:
    """{path: (type, owner, group, mode)} of APP_FILES, read with one ``stat`` in the container
    (every exec costs the engine ~0.1 s of CPU; testinfra's File asks once per attribute)."""
    result = healthy_host.run("stat -c '%n|%F|%U|%G|%a' " + " ".join(map(shlex.quote, APP_FILES)))
    rows = [line.split("|") for line in result.stdout.splitlines()]
    return {path: (kind, user, group, int(mode, 8)) for path, kind, user, group, mode in rows}


@pytest.mark.parametrize("path", APP_FILES)
def test_app_files_root_owned_read_only(app_file_stats: dict[str, tuple[str, str, str, int]],
                                        path: str) -> None:
    """App files are owned by root and not writable by group or others."""
    assert path in app_file_stats, f"{path} missing"
    kind, user, group, mode = app_file_stats[path]
    assert kind == "regular file", f"{path} is a {kind}"
    assert (user, group) == ("root", "root"), f"{path} owned by {user}:{group}"
    assert mode & 0o022 == 0, f"{path} mode {mode:o} is group/world writable"


def test_bytecode_compiled_at_build_time(healthy_host: Any) -> None:
    """The app is byte-compiled in the image (the root filesystem may be read-only)."""
    out = healthy_host.check_output("ls /srv/app/app/__pycache__")
    assert "wsgi.cpython-" in out and out.count(".pyc") >= 3, out


def test_python_no_pyc_writes(image_facts: Any) -> None:
    """PYTHONDONTWRITEBYTECODE and PYTHONUNBUFFERED are set in the image environment."""
    env = dict(e.split("=", 1) for e in image_facts.attrs["Config"]["Env"])
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
    assert env.get("PYTHONUNBUFFERED") == "1"
    assert env.get("APP_ENV") == "production", "production must be the image's default"


def test_app_imports(healthy_host: Any) -> None:
    """The app package and its WSGI entry point import inside the image."""
    result = healthy_host.run("python3 -c 'import app.wsgi, gunicorn, flask, redis'")
    assert result.rc == 0, result.stderr


#: A script run by the image's python: import every extension module it ships (lib-dynload and
#: site-packages); print the ones that fail, one per line, with why.
IMPORT_EVERY_EXTENSION = """
import importlib, pathlib, sysconfig
failed = []
for root in {sysconfig.get_path('platstdlib') + '/lib-dynload', sysconfig.get_path('purelib')}:
    for so in sorted(pathlib.Path(root).rglob('*.so')):
        rel = so.relative_to(root)
        name = '.'.join((*rel.parent.parts, so.name.split('.')[0]))
        try:
            importlib.import_module(name)
        except Exception as exc:
            failed.append(f'{name}: {exc}')
print('\\n'.join(failed))
"""


def test_every_shipped_extension_module_imports(healthy_host: Any) -> None:
    """Every C extension in the image loads: the base leaves out libraries (Berkeley DB, ncurses,
    readline, Kerberos) only together with the modules that link them, so nothing shipped is
    missing a library — and the ones a service needs are there."""
    result = healthy_host.run("python3 -c " + shlex.quote(IMPORT_EVERY_EXTENSION))
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == "", f"extension modules that do not import:\n{result.stdout}"
    needed = "import ssl, sqlite3, ctypes, zlib, hashlib, json, uuid, decimal, lzma, bz2, markupsafe"
    assert healthy_host.run(f"python3 -c '{needed}'").rc == 0, needed


def test_cmd_is_gunicorn_exec_form(image_facts: Any) -> None:
    """CMD is gunicorn in exec form (PID 1 gets SIGTERM), with the config file in the image."""
    cmd = image_facts.attrs["Config"]["Cmd"]
    assert cmd[0] == "gunicorn" and "/srv/app/app/gunicorn.conf.py" in cmd, cmd


def test_override_cmd(docker_client: Any, app_image: str, imagegate_session: str) -> None:
    """``docker run IMAGE python3 -c …`` runs the given command (like the official images' test)."""
    from imagegate.engine import session_labels

    out = docker_client.containers.run(
        app_image, ["python3", "-c", "import sys; print(sys.version_info[0])"], remove=True,
        network_mode="none", labels=session_labels(imagegate_session),
    )
    assert out.decode().strip() == "3"


def test_revision_label_is_this_commit(image_facts: Any, imagegate_settings: Any) -> None:
    """org.opencontainers.image.revision names the checked-out commit."""
    head = subprocess.run(["git", "-C", str(imagegate_settings.project_dir), "rev-parse", "HEAD"],
                          capture_output=True, text=True, timeout=10)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    labels = image_facts.attrs["Config"]["Labels"]
    assert labels["org.opencontainers.image.revision"] == head.stdout.strip()


def test_missing_secret_key_refuses_to_start(docker_client: Any, app_image: str,
                                            imagegate_session: str) -> None:
    """Without SECRET_KEY in production the container exits non-zero with one clear line."""
    from imagegate.engine import session_labels

    ctr = docker_client.containers.run(app_image, detach=True, network_mode="none",
                                       labels=session_labels(imagegate_session))
    try:
        rc = ctr.wait(timeout=30)["StatusCode"]
        logs = ctr.logs().decode().strip()
    finally:
        ctr.remove(force=True)
    assert rc != 0
    assert "SECRET_KEY" in logs and "Traceback" not in logs, logs
    assert len(logs.splitlines()) == 1, logs
