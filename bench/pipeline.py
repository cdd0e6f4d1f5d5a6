"""The gate against the pipeline a user would write instead, side by side on one project.

The plain pipeline is the few lines a team puts in CI without imagegate: ``hadolint Dockerfile``,
``docker build``, ``docker compose up --wait``, one HTTP GET, ``docker compose down``. Each pair
runs the two in turn (pipeline, then gate) on the same project and engine, warm (one unmeasured
pair first), so load drifts hit both alike; RESULTS.md shows the medians and their ratio (the
targets ``pipeline_dockerinit`` and ``pipeline_repo`` in :mod:`bench.targets` say how measured).

Projects: ``dockerinit`` (a fresh copy of the docker-init sample: zero config, ``build: .`` in its
compose file) and ``repo`` (this repository: its compose.yml builds nothing, so the pipeline
builds the Dockerfile itself, as ``imagegate/bench-pipeline:<run>``, and hands it to compose as
``APP_IMAGE`` with a random ``SECRET_KEY``; the Dockerfile installs from the wheelhouse in
``.wheels/``, which a first gate run makes when it is missing, untimed).

``make bench`` runs both. Alone: ``.venv/bin/python -m bench.pipeline [--pairs N] [--project P]``
measures, replaces the ``pipeline`` section of ``bench/results/results.json`` (the same schema;
a fresh file when there is none) and prints the rows; ``python -m bench.render`` then re-renders.
Every compose project and image of the pipeline carries the bench's label and is taken down or
removed; its ports are moved to 127.0.0.1 by an override, as the gate's own are.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.common import BENCH_LABEL, RESULTS_JSON, ROOT, SCHEMA
from bench.gatetime import gate_once
from imagegate.model.compose import Model, compose_command
from imagegate.proc import run

PROJECTS = ("dockerinit", "repo")
DOCKER = "/usr/bin/docker"  # Debian's docker.io CLI: BuildKit builds, as the gate's here


@dataclass(frozen=True)
class Pair:
    """One pipeline run and the gate run after it (seconds; the gate's exit code)."""

    pipeline: float
    gate: float
    gate_exit: int


@dataclass(frozen=True)
class Project:
    """What the plain pipeline needs of one project: its directory, compose files (and the
    loopback override), web service and port, Dockerfile; for a compose file that builds
    nothing, the variable that names the image (``image_var``) and the environment it needs."""

    name: str
    dir: Path
    files: tuple[Path, ...]
    web: str
    port: int
    dockerfile: Path
    image_var: str = ""
    env: dict[str, str] = field(default_factory=dict)


def project_copy(name: str, work: Path) -> Path:
    """A fresh copy of sample project ``name`` (its stand-in base images made first)."""
    from testsupport.standins import ensure_all

    ensure_all(log=lambda _: None)
    dest = work / name
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(ROOT / "tests_stack" / "projects" / name, dest)
    return dest


def loopback_override(project: Project, work: Path) -> Path:
    """A compose override publishing every port of the project on 127.0.0.1 only (the user's
    ``8000:8000`` would publish on every interface), with the bench's label."""
    model = Model.load(list(project.files), project_dir=project.dir,
                       env={**os.environ, **project.env})
    lines = ["services:"]
    for svc in model.services:
        lines.append(f"  {svc}:")
        lines.append(f"    labels: {{{BENCH_LABEL}: 'pipeline'}}")
        published = model.published(svc)
        if published:
            lines.append("    ports: !override")
            lines += [f"      - '127.0.0.1::{p.target}'" for p in published]
    path = work / f"{project.name}-loopback.override.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


def pipeline_once(project: Project, override: Path) -> float:
    """hadolint, build, up --wait, one GET (retried while the server starts), down: the seconds
    it took (each step must work). The build is ``docker build`` with BuildKit (Debian's
    docker.io CLI, as the gate builds here), tagged as the image compose names for the web
    service's ``build:`` (or, with ``image_var``, as that variable says), so ``up`` runs it."""
    name = f"igbench-{uuid.uuid4().hex[:8]}"
    tag = f"imagegate/bench-pipeline:{name}" if project.image_var else f"{name}-{project.web}"
    env = {**os.environ, **project.env, "DOCKER_BUILDKIT": "1"}
    if project.image_var:
        env[project.image_var] = tag
    compose = [*compose_command(), "-p", name, "--project-directory", str(project.dir),
               *(a for f in [*project.files, override] for a in ("-f", str(f)))]
    started = time.perf_counter()
    try:
        run([str(Path(sys.executable).parent / "hadolint"), str(project.dockerfile)],
            cwd=project.dir, timeout=60, check=False)
        run([DOCKER, "build", "-q", "-t", tag, "--label", f"{BENCH_LABEL}=pipeline", "-f",
             str(project.dockerfile), str(project.dir)], env=env, timeout=600)
        run([*compose, "up", "-d", "--wait", "--pull", "never", "--no-build"], env=env,
            timeout=300)
        where = run([*compose, "port", project.web, str(project.port)], env=env,
                    timeout=30).stdout.strip()
        run(["curl", "-fsS", "-o", "/dev/null", "--retry", "50", "--retry-all-errors",
             "--retry-delay", "0", "--retry-max-time", "30", f"http://{where}/"], timeout=60)
        return time.perf_counter() - started
    finally:
        run([*compose, "down", "-v", "--remove-orphans", "--rmi", "local"], env=env,
            timeout=120, check=False)
        if project.image_var:  # compose's --rmi local leaves an image named by the file alone
            run([DOCKER, "rmi", "-f", tag], timeout=60, check=False)


def setup(name: str, work: Path) -> Project:
    """The project ``name`` (one of :data:`PROJECTS`) as the pipeline sees it."""
    from imagegate.config import settings as settings_mod
    from imagegate.config.project import resolve

    if name not in PROJECTS:
        raise SystemExit(f"bench.pipeline: no project {name!r} (known: {', '.join(PROJECTS)})")
    where = ROOT if name == "repo" else project_copy(name, work)
    settings = resolve(settings_mod.load(where, {}))
    image_var, env = "", {}
    if name == "repo":
        image_var, env = "APP_IMAGE", {"SECRET_KEY": secrets.token_hex(32)}
        if not (settings.path(settings.context) / settings.wheelhouse).is_dir():
            gate_once(work / "repo-wheelhouse-report", where)  # makes .wheels/: untimed
    return Project(name, where, (settings.path(settings.compose_file),), settings.web_service,
                   settings.web_port, settings.path(settings.dockerfile), image_var, env)


def measure(name: str, pairs: int, work: Path, log: Any = print) -> dict[str, Any]:
    """``pairs`` measured pairs (after one warm-up pair) on project ``name``: every pair raw,
    with when and where it was measured (the renderer computes medians and the ratio)."""
    from bench.results import load_average, when

    work.mkdir(parents=True, exist_ok=True)
    project = setup(name, work)
    override = loopback_override(project, work)
    report = work / f"{name}-report"

    def pair() -> Pair:
        plain = pipeline_once(project, override)
        gated = gate_once(report, project.dir)
        log(f"pipeline {name}: plain {plain:.1f}s, gate {gated.seconds:.1f}s "
            f"(exit {gated.exit_code})")
        return Pair(plain, gated.seconds, gated.exit_code)

    busy = load_average()
    pair()  # warm: caches, bases, the gate's first run
    measured = [pair() for _ in range(pairs)]
    return {"project": name, "date": when(), "load_average": [busy, load_average()],
            "pairs": [asdict(p) for p in measured]}


def measure_all(pairs: int, work: Path, projects: Sequence[str] = PROJECTS,
                log: Any = print) -> dict[str, dict[str, Any]]:
    """:func:`measure` on each of ``projects``, in order: the results' ``pipeline`` section."""
    return {name: measure(name, pairs, work, log=log) for name in projects}


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, write the pipeline section into results.json, print the rows."""
    from bench import figures, results
    from bench.render import ResultsError, load_results
    from bench.targets import BY_KEY, verdict

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=5)
    p.add_argument("--project", action="append", choices=PROJECTS,
                   help="measure only this project (repeatable; default: all)")
    p.add_argument("--results", type=Path, default=RESULTS_JSON,
                   help="the results file whose pipeline section is replaced")
    args = p.parse_args(argv)
    try:  # read it first: a corrupt file stops us before minutes of measuring
        data: dict[str, Any] = load_results(args.results) if args.results.exists() else {
            "schema": SCHEMA, "skipped": {}}
    except ResultsError as exc:
        print(f"bench.pipeline: {exc}", file=sys.stderr)
        return 2
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"igbench-pipeline-{uuid.uuid4().hex[:6]}"
    work.mkdir(parents=True)
    try:
        for name, found in measure_all(args.pairs, work, args.project or PROJECTS).items():
            data.setdefault("pipeline", {})[name] = found
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results.write(data, args.results)
    print("| project | pipeline (median) | gate (median) | gate ÷ pipeline | target |")
    print("|---|---|---|---|---|")
    for name in args.project or PROJECTS:
        got = figures.pipeline_figures(data["pipeline"][name]) or {}
        v = verdict(BY_KEY[f"pipeline_{name}"], data)
        print(f"| {name} | {figures.f1(got.get('pipeline'))} s | {figures.f1(got.get('gate'))} s"
              f" | {figures.x(got.get('ratio'))} | {v.target.label}: {v.status} |")
    print(f"wrote the pipeline section of {args.results}; `python -m bench.render` re-renders")
    return 0


if __name__ == "__main__":
    sys.exit(main())
