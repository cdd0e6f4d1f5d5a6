"""Build the app image hermetically: local bases only, ``--network none``, progress streamed.

Before anything is sent to the engine, every ``FROM`` image (after build-arg substitution) must
exist locally: the classic builder would otherwise try to pull it from a registry.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .dockerfile import from_images
from .engine import IMAGE_LABEL
from .errors import BaseImageError, BuildFailed, UsageError

LOG_TAIL = 25


@dataclass(frozen=True)
class BuildResult:
    """A built image: its id, the tags it got, how long it took and what the builder said."""

    image_id: str
    tags: tuple[str, ...]
    seconds: float
    steps: int
    cached_steps: int
    log: tuple[str, ...]


def build(
    cli: Any,
    *,
    context: Path,
    dockerfile: Path,
    tags: list[str],
    buildargs: Mapping[str, str],
    labels: Mapping[str, str],
    progress: Callable[[str], None] = print,
    timeout: int = 900,
) -> BuildResult:
    """Build with the classic builder and no network; :class:`BuildFailed` carries the log tail."""
    import docker.errors

    if not dockerfile.is_file():
        raise UsageError(f"{dockerfile}: Dockerfile not found")
    if not context.is_dir():
        raise UsageError(f"{context}: build context is not a directory")
    for ref in from_images(dockerfile.read_text(), buildargs):
        try:
            cli.images.get(ref)
        except docker.errors.ImageNotFound:
            raise BaseImageError(
                f"{dockerfile.name}: base image {ref} is not present locally and nothing is "
                "pulled; run `imagegate base` (or load it with `docker load`)"
            ) from None
    started = time.monotonic()
    log: list[str] = []
    image_id = ""
    steps = cached = 0
    try:
        stream = cli.api.build(
            path=str(context), dockerfile=str(dockerfile.resolve()), tag=tags[0] if tags else None,
            buildargs=dict(buildargs), labels={IMAGE_LABEL: "true", **labels},
            network_mode="none", pull=False, rm=True, forcerm=True, decode=True, timeout=timeout,
        )
        for chunk in stream:
            if "error" in chunk:
                log.append(str(chunk["error"]).rstrip())
                raise BuildFailed(
                    f"{dockerfile.name}: build failed: {_last_line(log)}",
                    detail="\n".join(log[-LOG_TAIL:]),
                )
            text = str(chunk.get("stream", "")).rstrip("\n")
            if text:
                for line in text.splitlines():
                    log.append(line)
                    if line.startswith("Step "):
                        steps += 1
                        progress(line)
                    elif "Using cache" in line:
                        cached += 1
            aux = chunk.get("aux") or {}
            if aux.get("ID"):
                image_id = aux["ID"]
    except docker.errors.APIError as exc:
        raise BuildFailed(f"{dockerfile.name}: the engine refused the build: {exc.explanation}",
                          detail="\n".join(log[-LOG_TAIL:])) from None
    if not image_id:
        raise BuildFailed(f"{dockerfile.name}: build produced no image",
                          detail="\n".join(log[-LOG_TAIL:]))
    image = cli.images.get(image_id)
    for ref in tags[1:]:
        repo, _, tag = ref.rpartition(":")
        image.tag(repo, tag)
    return BuildResult(image_id, tuple(tags), time.monotonic() - started, steps, cached, tuple(log))


def git_facts(project_dir: Path) -> dict[str, str]:
    """Revision and commit time of the project's checkout (reproducible OCI labels)."""
    def git(*args: str) -> str:
        try:
            out = subprocess.run(["git", "-C", str(project_dir), *args], capture_output=True,
                                 text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return out.stdout.strip() if out.returncode == 0 else ""

    facts = {"VCS_REF": git("rev-parse", "HEAD"), "CREATED": git("log", "-1", "--format=%cI")}
    dirty = git("status", "--porcelain", "--untracked-files=no")
    facts["VERSION"] = (git("describe", "--tags", "--always") or "dev") + ("-dirty" if dirty else "")
    return {k: v for k, v in facts.items() if v}


def _last_line(log: list[str]) -> str:
    """The most telling line of a failed build: the error itself."""
    for line in reversed(log):
        if line.strip():
            return line.strip()[:300]
    return "(no output)"
