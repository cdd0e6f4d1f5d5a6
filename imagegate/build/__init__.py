"""Build an image: settle the pull policy, pick a builder, stream the build.

Before anything is sent to the engine, every ``FROM`` image (after build-arg substitution) is
settled by the pull policy: ``never`` wants it local, ``missing`` pulls just the absent ones,
``always`` leaves it to the builder (which re-pulls). The builders themselves — classic (SDK) and
BuildKit (CLI) — live in :mod:`imagegate.build.builders`; their types are re-exported here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from imagegate.build.builders import (
    PULL_POLICIES,
    Builder,
    BuildKitBuilder,
    BuildRequest,
    BuildResult,
    ClassicBuilder,
    Step,
    builder_name,
    frontend_line,
    frontend_message,
    select_builder,
)
from imagegate.errors import BaseImageError, UsageError
from imagegate.model.dockerfile import from_images

__all__ = [
    "BuildKitBuilder", "BuildRequest", "BuildResult", "Builder", "ClassicBuilder", "Step", "build",
    "builder_name", "ensure_from_images", "from_images", "git_facts", "options", "own_outputs",
    "project_paths", "select_builder",
]


def build(
    cli: Any,
    *,
    context: Path,
    dockerfile: Path,
    tags: Sequence[str],
    buildargs: Mapping[str, str],
    labels: Mapping[str, str],
    progress: Callable[[str], None] = print,
    builder: str | Builder = "auto",
    network: str = "default",
    pull: str = "missing",
    target: str = "",
    no_cache: bool = False,
    timeout: float = 900,
    exclude: Sequence[str] = (),
) -> BuildResult:
    """Build ``dockerfile`` in ``context`` with ``builder`` (a setting or a :class:`Builder`).

    A failed build is :class:`BuildFailed` naming the step and its error (log tail as detail); a
    FROM image the pull policy cannot supply is :class:`BaseImageError`. ``exclude``: context
    paths left out beside the project's ignore file.
    """
    request = BuildRequest(context=context, dockerfile=dockerfile, tags=tuple(tags),
                           buildargs=dict(buildargs), labels=dict(labels), target=target,
                           network=network, pull=pull, no_cache=no_cache, timeout=timeout,
                           exclude=tuple(exclude))
    chosen = select_builder(builder, cli) if isinstance(builder, str) else builder
    if not context.is_dir():
        raise UsageError(f"{context}: build context is not a directory")
    ensure_from_images(cli, dockerfile, request.buildargs, pull, progress=progress)
    if chosen.name != "classic":
        _check_frontend(cli, request)
    return chosen.build(request, progress)


def options(settings: Any) -> dict[str, Any]:
    """The :func:`build` keywords a project's settings decide: builder, network, pull, target,
    and what to leave out of the context (:func:`own_outputs`)."""
    return {"builder": settings.builder, "network": "none" if settings.hermetic else "default",
            "pull": settings.pull, "target": settings.target, "exclude": own_outputs(settings)}


def project_paths(settings: Any) -> tuple[Path, Path]:
    """(context, Dockerfile) of a project: as configured, else docker's own defaults (the project
    directory, and ``Dockerfile`` in the context)."""
    context = settings.path(settings.context or ".")
    dockerfile = settings.path(settings.dockerfile) if settings.dockerfile else context / "Dockerfile"
    return context, dockerfile


def own_outputs(settings: Any) -> list[str]:
    """What the gate writes inside the build context (its report directory), as context-relative
    ignore patterns: a build must neither ship the last gate's reports nor miss its cache
    because the lint beside it wrote a new one."""
    reports = settings.path(settings.report_dir).resolve()
    try:
        inside = reports.relative_to(project_paths(settings)[0].resolve())
    except ValueError:
        return []
    return [inside.as_posix()] if inside.parts else []


def ensure_from_images(cli: Any, dockerfile: Path, buildargs: Mapping[str, str], pull: str, *,
                       progress: Callable[[str], None] = print) -> list[str]:
    """Apply the pull policy to the Dockerfile's FROM images; return them.

    ``never``: a missing one is a :class:`BaseImageError`. ``missing``: pull just the missing ones
    (a failure names the image and the registry's complaint). ``always``: the builder pulls.
    """
    if pull not in PULL_POLICIES:
        raise UsageError(f"pull = {pull!r}: expected one of {', '.join(PULL_POLICIES)}")
    if not dockerfile.is_file():
        raise UsageError(f"{dockerfile}: Dockerfile not found")
    name = dockerfile.name
    refs = from_images(dockerfile.read_text(), buildargs)
    if pull == "always":
        return refs
    for ref in refs:
        if _is_local(cli, ref):
            continue
        if pull == "never":
            raise BaseImageError(
                f'{name}: FROM {ref} is not present locally and pull = "never"; pull or load it '
                '(docker load), or set pull = "missing"'
            )
        progress(f"pulling {ref} (not present locally)")
        _pull(cli, ref, name)
    return refs


def _is_local(cli: Any, ref: str) -> bool:
    """True when the engine has image ``ref``."""
    import docker.errors

    try:
        cli.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


def _pull(cli: Any, ref: str, name: str) -> None:
    """Pull one image by its exact reference (a tag or digest; never every tag of a repo)."""
    import docker.errors
    import requests.exceptions
    from docker.utils import parse_repository_tag

    repo, tag = parse_repository_tag(ref)
    try:
        cli.images.pull(repo, tag=tag or "latest")
    except docker.errors.APIError as exc:
        why = " ".join(str(exc.explanation or exc).split())
        raise BaseImageError(f"{name}: FROM {ref} is not present locally and pulling it failed: "
                             f"{why[:300]}") from None
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise BaseImageError(f"{name}: FROM {ref} is not present locally and pulling it failed: "
                             f"{' '.join(str(exc).split())[:300]}") from None


def _check_frontend(cli: Any, request: BuildRequest) -> None:
    """Under ``pull = "never"``, a ``# syntax=`` frontend must already be local: BuildKit would
    otherwise fetch it from its registry."""
    directive = frontend_line(request)
    if directive is None or request.pull != "never" or _is_local(cli, directive[1]):
        return
    raise UsageError(frontend_message(request, 'not present locally and pull = "never"'))


#: Where CI systems put the commit being built, for a checkout without .git (a copied tree).
CI_REVISION_VARS = ("GITHUB_SHA", "CI_COMMIT_SHA", "BUILDKITE_COMMIT", "CIRCLE_SHA1",
                    "BITBUCKET_COMMIT", "GIT_COMMIT", "TRAVIS_COMMIT", "DRONE_COMMIT_SHA")


def git_facts(project_dir: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Revision and commit time of the project's checkout (reproducible OCI labels); without a
    git checkout, the revision from the CI's variables (GITHUB_SHA, CI_COMMIT_SHA …)."""
    from functools import partial

    from imagegate.proc import git as git_in

    env = os.environ if environ is None else environ
    git = partial(git_in, project_dir)

    facts = {"VCS_REF": git("rev-parse", "HEAD"), "CREATED": git("log", "-1", "--format=%cI")}
    if not facts["VCS_REF"]:
        facts["VCS_REF"] = next((env[v].strip() for v in CI_REVISION_VARS if env.get(v, "").strip()),
                                "")
        facts["VERSION"] = facts["VCS_REF"][:12] or "dev"
        return {k: v for k, v in facts.items() if v}
    dirty = git("status", "--porcelain", "--untracked-files=no")
    facts["VERSION"] = (git("describe", "--tags", "--always") or "dev") + ("-dirty" if dirty else "")
    return {k: v for k, v in facts.items() if v}
