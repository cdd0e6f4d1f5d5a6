"""The build half of the gate as plain functions: bases → wheelhouse → image.

The CLI (`imagegate base|build|gate`) and the pytest plugin's session fixture both call these, so
an image is made the same way whichever face asked for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import base, build, wheelhouse
from .engine import session_labels
from .settings import Settings

Log = Callable[[str], None]


def ensure_bases(settings: Settings, *, force: bool = False, log: Log = print) -> dict[str, str]:
    """Make the local base images the project uses; return {kind: image ref}."""
    refs: dict[str, str] = {}
    for kind in settings.bases:
        if kind == "python" and settings.python_image:
            continue  # the user brings their own Python base (e.g. python:3.12-slim)
        for recipe in base.recipes(kind):
            result = base.ensure_base(recipe, force=force, log=log)
            refs[kind] = result.ref
            log(f"base {result.ref}: {'built' if result.built else 'up to date'} "
                f"({result.packages} packages, {result.size / 1e6:.1f} MB)")
    return refs


def python_image(settings: Settings) -> str:
    """The Python base the app is built on: the configured one, or the local Debian-made one."""
    if settings.python_image:
        return settings.python_image
    return base.recipes("python")[0].ref


def redis_image() -> str:
    """The local Redis image's reference."""
    return base.recipes("redis")[0].ref


def build_args(settings: Settings) -> dict[str, str]:
    """The build args every build of the project gets: its base and its git facts (OCI labels)."""
    return {"PYTHON_IMAGE": python_image(settings), **build.git_facts(settings.project_dir)}


def build_app(cli: Any, settings: Settings, session: str, *, log: Log = print) -> build.BuildResult:
    """Wheelhouse for the base's Python, then the hermetic build; tags ``<repo>:local``."""
    py_image = python_image(settings)
    locks = [settings.path(lock) for lock in settings.locks]
    if any(lock.exists() for lock in locks):
        target = wheelhouse.detect_target(py_image, cli, session_labels(session))
        wheels = wheelhouse.ensure_wheelhouse(
            [lock for lock in locks if lock.exists()], target,
            settings.path(settings.context) / settings.wheelhouse, log=log,
        )
        log(f"wheelhouse: {len(wheels)} wheels for {target.key}")
    result = build.build(
        cli,
        context=settings.path(settings.context),
        dockerfile=settings.path(settings.dockerfile),
        tags=[f"{settings.repo}:local"],
        buildargs=build_args(settings),
        labels={"imagegate.project": settings.repo},
        progress=log,
    )
    log(f"built {result.image_id[7:19]} as {settings.repo}:local in {result.seconds:.1f}s "
        f"({result.cached_steps}/{result.steps} steps cached)")
    return result

