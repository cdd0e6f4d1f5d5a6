"""Reading figures out of a run's results (the JSON ``bench/results/results.json`` holds).

Plain functions over plain data (dicts, lists, floats): no Docker, no dataclasses. The targets
(:mod:`bench.targets`) and the template (:mod:`bench.render` registers these as filters and
globals) both read through them, so a median or a ratio is computed in one place.
Missing values are ``None`` (JSON has no NaN); every formatter shows them as an em dash.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeGuard

from .common import PATHS, percentile

Data = Mapping[str, Any]
DASH = "—"


def _ok(value: float | None) -> TypeGuard[float]:
    """True for a number that can be shown (not None, not NaN)."""
    return value is not None and not math.isnan(value)


# -- statistics over a list of raw values ---------------------------------------------------------

def median(values: Sequence[float] | None) -> float | None:
    """The median of the raw values (None when there are none)."""
    return statistics.median(values) if values else None


def p90(values: Sequence[float] | None) -> float | None:
    """The 90th percentile, nearest rank."""
    return percentile(values, 90) if values else None


def low(values: Sequence[float] | None) -> float | None:
    """The smallest value."""
    return min(values) if values else None


def high(values: Sequence[float] | None) -> float | None:
    """The largest value."""
    return max(values) if values else None


def ratio(ours: float | None, other: float | None) -> float | None:
    """ours ÷ other; None when either is missing or ``other`` is zero."""
    return ours / other if _ok(ours) and _ok(other) and other else None


# -- formatting -----------------------------------------------------------------------------------

def f0(value: float | None) -> str:
    """A whole number, e.g. req/s."""
    return f"{value:.0f}" if _ok(value) else DASH


def f1(value: float | None) -> str:
    """One decimal."""
    return f"{value:.1f}" if _ok(value) else DASH


def f2(value: float | None) -> str:
    """Two decimals."""
    return f"{value:.2f}" if _ok(value) else DASH


def x(value: float | None) -> str:
    """A ratio, e.g. ``0.31x``."""
    return f"{value:.2f}x" if _ok(value) else DASH


def ms(seconds: float | None) -> str:
    """Seconds as whole milliseconds."""
    return f"{seconds * 1000:.0f} ms" if _ok(seconds) else DASH


def mb(size: float | None) -> float | None:
    """Bytes → MB (10^6, as ``docker images`` shows)."""
    return size / 1e6 if _ok(size) else None


def clock(seconds: float | None) -> str:
    """``4:00``-style minutes and seconds."""
    if not _ok(seconds):
        return DASH
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def minutes(seconds: float | None) -> str:
    """Seconds as minutes with one decimal."""
    return f1(seconds / 60) if _ok(seconds) else DASH


def spread(values: Sequence[float] | None, fmt: Callable[[float | None], str] = f2) -> str:
    """``median (min-max, n=3)`` of raw values."""
    if not values:
        return DASH
    return f"{fmt(median(values))} ({fmt(low(values))}-{fmt(high(values))}, n={len(values)})"


# -- sections -------------------------------------------------------------------------------------

def size_row(data: Data, recipe: str, base: str) -> Mapping[str, Any] | None:
    """The size row of ``recipe`` (ours | seed) on ``base`` (imagegate | slim), if measured."""
    return next((s for s in data.get("sizes") or ()
                 if s["recipe"] == recipe and s["base_name"] == base), None)


def added(row: Mapping[str, Any]) -> int:
    """Bytes a size row's image has on top of its base: what the Dockerfile decides."""
    return int(row["size"]) - int(row["base_size"])


def without_wheelhouse(row: Mapping[str, Any]) -> int:
    """The size a networked build of the same recipe would have (no /wheels layer)."""
    return int(row["size"]) - int(row["wheelhouse"])


def size_ratios(data: Data) -> dict[str, float | None]:
    """ours ÷ seed image size per base both were measured on."""
    out = {}
    for base in ("imagegate", "slim"):
        o, s = size_row(data, "ours", base), size_row(data, "seed", base)
        if o and s:
            out[base] = ratio(o["size"], s["size"])
    return out


def column(rounds: Sequence[Mapping[str, Any]], name: str) -> list[float]:
    """One figure (rps, p50, p99 …) of every load round that has it."""
    return [r[name] for r in rounds if _ok(r.get(name))]


def load_ratio(load: Data, stack: str, other: str, path: str, name: str) -> float | None:
    """Median ``name`` (rps | p50 | p99) of ``stack`` ÷ that of ``other`` on ``path``."""
    a, b = load.get(stack, {}).get(path), load.get(other, {}).get(path)
    if a is None or b is None:
        return None
    return ratio(median(column(a["rounds"], name)), median(column(b["rounds"], name)))


def load_paths(load: Data, *stacks: str) -> list[str]:
    """The paths every one of ``stacks`` was measured on, in table order."""
    return [p for p in PATHS if all(p in (load.get(s) or {}) for s in stacks)]


def passing(runs: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    """The measured gate runs that passed (a failing run stops early: its time is not the gate's)."""
    return [r for r in (runs or {}).get("runs", ()) if r["exit_code"] == 0]


def gate_total(runs: Mapping[str, Any] | None) -> list[float]:
    """Wall-clock seconds of the passing measured gate runs."""
    return [r["seconds"] for r in passing(runs)]


def stage_names(runs: Mapping[str, Any]) -> list[str]:
    """Gate stage names in gate order, over the warm-up and the measured runs."""
    names: list[str] = []
    for r in (runs["warmup"], *runs["runs"]):
        names += [n for n in r["stages"] if n not in names]
    return names


def stage(runs: Mapping[str, Any], name: str) -> list[float]:
    """Seconds of one stage over the passing measured runs."""
    return [r["stages"][name] for r in passing(runs) if name in r["stages"]]


def stage_medians(runs: Mapping[str, Any]) -> list[tuple[str, float | None]]:
    """(stage, median seconds over the passing runs), in gate order."""
    return [(name, median(stage(runs, name))) for name in stage_names(runs)]


def all_runs(runs: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The warm-up run, then the measured ones."""
    return [runs["warmup"], *runs["runs"]]


def pipeline_figures(project: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Medians and the ratio of one project's pipeline-vs-gate pairs; None when not measured."""
    if not project:
        return None
    pairs = project.get("pairs") or []
    plain = [p["pipeline"] for p in pairs]
    gated = [p["gate"] for p in pairs if p["gate_exit"] == 0]
    if not plain or not gated:
        return None
    return {"pipeline": median(plain), "gate": median(gated), "n": len(pairs),
            "gate_passed": len(gated), "ratio": ratio(median(gated), median(plain))}


#: Name → function, as :mod:`bench.render` registers them on the Jinja environment.
FILTERS: dict[str, Callable[..., Any]] = {
    f.__name__: f for f in (
        median, p90, low, high, f0, f1, f2, x, ms, mb, clock, minutes, spread, added,
        without_wheelhouse, column, passing, gate_total, stage, stage_names, stage_medians,
        all_runs, pipeline_figures)}
GLOBALS: dict[str, Callable[..., Any]] = {
    f.__name__: f for f in (ratio, size_row, size_ratios, load_ratio, load_paths)}
