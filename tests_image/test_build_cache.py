"""A change to one file under app/ rebuilds only the code layer: the dependency layer is reused."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from imagegate import build
from imagegate.build import pipeline

pytestmark = [pytest.mark.image, pytest.mark.slow]

CONTEXT_FILES = ["Dockerfile", ".dockerignore", "requirements.lock", "requirements-bootstrap.lock"]


#: Steps that must come from the build cache after a code change (the dependency layer) …
DEPENDENCY_STEPS = ["COPY requirements.lock", "COPY .wheels/", '"$1/pip" install',
                    "COPY --from=builder /etc/passwd", "COPY --from=builder /opt/venv"]
#: … and the steps that must not (the code layer).
CODE_STEPS = ["COPY app/", "COPY --from=builder /srv/app"]


def test_code_change_reuses_dependency_layer(docker_client: Any, app_image: str,
                                             imagegate_settings: Any, tmp_path: Path) -> None:
    """Edit a copy of app/views.py: the dependency steps come from cache, the code steps do not.

    Judged on the builder's own per-step cache report (:attr:`BuildResult.steps`, classic's
    "Using cache" or BuildKit's CACHED), with the builder the project selects: layer digests can
    differ while nothing was rebuilt, when the engine holds two equivalent cache entries.
    """
    root = imagegate_settings.project_dir
    for name in CONTEXT_FILES:
        shutil.copy2(root / name, tmp_path / name)
    shutil.copytree(root / "app", tmp_path / "app", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(root / imagegate_settings.wheelhouse, tmp_path / imagegate_settings.wheelhouse)
    views = tmp_path / "app" / "views.py"
    views.write_text(views.read_text() + f"\n# a one-line change {uuid.uuid4().hex}\n")

    result = build.build(
        docker_client, context=tmp_path, dockerfile=tmp_path / "Dockerfile", tags=[],
        buildargs=pipeline.build_args(imagegate_settings),
        labels={"imagegate.variant": "true"}, progress=lambda line: None,
        **build.options(imagegate_settings),
    )
    docker_client.images.remove(result.image_id, force=True, noprune=True)  # a throwaway variant
    steps = [(step.text, step.cached) for step in result.steps]
    for needle in DEPENDENCY_STEPS:
        matching = [cached for text, cached in steps if needle in text]
        assert matching and all(matching), \
            f"dependency step {needle!r} was rebuilt ({result.builder}): {steps}"
    for needle in CODE_STEPS:
        matching = [cached for text, cached in steps if needle in text]
        assert matching and not any(matching), \
            f"code step {needle!r} came from cache ({result.builder}): {steps}"
    print(f"one-file change rebuilt by {result.builder} in {result.seconds:.2f}s, "
          f"{result.cached_steps}/{result.steps_count} steps cached")
