"""The gate end to end, warm: ``imagegate gate --quiet`` on this repo, stage times from its report.

"Warm" means the base images, the wheel cache and the build cache already exist (a first run,
not counted, makes sure of it). Reports go to a private directory, so a gate another engineer runs
at the same time cannot overwrite the ``result.json`` read here.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagegate.errors import CommandFailed
from imagegate.proc import run

from .common import ROOT, Ctx, Stats

GATE_TIMEOUT = 1800


@dataclass(frozen=True)
class GateRun:
    """One gate run: its wall time, verdict, and seconds per stage (from ``result.json``)."""

    seconds: float
    exit_code: int
    status: str
    stages: dict[str, float]
    failures: tuple[str, ...]
    #: The slowest checks of the run: (seconds, stage, test id), slowest first.
    slowest: tuple[tuple[float, str, str], ...] = ()


@dataclass(frozen=True)
class GateTimes:
    """The warm-up run and the measured ones."""

    warmup: GateRun
    runs: tuple[GateRun, ...]

    @property
    def passed(self) -> tuple[GateRun, ...]:
        """The measured runs that passed (a failing run stops early: its time is not the gate's)."""
        return tuple(r for r in self.runs if r.exit_code == 0)

    @property
    def total(self) -> Stats:
        """Wall-clock seconds of the passing measured runs."""
        return Stats(tuple(r.seconds for r in self.passed))

    def stage(self, name: str) -> Stats:
        """Seconds of one stage over the passing measured runs."""
        return Stats(tuple(r.stages[name] for r in self.passed if name in r.stages))

    @property
    def stage_names(self) -> list[str]:
        """Stage names in gate order."""
        names: list[str] = []
        for r in (self.warmup, *self.runs):
            names += [n for n in r.stages if n not in names]
        return names

    @property
    def all_passed(self) -> bool:
        """True when every run (warm-up included) passed."""
        return all(r.exit_code == 0 for r in (self.warmup, *self.runs))


def imagegate_command() -> list[str]:
    """The ``imagegate`` console script of the Python running the benchmarks."""
    beside = Path(sys.executable).parent / "imagegate"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("imagegate")
    return [found] if found else [sys.executable, "-m", "imagegate.cli"]


def gate_once(report_dir: Path) -> GateRun:
    """Run the gate once on this repo; read stage times and failures from its ``result.json``."""
    if report_dir.exists():
        shutil.rmtree(report_dir)
    started = time.perf_counter()
    try:
        proc = run([*imagegate_command(), "gate", "--quiet", "--report-dir", str(report_dir)],
                   timeout=GATE_TIMEOUT, check=False, cwd=ROOT)
        exit_code, output = proc.returncode, proc.stdout + proc.stderr
    except CommandFailed as exc:  # our timeout: the gate's own cleanup runs on SIGKILL's path
        exit_code, output = -1, exc.message
    seconds = time.perf_counter() - started
    result_file = report_dir / "result.json"
    if not result_file.is_file():
        tail = output.strip().splitlines()[-1:] or ["(no output)"]
        return GateRun(seconds, exit_code, "no report", {}, (tail[0][:300],))
    data = json.loads(result_file.read_text())
    stages = {s["name"]: float(s["seconds"]) for s in data.get("stages", [])
              if s.get("status") not in ("skipped", "pending")}
    failures = tuple(_failure(s) for s in data.get("stages", [])
                     if s.get("status") in ("failed", "error"))
    return GateRun(seconds, exit_code, str(data.get("status", "?")), stages, failures,
                   slowest(report_dir))


def slowest(report_dir: Path, count: int = 6) -> tuple[tuple[float, str, str], ...]:
    """The ``count`` slowest test cases over the stages' JUnit files (what a stage's time is)."""
    cases: list[tuple[float, str, str]] = []
    for junit in sorted(report_dir.glob("junit-*.xml")):
        stage = junit.stem.removeprefix("junit-")
        with contextlib.suppress(ET.ParseError):
            for case in ET.parse(junit).getroot().iter("testcase"):
                name = f"{case.get('classname', '')}::{case.get('name', '')}".lstrip(":")
                cases.append((float(case.get("time") or 0), stage, name))
    return tuple(sorted(cases, reverse=True)[:count])


def _failure(stage: dict[str, Any]) -> str:
    """One line for a red stage: its message, or the ids of the checks that failed."""
    failed = [c["id"] for c in stage.get("checks", []) if c["outcome"] in ("failed", "error")]
    return f"{stage['name']}: {stage.get('message') or ', '.join(failed)}"[:300]


def gate_times(ctx: Ctx, runs: int = 3, budget: float = 420.0) -> GateTimes:
    """One warm-up gate, then measured ones until ``runs`` have passed (at most two extra
    attempts) while ``budget`` seconds allow."""
    report_dir = ctx.tmp / "gate-report"
    warmup = gate_once(report_dir)
    ctx.log(f"gate warm-up: {warmup.status} in {warmup.seconds:.1f}s")
    measured: list[GateRun] = []
    deadline = time.monotonic() + budget
    while (sum(r.exit_code == 0 for r in measured) < runs and len(measured) < runs + 2):
        one = gate_once(report_dir)
        measured.append(one)
        ctx.log(f"gate run {len(measured)}: {one.status} in {one.seconds:.1f}s")
        if time.monotonic() + one.seconds > deadline:
            break  # another run would overrun the benchmark's time budget
    return GateTimes(warmup, tuple(measured))
