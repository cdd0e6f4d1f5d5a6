"""The four images compared (ours and the seed's, each on two bases) and their build times.

Ours is built exactly as the gate builds it (:func:`imagegate.build.pipeline.build_app` with the repo's
``[tool.imagegate]``: wheelhouse for the base's Python, then the hermetic build). The seed's
Dockerfile (``bench/seed/Dockerfile``) is built by :func:`imagegate.build.build` from a context
holding the same wheelhouse, also with no network. Both go through the builder :attr:`Ctx.builder`
selects (``auto``: BuildKit when a docker CLI has it, else classic); :class:`BuildTimes` says which
ran. Every build runs in a private copy of the context, so the one-file-change figure edits a copy,
never ``app/``.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from pathlib import Path

from imagegate import build
from imagegate.build import pipeline, wheelhouse
from imagegate.config import settings
from imagegate.engine import session_labels

from .common import (
    BENCH_LABEL,
    ROOT,
    SEED_DOCKERFILE,
    Ctx,
    Stats,
    context_files,
    make_context,
    timed,
)

#: The app file the one-file-change build edits (in the private context copy).
CHANGED_FILE = "app/views.py"
LOCKS = ("requirements.lock", "requirements-bootstrap.lock")


@dataclass(frozen=True)
class Variant:
    """One image under comparison: a recipe (``ours`` | ``seed``) on a named base."""

    recipe: str
    base_name: str
    base_ref: str

    @property
    def repo(self) -> str:
        """Local repository the image is tagged into, e.g. ``imagegate/bench-seed-slim``."""
        return f"imagegate/bench-{self.recipe}-{self.base_name}"

    @property
    def ref(self) -> str:
        """The tag the measured image carries."""
        return f"{self.repo}:local"

    @property
    def title(self) -> str:
        """How tables name it."""
        return f"{self.recipe} on {self.base_name} base"

    def context(self, ctx: Ctx) -> Path:
        """This variant's private build context directory."""
        return ctx.tmp / f"ctx-{self.recipe}-{self.base_name}"

    def labels(self) -> dict[str, str]:
        """Labels of the images built for this variant."""
        return {"imagegate.project": self.repo, BENCH_LABEL: f"{self.recipe}-{self.base_name}"}


@dataclass(frozen=True)
class BuildTimes:
    """Seconds per build kind for one variant, how many steps the last one took from cache, and
    the builder that ran them (``classic``, ``buildkit`` or ``buildx``)."""

    cold: Stats
    warm: Stats
    change: Stats
    steps: int
    warm_cached: int
    change_cached: int
    builder: str = ""


def _quiet(line: str) -> None:
    """Build progress is not echoed: a benchmark log keeps only its own lines."""


def prepare(ctx: Ctx, variant: Variant) -> Path:
    """Create the variant's context: ours = the repo's; seed = seed Dockerfile + same wheelhouse."""
    dest = variant.context(ctx)
    if variant.recipe == "ours":  # the repo's context and its [tool.imagegate] (locks, hermetic)
        return make_context(dest, files=[*context_files(), (ROOT / "pyproject.toml",
                                                            "pyproject.toml")])
    make_context(dest, files=[(SEED_DOCKERFILE, "Dockerfile"),
                              (ROOT / "requirements.lock", "requirements.txt")])
    target = wheelhouse.detect_target(variant.base_ref, ctx.cli, session_labels(ctx.session))
    wheelhouse.ensure_wheelhouse([ROOT / lock for lock in LOCKS], target, dest / ".wheels",
                                 log=_quiet)
    return dest


def build_variant(ctx: Ctx, variant: Variant) -> build.BuildResult:
    """Build the measured image of ``variant`` (tagged :attr:`Variant.ref`)."""
    dest = prepare(ctx, variant)
    if variant.recipe == "ours":
        config = settings.load(dest, overrides={"python_image": variant.base_ref,
                                                "image_repo": variant.repo,
                                                "builder": ctx.builder})
        return pipeline.build_app(ctx.cli, config, ctx.session, log=_quiet)
    return _build(ctx, variant, dest, variant.ref)


def _build(ctx: Ctx, variant: Variant, context: Path, tag: str, *,
           no_cache: bool = False) -> build.BuildResult:
    """One build of ``context`` with the arguments :func:`pipeline.build_app` would pass (no
    network, the run's builder); ``no_cache`` skips the layer cache (``--no-cache``)."""
    return build.build(ctx.cli, context=context, dockerfile=context / "Dockerfile", tags=[tag],
                       buildargs={"PYTHON_IMAGE": variant.base_ref}, labels=variant.labels(),
                       progress=_quiet, builder=ctx.builder, network="none", pull="never",
                       no_cache=no_cache)


def build_times(ctx: Ctx, variant: Variant, reps: int = 3) -> BuildTimes:
    """Median-ready build times: cold (no cache, bases present), warm (nothing changed) and after
    appending a comment to one app file; ``reps`` of each, in that order.

    Builds are tagged ``:buildtime`` so the measured images (``:local``) stay as they were; the
    wheelhouse is already in the context (a cold build here is the engine's work only).
    """
    context = variant.context(ctx)
    tag = f"{variant.repo}:buildtime"
    cold = [_timed_build(ctx, variant, context, tag, no_cache=True) for _ in range(reps)]
    warm = [_timed_build(ctx, variant, context, tag) for _ in range(reps)]
    changed = context / CHANGED_FILE
    original = changed.read_text()
    change = []
    try:
        for i in range(reps):
            # unique text: the same edit in an earlier run would be a build-cache hit, not a change
            changed.write_text(original + f"# bench: one-file change {i + 1} {uuid.uuid4().hex}\n")
            change.append(_timed_build(ctx, variant, context, tag))
    finally:
        changed.write_text(original)
    return BuildTimes(
        cold=Stats(tuple(s for s, _ in cold)), warm=Stats(tuple(s for s, _ in warm)),
        change=Stats(tuple(s for s, _ in change)), steps=warm[-1][1].steps_count,
        warm_cached=warm[-1][1].cached_steps, change_cached=change[-1][1].cached_steps,
        builder=warm[-1][1].builder,
    )


def _timed_build(ctx: Ctx, variant: Variant, context: Path, tag: str, *,
                 no_cache: bool = False) -> tuple[float, build.BuildResult]:
    """Wall-clock seconds of one build, and its result."""
    holder: list[build.BuildResult] = []
    seconds = timed(lambda: holder.append(_build(ctx, variant, context, tag, no_cache=no_cache)))
    return seconds, holder[0]


def drop_buildtime_images(ctx: Ctx, variants: list[Variant]) -> None:
    """Untag and remove the ``:buildtime`` images (the measured ``:local`` ones stay)."""
    for variant in variants:
        with contextlib.suppress(Exception):  # already gone, or shared with a measured image
            ctx.cli.images.remove(f"{variant.repo}:buildtime")
