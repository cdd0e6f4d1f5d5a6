"""The four images compared (ours and the seed's, each on two bases) and their build times.

Ours is built exactly as the gate builds it (:func:`imagegate.pipeline.build_app`: wheelhouse for
the base's Python, then the hermetic build). The seed's Dockerfile (``bench/seed/Dockerfile``) is
built by :func:`imagegate.build.build` from a context holding the same wheelhouse. Every build runs
in a private copy of the context, so the one-file-change figure edits a copy, never ``app/``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagegate import build, pipeline, settings, wheelhouse
from imagegate.engine import session_labels

from .common import BENCH_LABEL, ROOT, SEED_DOCKERFILE, Ctx, Stats, make_context, timed

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
    """Seconds per build kind for one variant, and how many steps the last one took from cache."""

    cold: Stats
    warm: Stats
    change: Stats
    steps: int
    warm_cached: int
    change_cached: int


class _NoCache:
    """A docker SDK client whose builds skip the layer cache (``docker build --no-cache``).

    Lets :func:`imagegate.build.build` time a cold build through exactly the code that times the
    warm ones; everything but ``api.build`` is the real client.
    """

    def __init__(self, cli: Any) -> None:
        self._cli = cli
        self.images = cli.images
        self.api = self

    def build(self, **kwargs: Any) -> Any:
        """The engine build call with ``nocache=True``."""
        return self._cli.api.build(nocache=True, **kwargs)


def _quiet(line: str) -> None:
    """Build progress is not echoed: a benchmark log keeps only its own lines."""


def prepare(ctx: Ctx, variant: Variant) -> Path:
    """Create the variant's context: ours = the repo's; seed = seed Dockerfile + same wheelhouse."""
    dest = variant.context(ctx)
    if variant.recipe == "ours":
        return make_context(dest)
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
                                                "image_repo": variant.repo})
        return pipeline.build_app(ctx.cli, config, ctx.session, log=_quiet)
    return _build(ctx.cli, variant, dest, variant.ref)


def _build(cli: Any, variant: Variant, context: Path, tag: str) -> build.BuildResult:
    """One build of ``context`` with the arguments :func:`pipeline.build_app` would pass."""
    return build.build(cli, context=context, dockerfile=context / "Dockerfile", tags=[tag],
                       buildargs={"PYTHON_IMAGE": variant.base_ref}, labels=variant.labels(),
                       progress=_quiet)


def build_times(ctx: Ctx, variant: Variant, reps: int = 3) -> BuildTimes:
    """Median-ready build times: cold (no cache, bases present), warm (nothing changed) and after
    appending a comment to one app file; ``reps`` of each, in that order.

    Builds are tagged ``:buildtime`` so the measured images (``:local``) stay as they were; the
    wheelhouse is already in the context (a cold build here is the engine's work only).
    """
    context = variant.context(ctx)
    tag = f"{variant.repo}:buildtime"
    nocache = _NoCache(ctx.cli)
    cold = [_timed_build(nocache, variant, context, tag) for _ in range(reps)]
    warm = [_timed_build(ctx.cli, variant, context, tag) for _ in range(reps)]
    changed = context / CHANGED_FILE
    original = changed.read_text()
    change = []
    try:
        for i in range(reps):
            changed.write_text(original + f"# bench: one-file change {i + 1}\n")
            change.append(_timed_build(ctx.cli, variant, context, tag))
    finally:
        changed.write_text(original)
    return BuildTimes(
        cold=Stats(tuple(s for s, _ in cold)), warm=Stats(tuple(s for s, _ in warm)),
        change=Stats(tuple(s for s, _ in change)), steps=warm[-1][1].steps,
        warm_cached=warm[-1][1].cached_steps, change_cached=change[-1][1].cached_steps,
    )


def _timed_build(cli: Any, variant: Variant, context: Path,
                 tag: str) -> tuple[float, build.BuildResult]:
    """Wall-clock seconds of one cached build, and its result."""
    holder: list[build.BuildResult] = []
    seconds = timed(lambda: holder.append(_build(cli, variant, context, tag)))
    return seconds, holder[0]


def drop_buildtime_images(ctx: Ctx, variants: list[Variant]) -> None:
    """Untag and remove the ``:buildtime`` images (the measured ``:local`` ones stay)."""
    for variant in variants:
        with contextlib.suppress(Exception):  # already gone, or shared with a measured image
            ctx.cli.images.remove(f"{variant.repo}:buildtime")
