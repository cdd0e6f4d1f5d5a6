"""One CI job per image: the images a repository holds, as a CI matrix.

``imagegate matrix`` walks a project or a repository of projects (a monorepo of Flask services)
and prints, for each project it finds — a folder with a compose file, else a Dockerfile — what
the gate would gate there: the project folder, the compose file, the web service, its Dockerfile
and context, as discovery decides them (see :mod:`imagegate.config.discovery`). The JSON is
GitHub's ``strategy.matrix`` shape (``{"include": [...]}``); each job then runs
``imagegate gate --project-dir <project>`` and pushes its own image.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from imagegate.config import settings as settings_mod
from imagegate.errors import UsageError
from imagegate.model.compose import DEFAULT_FILES

#: Folders never searched for projects.
SKIP = {".git", ".venv", "venv", "node_modules", "__pycache__", ".imagegate-out", ".tox",
        "site-packages", "dist", "build"}
#: How deep below the root a project may sit.
DEPTH = 4


def projects(root: Path) -> Iterator[Path]:
    """Project folders under ``root``: those holding a compose file (one of the Compose spec's
    names), else a Dockerfile, outermost first; a project's own sub-folders are not searched
    (``services/web`` of a compose project is part of it)."""
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        depth = len(here.relative_to(root).parts)
        dirs[:] = sorted(d for d in dirs if d not in SKIP and not d.startswith("."))
        if any(name in files for name in DEFAULT_FILES) or "Dockerfile" in files:
            yield here
            dirs[:] = []
        elif depth >= DEPTH:
            dirs[:] = []


def entries(root: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """One matrix entry per project under ``root`` (see the module doc); a project discovery
    cannot read is an entry with its ``error``, so the CI job fails naming it."""
    from imagegate.config.project import resolve

    base = Path(root).resolve()
    if not base.is_dir():
        raise UsageError(f"--project-dir {root}: not a directory")
    found = []
    for project in projects(base):
        rel = project.relative_to(base).as_posix() or "."
        try:
            s = resolve(settings_mod.load(project, environ={}))
        except UsageError as exc:
            found.append({"project": rel, "error": exc.message})
            continue
        found.append({"project": rel, "compose_file": s.compose_file,
                      "service": s.web_service, "dockerfile": s.dockerfile,
                      "context": s.context, "image": s.repo})
    if not found:
        raise UsageError(f"{base}: no project (a compose file or a Dockerfile) within "
                         f"{DEPTH} levels")
    return found
