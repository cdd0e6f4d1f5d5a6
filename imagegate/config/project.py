"""What project is this: the loaded settings completed by discovery, resolved once.

:func:`resolve` fills every setting the user left empty (compose file, web service, Dockerfile,
context, target, build args, web port) from the project itself, each value recording where it
came from, so the header and the reports say what was tested and why.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from imagegate.config.settings import Settings
from imagegate.errors import UsageError

#: Stands in for the tested image while discovering (the image is built after discovery).
PENDING_IMAGE = "imagegate/discovery:pending"


def resolve(settings: Settings) -> Settings:
    """``settings`` with what the user did not configure discovered from the project.

    The discovery's one compose model is not kept in the settings (plain data): a stack loads
    its own, with the real image in its interpolation environment.
    """
    return discover_settings(settings)[0]


def discover_settings(settings: Settings) -> tuple[Settings, Any]:
    """:func:`resolve`, and the :class:`~imagegate.config.discovery.Discovered` it read (its
    compose model, the other builds, where each variable came from), for a caller that uses
    them before any image exists (the gate's preflight)."""
    from imagegate.config.discovery import NO_COMPOSE, discover

    found = discover(settings.project_dir, settings)
    values = {key: value for key, (value, _) in found.values.items()
              if settings.sources.get(key, "default") == "default"}
    sources = {**settings.sources, **{key: _source(where) for key, (_, where)
                                       in found.values.items() if key in values}}
    if found.compose_file is None and (settings.sources.get("compose_file") == "default"
                                       or settings.compose_file == NO_COMPOSE):
        values["compose_file"] = ""
        sources["compose_file"] = found.no_compose or "none found"
    return replace(settings, **values, sources=sources), found


def _source(where: str) -> str:
    """A discovered value's source: ``discovered: <where>`` (kept as is when not found)."""
    from imagegate.config.discovery import UNKNOWN

    if where.startswith(UNKNOWN) or where in ("default", ""):
        return where or "default"
    return f"discovered: {where}"


def web_port(settings: Settings) -> int:
    """The web port, or the one-line UsageError saying why it could not be discovered."""
    if settings.web_port:
        return settings.web_port
    raise UsageError(settings.sources.get("web_port", "web_port is not set").removeprefix(
        "unknown: ") if settings.sources.get("web_port", "").startswith("unknown: ")
        else "web_port is not set and could not be discovered; set web_port in [tool.imagegate]")


def gate_interpolation(project_dir: Path, files: list[Path], run_env: Any, image_var: str,
                       image: str = "", extra: dict[str, str] | None = None) -> Any:
    """The :class:`~imagegate.model.compose.Interpolation` the gate reads ``files`` with, as ``docker
    compose`` would: the process environment, then ``.env``, then ``run_env`` (``@random`` made
    fresh) and ``extra``; ``image_var`` is always the tested ``image`` (a placeholder before the
    build), whatever the environment says."""
    from imagegate.config.settings import materialize_env
    from imagegate.model.compose import interpolation

    image_var = image_var or "APP_IMAGE"
    base = {**materialize_env(dict(run_env or {})), **(extra or {}),
            image_var: image or PENDING_IMAGE}
    found = interpolation(project_dir, files, base,
                          environ={k: v for k, v in os.environ.items() if k != image_var})
    if image_var in found.sources:
        found.sources[image_var] = "the tested image"
    return found


def compose_model(settings: Settings, image: str = "", extra: dict[str, str] | None = None,
                  files: list[Path] | None = None) -> tuple[Any, Any]:
    """(the project's compose :class:`~imagegate.model.compose.Model`, its
    :class:`~imagegate.model.compose.Interpolation`) as the gate reads it (:func:`gate_interpolation`)."""
    from imagegate.model.compose import Model

    chosen = files or [settings.path(settings.compose_file)]
    found = gate_interpolation(settings.project_dir, chosen, settings.run_env, settings.image_var,
                               image, extra)
    model = Model.load(chosen, project_dir=settings.project_dir, env=found.env,
                       env_file=found.env_file)
    return model, found
