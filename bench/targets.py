"""Every benchmark target, declared once: what the table calls it, its limit and direction, how it
is measured, the issue it comes from, and how its figure is read out of a run's results.

The verdicts (met / missed / not measured / reported) are computed here and only here
(:func:`verdicts`); RESULTS.md's tables and notes read them and the limits from these declarations.
A target whose ``limit`` is None is reported with no verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import figures as fig

AT_MOST, AT_LEAST = "at most", "at least"
SIGN = {AT_MOST: "≤", AT_LEAST: "≥"}
MET, MISSED, NOT_MEASURED, REPORTED = "met", "missed", "not measured", "reported"


@dataclass(frozen=True)
class Measured:
    """A target's figure in one run: the number compared with the limit, how the table shows it
    (``figure``, plus ``detail`` in the targets table only), and ``valid`` = False when the run
    does not count whatever the number (a red CI run)."""

    value: float
    figure: str
    detail: str = ""
    valid: bool = True

    @property
    def shown(self) -> str:
        """The figure with its detail, as the targets table shows it."""
        return f"{self.figure} {self.detail}".strip()


Reader = Callable[[Mapping[str, Any]], Measured | None]


@dataclass(frozen=True)
class Target:
    """One target. ``section`` is the results key it reads, dotted for a part of one
    (``pipeline.repo``); its "why not measured" is ``results["skipped"]`` of that key (or of the
    part before the dot). ``unit`` is x | s | MB | clock."""

    key: str
    name: str
    limit: float | None
    direction: str
    unit: str
    how: str
    issue: str
    section: str
    read: Reader

    @property
    def label(self) -> str:
        """The targets table's first cell, e.g. ``warm gate, this repo ≤ 8 s``."""
        if self.limit is None:
            return f"{self.name} (reported, no limit)"
        return f"{self.name} {SIGN[self.direction]} {show(self.limit, self.unit, limit=True)}"

    def holds(self, value: float) -> bool:
        """True when ``value`` is on the right side of the limit."""
        assert self.limit is not None
        return value <= self.limit if self.direction == AT_MOST else value >= self.limit


def show(value: float | None, unit: str, *, limit: bool = False) -> str:
    """A value in the target's unit (a limit as written: ``0.5x``, ``8 s``, ``4:00``)."""
    if unit == "clock":
        return fig.clock(value)
    if limit and value is not None:
        return f"{value:g}x" if unit == "x" else f"{value:g} {unit}"
    if unit == "x":
        return fig.x(value)
    return f"{fig.f1(value)} {unit}"


# -- readers: one per target, over the results JSON -----------------------------------------------

def _size_ratio(r: Mapping[str, Any]) -> Measured | None:
    ratios = {b: v for b, v in fig.size_ratios(r).items() if v is not None}
    if not ratios:
        return None
    shown = ", ".join(f"{fig.x(v)} on the {b} base" for b, v in ratios.items())
    return Measured(max(ratios.values()), shown)


def _gate(section: str) -> Reader:
    def read(r: Mapping[str, Any]) -> Measured | None:
        total = fig.gate_total(r.get(section))
        if not total:
            return None
        return Measured(fig.median(total) or 0.0, f"{fig.f1(fig.median(total))} s",
                        f"(median of {len(total)})")
    return read


def _start(r: Mapping[str, Any]) -> Measured | None:
    ours = r.get("ours") or {}
    start = (r.get("starts") or {}).get(ours.get("title", ""))
    if not start or not start["to_200"]:
        return None
    value = fig.median(start["to_200"]) or 0.0
    return Measured(value, f"{fig.f2(value)} s",
                    f"(median of {len(start['to_200'])}, ours on the {ours['base_name']} base)")


def _image(r: Mapping[str, Any]) -> Measured | None:
    row = fig.size_row(r, "ours", "imagegate")
    if not row:
        return None
    return Measured(fig.mb(row["size"]) or 0.0, f"{fig.f1(fig.mb(row['size']))} MB",
                    f"(base {fig.f1(fig.mb(row['base_size']))} MB)")


def _load(name: str, worst: Callable[..., float]) -> Reader:
    """ours ÷ seed of load figure ``name`` on every path; the value is the ``worst`` of them."""
    def read(r: Mapping[str, Any]) -> Measured | None:
        load = r.get("load") or {}
        ratios = {p: fig.load_ratio(load, "ours", "seed", p, name)
                  for p in fig.load_paths(load, "ours", "seed")}
        ratios = {p: v for p, v in ratios.items() if v is not None}
        if not ratios:
            return None
        return Measured(worst(ratios.values()), " / ".join(fig.x(v) for v in ratios.values()),
                        "(" + ", ".join(f"`{p}`" for p in ratios) + ")")
    return read


def _ci(r: Mapping[str, Any]) -> Measured | None:
    ci = r.get("ci")
    if not ci:
        return None
    passed = ci["exit_code"] == 0
    return Measured(ci["seconds"], fig.clock(ci["seconds"]) + ("" if passed else " (red)"),
                    "green" if passed else f"**red** (exit {ci['exit_code']})", valid=passed)


def _pipeline(project: str) -> Reader:
    def read(r: Mapping[str, Any]) -> Measured | None:
        found = fig.pipeline_figures((r.get("pipeline") or {}).get(project))
        if not found:
            return None
        return Measured(found["ratio"], fig.x(found["ratio"]),
                        f"(gate {fig.f1(found['gate'])} s ÷ pipeline {fig.f1(found['pipeline'])} s,"
                        f" medians, n={found['n']})")
    return read


