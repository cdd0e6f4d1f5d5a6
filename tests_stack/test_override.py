"""The gate's compose override on a real run: the tested image pinned, ports on 127.0.0.1.

A project as ``docker init`` writes it (``web: build: .`` publishing ``8000:8000``) plus a Redis
(the local ``imagegate/redis:7-bookworm``, ``pull_policy: never``). The test builds a tiny image
itself, discovers the project, writes the gate's override and brings the stack up through
``running_stack``: compose must run that image id (built by nobody else), publish the port on
127.0.0.1 with an ephemeral host port, and leave nothing behind.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stack_helpers import status_of

from imagegate.config.discovery import discover
from imagegate.config.settings import Settings
from imagegate.engine import (
    IMAGE_LABEL,
    cleanup_session,
    client,
    labelled_objects,
    new_session_id,
    session_labels,
)
from imagegate.model import compose
from imagegate.proc import wait_until
from imagegate.run.stack import PROJECT_LABEL, running_stack

# The harness's own machinery, tested for real: `make test` runs it; the gate's fast
# stages (gate_select = "not slow") leave it out.
pytestmark = pytest.mark.slow

DOCKERFILE = """
    FROM imagegate/python:3.11-bookworm
    WORKDIR /srv
    EXPOSE 8000
    # python as PID 1 ignores SIGTERM; SIGINT stops http.server at once (a fast `down`).
    STOPSIGNAL SIGINT
    CMD ["python3", "-m", "http.server", "8000"]
"""
COMPOSE = """
    services:
      web:
        build: .
        ports:
          - 8000:8000
        depends_on:
          redis:
            condition: service_healthy
      redis:
        image: imagegate/redis:7-bookworm
        pull_policy: never
        volumes:
          - redis-data:/data
        healthcheck:
          test: ["CMD", "redis-cli", "ping"]
          interval: 1s
          timeout: 2s
          retries: 10
    volumes:
      redis-data:
"""


@pytest.fixture
def session() -> Iterator[str]:
    """A fresh session id of this test's own; whatever still carries it is removed after."""
    session = new_session_id()
    try:
        yield session
    finally:
        cleanup_session(session)


@pytest.fixture
def tiny_image(session: str) -> Iterator[str]:
    """A tiny web image (``python3 -m http.server 8000``) built here, untagged; its id."""
    cli = client()
    image, _ = cli.images.build(fileobj=io.BytesIO(textwrap.dedent(DOCKERFILE).encode()),
                                labels={**session_labels(session), IMAGE_LABEL: "true"},
                                rm=True, forcerm=True, pull=False)
    try:
        yield str(image.id)
    finally:
        cli.images.remove(image.id, force=True, noprune=True)


def _built_by_compose(cli: Any, project: str) -> list[str]:
    """Images compose built for ``project``: named ``<project>-<service>`` (compose v5 does not
    label what it builds; the label filter is kept for versions that do).

    Not a before/after diff of every image: other sessions build on the same engine.
    """
    labelled = cli.images.list(filters={"label": f"{PROJECT_LABEL}={project}"})
    named = [tag for img in cli.images.list() for tag in img.tags
             if tag.startswith((f"{project}-", f"{project}_"))]
    return [*(str(img.id) for img in labelled), *named]


def test_gate_override_runs_the_tested_image_on_loopback(tmp_path: Path, session: str,
                                                         tiny_image: str) -> None:
    """``build: .`` + ``8000:8000`` run as the tested image id on 127.0.0.1:<ephemeral>."""
    (tmp_path / "Dockerfile").write_text(textwrap.dedent(DOCKERFILE).lstrip())
    (tmp_path / "compose.yaml").write_text(textwrap.dedent(COMPOSE).lstrip())
    found = discover(tmp_path, Settings(project_dir=tmp_path))
    assert (found.web_service, found.web_port, found.gated) == ("web", 8000, ("web",))
    assert found.model is not None
    assert [s for s, _ in compose.exposed_beyond_loopback(found.model)] == ["web"]
    text = compose.gate_override(found.model, tested_image=tiny_image, gated=found.gated,
                                 labels=session_labels(session))
    cli = client()
    project = f"{session}-override"
    with running_stack([found.compose_file or ""], project=project, project_dir=tmp_path,
                       env={}, session=session, wait_timeout=60, overrides=[text],
                       pull="missing", model=found.model, default_port=8000) as stack:
        web = stack.container("web")
        assert web.attrs["Image"] == tiny_image, "compose runs the tested image id"
        bindings = web.attrs["NetworkSettings"]["Ports"]["8000/tcp"]
        assert [b["HostIp"] for b in bindings] == ["127.0.0.1"], bindings
        port = stack.port("web", 8000)
        assert port != 8000 and str(port) == bindings[0]["HostPort"]
        assert wait_until(lambda: status_of(stack.url("web", "/")) == 200, timeout=30,
                          what="web answers on 127.0.0.1")
        redis = stack.container("redis")
        assert redis.attrs["Config"]["Labels"]["imagegate.session"] == session
        assert web.attrs["Config"]["Labels"]["imagegate.session"] == session
        assert _built_by_compose(cli, project) == [], "compose built an image"
    assert labelled_objects(session, cli) == [], "the stack left objects behind"
    leftovers = cli.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={project}"})
    assert leftovers == []
