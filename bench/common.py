"""What every benchmark shares: the run context, summary statistics, and build contexts.

Every container, network and volume a benchmark creates carries ``engine.session_labels``; the
images it builds carry ``imagegate.managed=true`` (whichever builder :func:`imagegate.build.build`
runs) and :data:`BENCH_LABEL`, so ``imagegate prune --images`` or :func:`remove_bench_images`
finds them.
"""

from __future__ import annotations

import math
import shutil
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Label on every image the benchmarks build (the value says which figure it serves).
BENCH_LABEL = "imagegate.bench"
ROOT = Path(__file__).resolve().parent.parent
SEED_DOCKERFILE = Path(__file__).resolve().parent / "seed" / "Dockerfile"
#: What a build context of this repo holds (the real .dockerignore admits exactly these).
CONTEXT_FILES = ("requirements.lock", "requirements-bootstrap.lock", "Dockerfile", ".dockerignore")
#: The raw results of a run (``make bench`` writes them, ``python -m bench.render`` reads them),
#: and the version of their shape: bumped when a field changes meaning.
RESULTS_JSON = Path(__file__).resolve().parent / "results" / "results.json"
SCHEMA = 1
#: The paths the load generator measures, in table order.
PATHS = ("/", "/hits")

Log = Callable[[str], None]


@dataclass
class Ctx:
    """One benchmark run: the engine client, the session every object is labelled with, a scratch
    directory, the log (progress lines go to stdout; numbers go to RESULTS.md) and the builder
    setting every build uses (``auto`` | ``buildkit`` | ``classic``, as ``[tool.imagegate]``)."""

    cli: Any
    session: str
    tmp: Path
    log: Log = print
    notes: list[str] = field(default_factory=list)
    builder: str = "auto"


@dataclass(frozen=True)
class Stats:
    """Summary of repeated measurements (seconds, MB, req/s — whatever was measured)."""

    values: tuple[float, ...]

    @property
    def n(self) -> int:
        """How many runs."""
        return len(self.values)

    @property
    def median(self) -> float:
        """The median (NaN when nothing was measured)."""
        return statistics.median(self.values) if self.values else math.nan

    @property
    def p90(self) -> float:
        """The 90th percentile (nearest rank)."""
        return percentile(self.values, 90)

    @property
    def low(self) -> float:
        """The smallest value."""
        return min(self.values) if self.values else math.nan

    @property
    def high(self) -> float:
        """The largest value."""
        return max(self.values) if self.values else math.nan


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of ``values`` (NaN for an empty sequence)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def ratio(ours: float, seed: float) -> float:
    """ours / seed, NaN when the seed figure is missing or zero."""
    return ours / seed if seed and not math.isnan(seed) else math.nan


def timed(action: Callable[[], object]) -> float:
    """Wall-clock seconds ``action`` took."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def make_context(dest: Path, *, files: Iterable[tuple[Path, str]] | None = None) -> Path:
    """A private copy of the repo's build context in ``dest`` (the real ``app/`` is never
    touched, and concurrent edits elsewhere in the repo cannot change a measurement midway).

    ``files`` lists (source, name in the context) to copy beside ``app/``; by default the
    repo's own Dockerfile, .dockerignore and lock files.
    """
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    shutil.copytree(ROOT / "app", dest / "app",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "tests"))
    if files is None:
        files = context_files()
    for src, name in files:
        shutil.copy2(src, dest / name)
    return dest


def context_files() -> list[tuple[Path, str]]:
    """(source, name) of the repo's own build-context files beside ``app/``."""
    return [(ROOT / name, name) for name in CONTEXT_FILES if (ROOT / name).is_file()]


def image_size(cli: Any, ref: str) -> int:
    """The image's size in bytes as the engine reports it (``docker images``, uncompressed)."""
    return int(cli.images.get(ref).attrs["Size"])


def mb(size: float) -> float:
    """Bytes → MB (10^6, as ``docker images`` shows)."""
    return size / 1e6


def remove_bench_images(cli: Any, keep: set[str]) -> int:
    """Remove untagged images carrying :data:`BENCH_LABEL` that are not in ``keep`` (ids).

    Cold builds leave one image per repetition behind; this takes them away again.
    """
    removed = 0
    for image in cli.images.list(filters={"label": BENCH_LABEL, "dangling": True}):
        if image.id in keep:
            continue
        try:
            cli.images.remove(image.id)
            removed += 1
        except Exception:  # still used by a container or as a parent: leave it
            pass
    return removed
