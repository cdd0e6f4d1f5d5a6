"""Fresh clone → green ``.ci/run``: what CI pays on every submission, measured as CI runs it.

The committed HEAD is cloned into a scratch directory and ``CI=true bash .ci/run`` runs there:
apt packages, a new .venv from PyPI, the engine (already up here: not stopped after), the bases and
stand-ins (cached on this machine), ``make test`` (the three suites for real) and the gate with a
push. Wall clock around the whole script; phase times from the ``=== name [HH:MM:SS]`` lines it
prints; each suite's pytest summary line as printed.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from .common import ROOT, Ctx

CI_TIMEOUT = 5400  # CI's own limit
PHASE = re.compile(r"^=== (.+) \[(\d\d:\d\d:\d\d)\]$")
SUMMARY = re.compile(r"^=+ (.*(?:passed|failed).* in [\d.]+s.*) =+$")


@dataclass(frozen=True)
class CiRun:
    """One fresh-clone run of ``.ci/run``."""

    commit: str
    seconds: float
    exit_code: int
    phases: tuple[tuple[str, float], ...]  # (phase, seconds), in order
    summaries: tuple[str, ...]  # pytest's closing line of each suite
    tail: str  # the log's last lines (for a failing run)

    @property
    def passed(self) -> bool:
        """CI's verdict: the script exited 0."""
        return self.exit_code == 0


def phases_of(log: str, started: datetime, ended: datetime) -> tuple[tuple[str, float], ...]:
    """Seconds per ``=== phase [HH:MM:SS]`` section; the last one ends when the script did."""
    marks: list[tuple[str, datetime]] = []
    for line in log.splitlines():
        m = PHASE.match(line.strip())
        if m:
            clock = datetime.strptime(m.group(2), "%H:%M:%S").time()
            when = datetime.combine(started.date(), clock)
            if marks and when < marks[-1][1]:
                when += timedelta(days=1)  # past midnight
            marks.append((m.group(1), when))
    bounds = [*(when for _, when in marks[1:]), ended]
    return tuple((name, max(0.0, (end - when).total_seconds()))
                 for (name, when), end in zip(marks, bounds, strict=True))


def run_fresh_clone(ctx: Ctx) -> CiRun:
    """Clone HEAD into ``ctx.tmp`` and run ``.ci/run`` there as CI does (``CI=true``)."""
    clone = ctx.tmp / "fresh-clone"
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, timeout=30).stdout.strip()
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(clone)], check=True,
                   timeout=300)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMAGEGATE_", "PYTEST_"))}
    env.update(CI="true", DEBIAN_FRONTEND="noninteractive")
    log_path = ctx.tmp / "fresh-clone.log"
    started_at, started = datetime.now(), time.monotonic()
    with open(log_path, "w") as out:
        proc = subprocess.run(["bash", ".ci/run"], cwd=clone, env=env, stdout=out,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              timeout=CI_TIMEOUT)
    seconds = time.monotonic() - started
    log = Path(log_path).read_text(errors="replace")
    summaries = tuple(m.group(1) for line in log.splitlines()
                      for m in [SUMMARY.match(line.strip())] if m)
    return CiRun(commit, seconds, proc.returncode, phases_of(log, started_at, datetime.now()),
                 summaries, "\n".join(log.splitlines()[-30:]))
