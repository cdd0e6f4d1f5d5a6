"""Fixtures for this app's image suite: variant builds of a mutated Dockerfile."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from imagegate import build
from imagegate.build import pipeline
from imagegate.errors import ImagegateError
from testsupport.fixtures import python_slim_image  # noqa: F401


@pytest.fixture(scope="session")
def build_variant(docker_client: Any, imagegate_settings: Any, app_image: str,
                  imagegate_session: str, tmp_path_factory: pytest.TempPathFactory,
                  ) -> Iterator[Callable[[Callable[[str], str]], str]]:
    """Build the project with ``mutate(Dockerfile text)`` applied; return the image id.

    Runs after ``app_image`` so the wheelhouse is in place and most layers come from cache; built
    with the project's builder, network, pull policy and target, as ``app_image`` was.
    Each variant is tagged for this session and untagged at its end (throwaway, not a cache): a
    worker beside it that built the same variant keeps its own tag, so its image stays.
    """
    context, dockerfile_path = build.project_paths(imagegate_settings)
    source = dockerfile_path.read_text()
    out = tmp_path_factory.mktemp("variants")

    def make(mutate: Callable[[str], str]) -> str:
        text = mutate(source)
        assert text != source, "the mutation changed nothing"
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        dockerfile = out / f"Dockerfile.{digest}"
        dockerfile.write_text(text)
        # the tag names the variant's text, not a counter read before the build: variants built
        # side by side (four at a time) never take each other's tag
        tag = f"imagegate/variant:{imagegate_session}-{digest}"
        try:
            result = build.build(
                docker_client, context=context, dockerfile=dockerfile, tags=[tag],
                buildargs=pipeline.build_args(imagegate_settings),
                labels={"imagegate.variant": "true"}, progress=lambda line: None,
                **build.options(imagegate_settings),
            )
        except ImagegateError as exc:
            pytest.fail(f"variant build failed: {exc.message}\n{exc.detail}", pytrace=False)
        built.append(tag)
        tagged = docker_client.images.get(tag).id
        assert tagged == result.image_id, f"{tag} names {tagged}, not the variant built"
        return result.image_id

    built: list[str] = []
    yield make
    for tag in built:
        with contextlib.suppress(Exception):  # the image goes with its last tag
            docker_client.images.remove(tag, noprune=True)
