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


def secret_key_from_environment(package: Path) -> None:
    """The fix of the tutorial's factory: no default ``SECRET_KEY = "dev"`` in the code, and
    ``FLASK_SECRET_KEY`` read from the environment (``app.config.from_prefixed_env()``), as
    init's note and IG-FLASK-SECRET-KEY's page advise. ``package`` is the ``flaskr`` folder."""
    factory = package / "__init__.py"
    text = factory.read_text()
    default = ('        # a default secret that should be overridden by instance config\n'
               '        SECRET_KEY="dev",\n')
    anchor = '        DATABASE=os.path.join(app.instance_path, "flaskr.sqlite"),\n    )\n'
    assert default in text and anchor in text, f"{factory} is not the tutorial's factory"
    factory.write_text(text.replace(default, "", 1).replace(
        anchor, anchor + "    app.config.from_prefixed_env()  # FLASK_SECRET_KEY\n", 1))
