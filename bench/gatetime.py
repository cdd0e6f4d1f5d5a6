"""The gate end to end, warm: ``imagegate gate --quiet`` on this repo and on the docker-init
sample project (zero config, as a user would run it), stage times from its report.

"Warm" means the base images, the wheel cache and the build cache already exist (a first run,
not counted, makes sure of it). Reports go to a private directory, so a gate another engineer runs
at the same time cannot overwrite the ``result.json`` read here.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
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


def gate_once(report_dir: Path, project: Path = ROOT) -> GateRun:
    """Run the gate once on ``project``; read stage times and failures from its ``result.json``."""
    if report_dir.exists():
        shutil.rmtree(report_dir)
    started = time.perf_counter()
    try:
        proc = run([*imagegate_command(), "gate", "--quiet", "--project-dir", str(project),
                    "--report-dir", str(report_dir)],
                   timeout=GATE_TIMEOUT, check=False, cwd=project)
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
    return GateRun(seconds, exit_code, str(data.get("status", "?")), stages, failures)


def _failure(stage: dict[str, Any]) -> str:
    """One line for a red stage: its message, or the ids of the checks that failed."""
    failed = [f["check_id"] for f in stage.get("findings", [])
              if not f["ok"] and not f["skipped"] and f["severity"] == "error"]
    return f"{stage['name']}: {stage.get('message') or ', '.join(failed)}"[:300]


def docker_init_sample(ctx: Ctx) -> Path:
    """A fresh copy of the docker-init sample project (its stand-in base images made first)."""
    from testsupport.standins import ensure_all

    ensure_all(log=ctx.log)
    dest = ctx.tmp / "dockerinit"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(ROOT / "tests_stack" / "projects" / "dockerinit", dest)
    return dest


def gate_times(ctx: Ctx, runs: int = 3, budget: float = 420.0, project: Path = ROOT,
               label: str = "gate") -> GateTimes:
    """One warm-up gate on ``project``, then measured ones until ``runs`` have passed (at most
    two extra attempts) while ``budget`` seconds allow."""
    report_dir = ctx.tmp / f"{label}-report"
    warmup = gate_once(report_dir, project)
    ctx.log(f"{label} warm-up: {warmup.status} in {warmup.seconds:.1f}s")
    measured: list[GateRun] = []
    deadline = time.monotonic() + budget
    while (sum(r.exit_code == 0 for r in measured) < runs and len(measured) < runs + 2):
        one = gate_once(report_dir, project)
        measured.append(one)
        ctx.log(f"{label} run {len(measured)}: {one.status} in {one.seconds:.1f}s")
        if time.monotonic() + one.seconds > deadline:
            break  # another run would overrun the benchmark's time budget
    return GateTimes(warmup, tuple(measured))
