"""Fixtures for this app's stack suite: variant files, a faults-enabled project, HTTP helpers."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from imagegate.engine import labelled_objects, stale_sessions
from imagegate.proc import wait_until
from imagegate.stack import Stack, running_stack
from testsupport.fixtures import python_slim_image, redis_alpine_image  # noqa: F401

VARIANTS = Path(__file__).parent / "variants"


@pytest.fixture(scope="session")
def variants() -> Path:
    """The directory of this suite's compose variant files."""
    return VARIANTS


@pytest.fixture
def project_copy(tmp_path: Path, stack_files: list[Path]) -> Callable[..., Path]:
    """Copy the main compose file, plus named variant files, into ``tmp_path``; return it.

    ``project_copy("env_override.yml", dotenv="greeting.env")`` also writes ``.env`` there.
    """
    def make(*names: str, dotenv: str | None = None) -> Path:
        shutil.copy(stack_files[0], tmp_path / stack_files[0].name)
        for name in names:
            shutil.copy(VARIANTS / name, tmp_path / name)
        if dotenv:
            shutil.copy(VARIANTS / dotenv, tmp_path / ".env")
        return tmp_path

    return make


@pytest.fixture(scope="module")
def fault_stack(docker_client: Any, imagegate_settings: Any, imagegate_session: str,
                stack_files: list[Path], stack_env: dict[str, str]) -> Iterator[Stack]:
    """The main stack plus variants/faults.yml (the /_fault routes), one per test module."""
    with running_stack(
        [*stack_files, VARIANTS / "faults.yml"], project=f"{imagegate_session}-faults",
        project_dir=imagegate_settings.project_dir, env=stack_env, session=imagegate_session,
        wait_timeout=imagegate_settings.wait_timeout, default_port=imagegate_settings.web_port,
    ) as running:
        yield running


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's docker-registry on an ephemeral 127.0.0.1 port; stopped by PID afterwards."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail("docker-registry is not installed (apt-get install docker-registry)",
                    pytrace=False)
    root = tmp_path_factory.mktemp("registry")
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = root / "config.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\n"
                      f"http:\n  addr: 127.0.0.1:{port}\nlog:\n  level: warn\n")
    with open(root / "registry.log", "wb") as log:
        proc = subprocess.Popen([binary, "serve", str(config)], stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/v2/", timeout=1).ok,
                   timeout=20, what="registry answering")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture
def leftovers(docker_client: Any) -> Callable[[], list[str]]:
    """Labelled objects left by sessions whose process has ended since the test started.

    Other runs may be live on the same engine; an object whose owner is still running is not a
    leftover, one whose owner has exited is.
    """
    before = stale_sessions(docker_client)

    def left() -> list[str]:
        return sorted(obj for session in stale_sessions(docker_client) - before
                      for obj in labelled_objects(session, docker_client))

    return left
