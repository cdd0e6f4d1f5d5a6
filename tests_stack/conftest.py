"""Fixtures for this app's stack suite: variant files, a faults-enabled project, HTTP helpers."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from imagegate.stack import Stack, running_stack

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

