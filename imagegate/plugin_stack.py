"""Stack fixtures: the session's compose project, its URL, and per-test project variants.

Imported into :mod:`imagegate.plugin`, so every project gets them. Each one can be overridden
by a conftest.py fixture of the same name (e.g. ``stack_files`` to add an overlay).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from .errors import ImagegateError
from .settings import Settings
from .stack import Stack, running_stack


@pytest.fixture(scope="session")
def stack_files(imagegate_settings: Settings) -> list[Path]:
    """The compose files of the session's stack: ``compose_file`` from the settings.

    Override to add an overlay, e.g. ``return [*base, Path("compose.ci.yml")]``.
    """
    return [imagegate_settings.path(imagegate_settings.compose_file)]


@pytest.fixture(scope="session")
def stack_env(run_env: dict[str, str], imagegate_settings: Settings,
              app_image: str) -> dict[str, str]:
    """Interpolation environment of every stack: ``run_env`` + the tested image's id + Redis.

    The image variable (``image_var``, APP_IMAGE) pins the image that was built and tested:
    stacks never rebuild it. Override to add variables.
    """
    from .pipeline import redis_image

    return {**run_env, imagegate_settings.image_var: app_image, "REDIS_IMAGE": redis_image()}


def _start(settings: Settings, session: str, files: Sequence[str | os.PathLike[str]],
           env: Mapping[str, str], project: str, **options: Any) -> Any:
    """``running_stack`` with the settings' defaults; a context manager."""
    return running_stack(
        files, project=project, session=session, env=env,
        project_dir=options.pop("project_dir", None) or Path(files[0]).resolve().parent,
        wait_timeout=options.pop("wait_timeout", None) or settings.wait_timeout,
        default_port=settings.web_port, **options,
    )


@pytest.fixture(scope="session")
def stack(docker_client: Any, imagegate_settings: Settings, imagegate_session: str,
          stack_files: list[Path], stack_env: dict[str, str]) -> Iterator[Stack]:
    """The project's compose stack, up and healthy for the whole session (``<session>-main``).

    Interpolation reads only ``stack_env`` and an empty env file (never the project's ``.env``);
    override ``stack_files``/``stack_env`` to change what comes up, or this fixture entirely.
    On a failing test its ``compose ps``, logs and health logs are attached to the report.
    """
    try:
        with _start(imagegate_settings, imagegate_session, stack_files, stack_env,
                    f"{imagegate_session}-main",
                    project_dir=imagegate_settings.project_dir) as running:
            yield running
    except ImagegateError as exc:
        pytest.fail(f"imagegate: {exc.message}\n{exc.detail}", pytrace=False)


@pytest.fixture
def stack_url(stack: Stack, imagegate_settings: Settings) -> str:
    """Base URL (no trailing slash) of ``web_service``:``web_port`` on 127.0.0.1.

    Function-scoped on purpose: a restarted container may get a new ephemeral port.
    """
    return stack.url(imagegate_settings.web_service, "",
                     container_port=imagegate_settings.web_port)


class StackFactory:
    """Start extra compose projects for one test; all of them go down when the test ends.

    ``stack_factory(files=[...], env={...}, env_file=..., project_dir=..., wait_timeout=...)``
    returns a started :class:`Stack`. ``files`` defaults to the session's ``stack_files``;
    ``env`` is merged over ``stack_env`` (a value of ``None`` removes that variable);
    ``project_dir`` defaults to the first file's directory (so a ``.env`` beside it is read).
    """

    def __init__(self, settings: Settings, session: str, files: list[Path],
                 env: Mapping[str, str], exits: contextlib.ExitStack) -> None:
        self._settings, self._session, self._files, self._env = settings, session, files, env
        self._exits = exits
        self.stacks: list[Stack] = []

    def __call__(self, files: Sequence[str | os.PathLike[str]] | None = None, *,
                 env: Mapping[str, str | None] | None = None, **options: Any) -> Stack:
        """Bring up one project variant (see the class docstring)."""
        merged = {**self._env, **(env or {})}
        clean = {k: v for k, v in merged.items() if v is not None}
        project = f"{self._session}-{uuid.uuid4().hex[:6]}"
        started: Stack = self._exits.enter_context(
            _start(self._settings, self._session, list(files or self._files), clean, project,
                   **options))
        self.stacks.append(started)
        return started

    def diagnostics(self) -> list[tuple[str, str]]:
        """Every started variant's diagnostics, for the failure report."""
        return [(f"{s.project}: {title}", text)
                for s in self.stacks for title, text in s.diagnostics()]


@pytest.fixture
def stack_factory(docker_client: Any, imagegate_settings: Settings, imagegate_session: str,
                  stack_files: list[Path], stack_env: dict[str, str]) -> Iterator[StackFactory]:
    """A factory for per-test compose projects (:class:`StackFactory`); torn down at test end."""
    with contextlib.ExitStack() as exits:
        yield StackFactory(imagegate_settings, imagegate_session, stack_files, stack_env, exits)
