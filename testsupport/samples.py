"""Sample projects assembled for a test: one copy of the Flask tutorial's app serves them all.

``tests_stack/init_samples/blog`` is the tutorial's flaskr as a project with no Docker files
(what ``imagegate init`` starts from); ``tests_stack/projects/flaskr`` holds only what a
docker-init-shaped project adds around that same package (Dockerfile, compose.yaml,
requirements, .dockerignore). :func:`flaskr_project` puts the two together.
"""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "tests_stack" / "init_samples" / "blog" / "flaskr"
DOCKERIZED = ROOT / "tests_stack" / "projects" / "flaskr"


def flaskr_project(dest: Path) -> Path:
    """The Flask tutorial's app as docker init would ship it, copied into ``dest`` (created)."""
    shutil.copytree(DOCKERIZED, dest, dirs_exist_ok=True)
    shutil.copytree(TUTORIAL, dest / "flaskr", ignore=shutil.ignore_patterns("__pycache__"))
    return dest
