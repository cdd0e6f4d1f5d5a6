"""A change to one file under app/ rebuilds only the code layer: the dependency layer is reused."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from imagegate import build, pipeline

pytestmark = [pytest.mark.image, pytest.mark.slow]

CONTEXT_FILES = ["Dockerfile", ".dockerignore", "requirements.lock", "requirements-bootstrap.lock"]


def _layers(cli: Any, image_id: str) -> list[str]:
    """The image's filesystem layer digests, base first."""
    return list(cli.images.get(image_id).attrs["RootFS"]["Layers"])


def test_code_change_reuses_dependency_layer(docker_client: Any, app_image: str,
                                             imagegate_settings: Any, tmp_path: Path) -> None:
    """Edit a copy of app/views.py: every layer below the code layer is byte-identical."""
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
    )
    before, after = _layers(docker_client, app_image), _layers(docker_client, result.image_id)
    docker_client.images.remove(result.image_id, force=True)  # a throwaway variant
    assert len(before) == len(after)
    assert before[:-1] == after[:-1], "a layer below the code layer was rebuilt"
    assert before[-1] != after[-1], "the code layer should hold the change"
    install = next(i for i, line in enumerate(result.log) if "pip\" install" in line)
    assert "Using cache" in result.log[install + 1], "the pip install step did not come from cache"
    print(f"one-file change rebuilt in {result.seconds:.2f}s, "
          f"{result.cached_steps}/{result.steps} steps cached")
