"""The gate against the pipeline a user would write instead, side by side on one project.

The plain pipeline is the few lines a team puts in CI without imagegate: ``hadolint Dockerfile``,
``docker build``, ``docker compose up --wait``, one HTTP GET, ``docker compose down``. Each pair
runs the two in turn (pipeline, then gate) on the same project and engine, warm (one unmeasured
pair first), so load drifts hit both alike; the result is the medians and their ratio.

Run alone: ``.venv/bin/python -m bench.pipeline [--pairs N]``, on the docker-init sample (zero
config, ``build: .`` in its compose file). It writes ``bench/results/pipeline-dockerinit.json``
(every run's seconds, raw) and prints the row.
The compose project of the pipeline carries the bench's label and is taken down by it; its ports
are moved to 127.0.0.1 by an override, as the gate's own are.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.common import BENCH_LABEL, ROOT, Stats
from bench.gatetime import gate_once
from imagegate.model.compose import Model, compose_command
from imagegate.proc import run

RESULTS_DIR = Path(__file__).resolve().parent / "results"
#: The targets of the "speed" issue this benchmark answers (one place; RESULTS.md quotes them).
TARGETS = {"dockerinit": 1.5}


@dataclass(frozen=True)
class Pair:
    """One pipeline run and the gate run after it (seconds; the gate's exit code)."""

    pipeline: float
    gate: float
    gate_exit: int


def project_copy(name: str, work: Path) -> Path:
    """A fresh copy of sample project ``name`` (its stand-in base images made first)."""
    from testsupport.standins import ensure_all

    ensure_all(log=lambda _: None)
    dest = work / name
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(ROOT / "tests_stack" / "projects" / name, dest)
    return dest


def loopback_override(project: Path, files: Sequence[Path], work: Path) -> Path:
    """A compose override publishing every port of the project on 127.0.0.1 only (the user's
    ``8000:8000`` would publish on every interface), with the bench's label."""
    model = Model.load(list(files), project_dir=project, env=dict(os.environ))
    lines = ["services:"]
    for svc in model.services:
        lines.append(f"  {svc}:")
        lines.append(f"    labels: {{{BENCH_LABEL}: 'pipeline'}}")
        published = model.published(svc)
        if published:
            lines.append("    ports: !override")
            lines += [f"      - '127.0.0.1::{p.target}'" for p in published]
    path = work / "loopback.override.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


def pipeline_once(project: Path, files: Sequence[Path], override: Path, web: str, port: int,
                  dockerfile: Path) -> float:
    """hadolint, build, up --wait, one GET (retried while the server starts), down: the seconds
    it took (each step must work). The build is ``docker build`` with BuildKit (Debian's
    docker.io CLI, as the gate builds here), tagged as the image compose names for the web
    service's ``build:``, so ``up`` runs it."""
    name = f"igbench-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    compose = [*compose_command(), "-p", name, "--project-directory", str(project),
               *(a for f in [*files, override] for a in ("-f", str(f)))]
    started = time.perf_counter()
    try:
        run([str(Path(sys.executable).parent / "hadolint"), str(dockerfile)], cwd=project,
            timeout=60, check=False)
        run(["/usr/bin/docker", "build", "-q", "-t", f"{name}-{web}", "-f", str(dockerfile),
             str(project)], env=env, timeout=600)
        run([*compose, "up", "-d", "--wait", "--pull", "never", "--no-build"], env=env,
            timeout=300)
        where = run([*compose, "port", web, str(port)], env=env, timeout=30).stdout.strip()
        run(["curl", "-fsS", "-o", "/dev/null", "--retry", "50", "--retry-all-errors",
             "--retry-delay", "0", "--retry-max-time", "30", f"http://{where}/"], timeout=60)
        return time.perf_counter() - started
    finally:
        run([*compose, "down", "-v", "--remove-orphans", "--rmi", "local"], env=env,
            timeout=120, check=False)


def measure(name: str, pairs: int, work: Path) -> dict[str, object]:
    """``pairs`` measured pairs (after one warm-up pair) on project ``name``: raw and medians."""
    from imagegate.config import settings as settings_mod
    from imagegate.config.project import resolve

    project = project_copy(name, work)
    settings = resolve(settings_mod.load(project, {}))
    files = [settings.path(settings.compose_file)]
    override = loopback_override(project, files, work)
    dockerfile = settings.path(settings.dockerfile)

    def pair() -> Pair:
        plain = pipeline_once(project, files, override, settings.web_service, settings.web_port,
                              dockerfile)
        gated = gate_once(work / f"{name}-report", project)
        return Pair(plain, gated.seconds, gated.exit_code)

    pair()  # warm: caches, bases, the gate's first run
    measured = [pair() for _ in range(pairs)]
    plain = Stats(tuple(p.pipeline for p in measured))
    gate = Stats(tuple(p.gate for p in measured if p.gate_exit == 0))
    return {"project": name, "pairs": [asdict(p) for p in measured],
            "pipeline_median": plain.median, "gate_median": gate.median,
            "ratio": gate.median / plain.median, "target": TARGETS.get(name)}


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, write the raw JSON, print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=5)

    args = p.parse_args(argv)
    RESULTS_DIR.mkdir(exist_ok=True)
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"igbench-pipeline-{uuid.uuid4().hex[:6]}"
    work.mkdir(parents=True)
    try:
        print("| project | pipeline (median) | gate (median) | gate ÷ pipeline | target |")
        print("|---|---|---|---|---|")
        for name in ["dockerinit"]:
            found = measure(name, args.pairs, work)
            (RESULTS_DIR / f"pipeline-{name}.json").write_text(json.dumps(found, indent=1))
            target = f"≤ {found['target']}x" if found["target"] else "—"
            print(f"| {name} | {found['pipeline_median']:.1f} s | {found['gate_median']:.1f} s | "
                  f"{found['ratio']:.2f}x | {target} |", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
