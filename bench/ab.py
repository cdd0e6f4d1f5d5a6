"""One change to the gate, measured: the gate of an earlier commit against the working tree's.

A speed change is kept only when it measures faster. This runs the gate of ``--before`` (a commit)
and the gate of this checkout in turn, on the same project and engine, warm (one unmeasured run
of each first), so load drifts hit both alike; the result is both medians and their ratio, in wall
seconds and in CPU seconds the machine was busy meanwhile (what a CI machine running many gates,
or the suites' ~40 gates on 2 cores, pays; other work on the machine shows up in both sides).

The earlier gate runs from a detached ``git worktree`` of that commit with the same virtualenv,
put first on ``PYTHONPATH`` (its pytest stages inherit it, so they import that commit's harness
too). Projects: ``dockerinit`` (a fresh copy of the sample) or ``repo`` (this checkout).

``.venv/bin/python -m bench.ab --before a4e07cf --project dockerinit --runs 5 --name one-session``
writes ``bench/results/change-<name>.json`` (every run's seconds, raw) and prints the row.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.common import ROOT, Stats
from bench.gatetime import imagegate_command
from imagegate.proc import git, run

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (all cores, from /proc/stat): the
    gate's processes, its containers and the engine's work for it alike."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


Run = tuple[float, float, int, dict[str, float]]


def gate_seconds(project: Path, report: Path, pythonpath: str) -> Run:
    """One quiet gate run on ``project`` with ``pythonpath`` first: wall seconds, busy CPU
    seconds of the machine meanwhile, exit code, stage seconds."""
    shutil.rmtree(report, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": pythonpath} if pythonpath else dict(os.environ)
    started, busy = time.perf_counter(), busy_seconds()
    proc = run([*imagegate_command(), "gate", "--quiet", "--project-dir", str(project),
                "--report-dir", str(report)], cwd=project, env=env, timeout=900, check=False)
    seconds, cpu = time.perf_counter() - started, busy_seconds() - busy
    stages: dict[str, float] = {}
    result = report / "result.json"
    if result.is_file():
        stages = {s["name"]: float(s["seconds"])
                  for s in json.loads(result.read_text()).get("stages", [])}
    return seconds, cpu, proc.returncode, stages


def measure(before: str, project: Path, runs: int, work: Path) -> dict[str, object]:
    """``runs`` measured turns (after one warm-up turn) of before, then after."""
    tree = work / "before"
    run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--force", str(tree), before],
        timeout=120)
    try:
        sides = {"before": str(tree), "after": ""}
        for side, path in sides.items():  # warm: caches, the first build of each
            gate_seconds(project, work / f"report-{side}", path)
        turns: dict[str, list[Run]] = {s: [] for s in sides}
        for _ in range(runs):
            for side, path in sides.items():
                turns[side].append(gate_seconds(project, work / f"report-{side}", path))
    finally:
        run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], timeout=120,
            check=False)
    medians = {side: Stats(tuple(s for s, _, rc, _ in got if rc == 0)).median
               for side, got in turns.items()}
    cpu = {side: Stats(tuple(c for _, c, rc, _ in got if rc == 0)).median
           for side, got in turns.items()}
    dirty = git(ROOT, "status", "--porcelain", "--untracked-files=no")
    return {"before": git(ROOT, "rev-parse", "--short", before) or before,
            "after": git(ROOT, "rev-parse", "--short", "HEAD") + (
                " (with uncommitted changes)" if dirty else ""),
            "project": project.name,
            "runs": {side: [{"seconds": s, "cpu_seconds": c, "exit": rc, "stages": st}
                            for s, c, rc, st in got] for side, got in turns.items()},
            "median_before": medians["before"], "median_after": medians["after"],
            "ratio": medians["after"] / medians["before"],
            "cpu_before": cpu["before"], "cpu_after": cpu["after"],
            "cpu_ratio": cpu["after"] / cpu["before"]}


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, write the raw JSON, print the row."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", required=True, help="the commit whose gate is the baseline")
    p.add_argument("--project", choices=("dockerinit", "repo"), default="dockerinit")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--name", required=True, help="names the change: results/change-NAME.json")
    args = p.parse_args(argv)
    RESULTS_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="igbench-ab-") as tmp:
        work = Path(tmp)
        if args.project == "repo":
            project = ROOT
        else:
            from bench.pipeline import project_copy

            project = project_copy(args.project, work)
        found = measure(args.before, project, args.runs, work)
    out = RESULTS_DIR / f"change-{args.name}.json"
    out.write_text(json.dumps(found, indent=1) + "\n")
    print("| change | project | before | after | after ÷ before | CPU before | CPU after | "
          "CPU after ÷ before |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {args.name} | {args.project} | {found['median_before']:.2f} s ({args.before}) | "
          f"{found['median_after']:.2f} s | {found['ratio']:.2f}x | {found['cpu_before']:.2f} s | "
          f"{found['cpu_after']:.2f} s | {found['cpu_ratio']:.2f}x |")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