PIPELINE_HOW = ("runs in turn on one project, warm, after one unmeasured pair: `hadolint "
                "Dockerfile`, `docker build` (BuildKit), `compose up -d --wait`, one GET "
                "(retried while the server starts), `compose down`; then `imagegate gate`")

# fmt: off
TARGETS: tuple[Target, ...] = (
    Target("pipeline_dockerinit", "warm gate ÷ plain pipeline, docker-init sample", 1.5, AT_MOST,
           "x", f"bench.pipeline: {PIPELINE_HOW}; on a fresh copy of "
           "`tests_stack/projects/dockerinit` (`build: .` in its compose file)",
           "issue 20", "pipeline.dockerinit", _pipeline("dockerinit")),
    Target("pipeline_repo", "warm gate ÷ plain pipeline, this repo", None, AT_MOST, "x",
           f"bench.pipeline: {PIPELINE_HOW}; on this repository: its compose.yml builds nothing, "
           "so the pipeline builds the Dockerfile as it stands (its `PYTHON_IMAGE` default is "
           "the local base) from the wheelhouse the gate left in `.wheels/` (making it is not "
           "timed) and runs it as `APP_IMAGE` with a random `SECRET_KEY`; the gate also runs "
           "this repo's own suites, the pipeline none",
           "issue 20 (reported only: the issue's target is the docker-init one)", "pipeline.repo",
           _pipeline("repo")),
    Target("gate", "warm gate, this repo", 8.0, AT_MOST, "s",
           "bench.gatetime: `imagegate gate --quiet` on this repository, warm, median of the "
           "passing runs", "issue 20 (was 15 s in issue 12, 30 s in issue 6)", "gate",
           _gate("gate")),
    Target("sample_gate", "warm gate, docker-init sample", 20.0, AT_MOST, "s",
           "bench.gatetime: `imagegate gate --quiet` on a fresh copy of the docker-init sample, "
           "warm, median of the passing runs", "issue 9", "sample_gate", _gate("sample_gate")),
    Target("size_ratio", "our image ÷ the seed's, same base", 0.5, AT_MOST, "x",
           "bench.sizes: the engine's `Size` of ours and the seed's recipe, each on the imagegate "
           "and the slim base; the value is the larger ratio", "issue 6", "sizes", _size_ratio),
    Target("start", "start → healthy", 1.5, AT_MOST, "s",
           "bench.startup: `docker run` → first 200 from `/healthz`, ours on the imagegate base, "
           "median", "issue 6", "starts", _start),
    Target("image", "app image", 60.0, AT_MOST, "MB",
           "bench.sizes: the engine's `Size` of ours on the imagegate base (base included)",
           "issue 12", "sizes", _image),
    Target("p99", "p99 ours ÷ seed", 1.0, AT_MOST, "x",
           "bench.load: median p99 over rounds, ours ÷ the seed's stack, each path; the value is "
           "the worst path", "issue 12", "load", _load("p99", max)),
    Target("rps", "req/s ours ÷ seed (the throughput the p99 target holds at)", 1.0, AT_LEAST,
           "x", "bench.load: median req/s over rounds, ours ÷ the seed's stack, each path; the "
           "value is the worst path", "issue 12", "load", _load("rps", min)),
    Target("ci", "fresh clone → green `.ci/run`", 240.0, AT_MOST, "clock",
           "bench.freshclone: `CI=true bash .ci/run` in a fresh clone of HEAD, wall clock; a red "
           "run misses whatever its time", "issue 20 (and issue 12)", "ci", _ci),
)
# fmt: on
BY_KEY = {t.key: t for t in TARGETS}


@dataclass(frozen=True)
class Verdict:
    """One target in one run: its figure (None when not measured), status and why not."""

    target: Target
    measured: Measured | None
    status: str
    why: str = ""

    @property
    def cell(self) -> str:
        """The targets table's verdict cell."""
        return {MET: "**met**", MISSED: "**missed**"}.get(self.status, "—")


def verdict(target: Target, results: Mapping[str, Any]) -> Verdict:
    """``target``'s verdict in ``results``: the one place a figure meets its limit."""
    measured = target.read(results)
    if measured is None:
        return Verdict(target, None, NOT_MEASURED, why_not(target.section, results))
    if target.limit is None:
        return Verdict(target, measured, REPORTED)
    met = measured.valid and target.holds(measured.value)
    return Verdict(target, measured, MET if met else MISSED)


def why_not(section: str, results: Mapping[str, Any]) -> str:
    """Why nothing could be read from ``section`` (``gate``, ``pipeline.repo``): the reason the
    run recorded for skipping it, else whether it is absent or holds no usable run."""
    skipped = results.get("skipped") or {}
    why = skipped.get(section) or skipped.get(section.split(".")[0])
    if why:
        return str(why)
    found: Any = results
    for part in section.split("."):
        found = found.get(part) if isinstance(found, Mapping) else None
    return f"no passing run in `{section}`" if found else f"no `{section}` in the results"


def verdicts(results: Mapping[str, Any]) -> dict[str, Verdict]:
    """Every declared target's verdict, in declaration order, by key."""
    return {t.key: verdict(t, results) for t in TARGETS}
