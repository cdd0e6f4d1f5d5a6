"""What project is this: the loaded settings completed by discovery, resolved once.

:func:`resolve` fills every setting the user left empty (compose file, web service, Dockerfile,
context, target, build args, web port) from the project itself, each value recording where it
came from, so the header and the reports say what was tested and why.
"""

from __future__ import annotations

from dataclasses import replace

from .errors import UsageError
from .settings import Settings


def resolve(settings: Settings) -> Settings:
    """``settings`` with what the user did not configure discovered from the project.

    The discovery's one compose model is not kept here (settings are plain data): a stack
    loads its own, with the real image in its interpolation environment.
    """
    from .discovery import discover

    found = discover(settings.project_dir, settings)
    values = {key: value for key, (value, _) in found.values.items()
              if settings.sources.get(key, "default") == "default"}
    sources = {**settings.sources, **{key: _source(where) for key, (_, where)
                                       in found.values.items() if key in values}}
    if found.compose_file is None and settings.sources.get("compose_file") == "default":
        values["compose_file"] = ""
        sources["compose_file"] = found.no_compose or "none found"
    return replace(settings, **values, sources=sources)


def _source(where: str) -> str:
    """A discovered value's source: ``discovered: <where>`` (kept as is when not found)."""
    from .discovery import UNKNOWN

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
