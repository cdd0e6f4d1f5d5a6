"""``make bench``: our image and gate against the seed's recipe, measured side by side, one run.

Sizes → build times → start → first 200 → load on the stack → the gate → the gate against the plain
pipeline → a fresh clone's CI, written raw to ``bench/results/results.json``, then rendered into
``bench/RESULTS.md`` (``python -m bench.render`` re-renders without measuring).
Everything the run starts carries ``imagegate.session=<id>`` and is removed by label at the end,
whatever happens; nothing is pulled, builds have no network, traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

# Run as a script (`python bench/run.py`): make the repo root importable so `bench` is a package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import (
    builds,
    freshclone,
    gatetime,
    initsizes,
    load,
    render,
    results,
    sizes,
    slimbase,
    startup,
    variants,
)
from bench import pipeline as plain_pipeline
from bench.common import ROOT, Ctx, remove_bench_images
from imagegate.build import pipeline
from imagegate.config import settings
from imagegate.engine import (
    SESSION_LABEL,
    cleanup_session,
    client,
    ensure_engine,
    new_session_id,
)

DEFAULT_OUT = Path(__file__).resolve().parent / "RESULTS.md"
#: The stack variants ``make bench`` measures beside the seed: all of them (about 5 min), so
#: every suspect's figure in RESULTS.md comes from the same run.
BENCH_VARIANTS = tuple(v.name for v in variants.VARIANTS)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options (the defaults are what ``make bench`` runs)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where RESULTS.md goes")
    p.add_argument("--results", type=Path, default=results.RESULTS_JSON,
                   help="where the raw results (JSON) go")
    p.add_argument("--quick", action="store_true",
                   help="one repetition of everything, small load, no gate timing, one "
                   "pipeline pair per project (for trying it out)")
    p.add_argument("--skip-gate", action="store_true", help="do not time the gate")
    p.add_argument("--skip-variants", action="store_true",
                   help="do not measure our stack's variants (bench.variants)")
    p.add_argument("--skip-pipeline", action="store_true",
                   help="do not run the gate against the plain pipeline (bench.pipeline)")
    p.add_argument("--skip-ci", action="store_true",
                   help="do not time .ci/run on a fresh clone of HEAD (about 10 min)")
    p.add_argument("--gate-budget", type=float, default=420.0,
                   help="seconds the measured gate runs may take together (default 420)")
    return p.parse_args(argv)


def log(line: str) -> None:
    """A progress line, flushed (make shows it as it happens)."""
    print(f"bench: {line}", flush=True)


def other_containers(cli: object, session: str) -> int:
    """Running containers this run did not start (other work on the same engine)."""
    running = cli.containers.list()  # type: ignore[attr-defined]
    return sum(1 for c in running if (c.labels or {}).get(SESSION_LABEL) != session)


def collect(ctx: Ctx, params: results.Params, args: argparse.Namespace) -> results.Results:
    """Every measurement, in order; returns what RESULTS.md is written from."""
    config = settings.load(ROOT)
    pipeline.ensure_bases(config, log=lambda _: None)
    ours_base = pipeline.python_image(config)
    slim, made = slimbase.ensure_slim_base(ctx.cli, log=log)
    log(f"bases: {ours_base}, {slim}{' (made now)' if made else ''}")
    ours_i = builds.Variant("ours", "imagegate", ours_base)
    seed_i = builds.Variant("seed", "imagegate", ours_base)
    images = [ours_i, seed_i, builds.Variant("ours", "slim", slim),
              builds.Variant("seed", "slim", slim)]
    r = results.Results(params, results.machine_facts(ctx.cli), ours_i, seed_i)
    r.busy = {"start": results.load_average()}
    others_start = other_containers(ctx.cli, ctx.session)
    bases = (ours_base, slim, pipeline.redis_image())
    base_ids = {ref: ctx.cli.images.get(ref).id for ref in bases}

    for v in images:
        built = builds.build_variant(ctx, v)
        log(f"built {v.title}: {built.image_id[7:19]}")
    r.sizes = sizes.measure(ctx.cli, images)
    for row in r.sizes:
        log(f"size {row.variant.title}: {row.size / 1e6:.1f} MB")
    if not args.quick:
        from testsupport import standins

        r.init_sizes = initsizes.measure(ctx, standins.ensure_python_slim(log=log))

    for v in images:
        r.builds[v.title] = times = builds.build_times(ctx, v, reps=params.build_reps)
        log(f"build {v.title}: cold {times.cold.median:.1f}s warm {times.warm.median:.2f}s "
            f"change {times.change.median:.2f}s")
    builds.drop_buildtime_images(ctx, images)

    for v in images:
        r.starts[v.title] = st = startup.start_times(ctx, v.ref, runs=params.start_runs)
        log(f"start {v.title}: median {st.to_200.median * 1000:.0f} ms")

    with load.our_stack(ctx, ours_i.ref) as ours_port, \
            load.seed_stack(ctx, seed_i.ref) as seed_port:
        r.load = load.measure(
            {"ours": ours_port, "seed": seed_port}, requests=params.load_requests,
            rounds=params.load_rounds, concurrency=params.load_concurrency,
            warmup=params.load_warmup, cap=params.load_cap)
    for name, figures in r.load.items():
        for path, fig in figures.items():
            log(f"load {name} {path}: {fig.rps.median:.0f} req/s, p99 {fig.p99.median:.1f} ms")

    if not (args.quick or args.skip_variants):
        r.variants = variants.collect(
            ctx, ours_i.ref, seed_i.ref, requests=params.load_requests, rounds=params.load_rounds,
            concurrency=params.load_concurrency, warmup=params.load_warmup,
            variants=[v for v in variants.VARIANTS if v.name in BENCH_VARIANTS])
        log(f"variants: {len(r.variants.variants)} measured against the seed")

    if args.skip_gate or args.quick:
        r.skipped["gate"] = r.skipped["sample_gate"] = (
            "skipped (--quick)" if args.quick else "skipped (--skip-gate)")
    else:
        r.gate = gatetime.gate_times(ctx, runs=params.gate_runs, budget=args.gate_budget)
        log(f"gate: median {r.gate.total.median:.1f}s over {r.gate.total.n} warm runs")
        sample = gatetime.docker_init_sample(ctx)
        r.sample_gate = gatetime.gate_times(ctx, runs=params.gate_runs, budget=args.gate_budget,
                                            project=sample, label="sample-gate")
        log(f"sample gate: median {r.sample_gate.total.median:.1f}s over "
            f"{r.sample_gate.total.n} warm runs")
    if args.skip_pipeline:
        r.skipped["pipeline"] = "skipped (--skip-pipeline)"
    else:
        r.pipeline = plain_pipeline.measure_all(params.pipeline_pairs, ctx.tmp / "pipeline",
                                                log=log)
    if args.quick or args.skip_ci:
        r.skipped["ci"] = "skipped (--quick)" if args.quick else "skipped (--skip-ci)"
    else:
        log("fresh clone: CI=true bash .ci/run (about 10 min)")
        r.ci = freshclone.run_fresh_clone(ctx)
        log(f"fresh clone: exit {r.ci.exit_code} in {r.ci.seconds:.0f}s")
    r.busy["end"] = results.load_average()
    r.busy["others"] = (f"{others_start} running at the start, "
                        f"{other_containers(ctx.cli, ctx.session)} at the end")
    changed = [ref for ref in bases if ctx.cli.images.get(ref).id != base_ids[ref]]
    r.busy["bases"] = (f"re-made by someone else during the run: {', '.join(changed)} "
                       "(figures after that point used the new base)" if changed
                       else "unchanged from start to end")
    return r


def main(argv: Sequence[str] | None = None) -> int:
    """Run every benchmark once, write RESULTS.md, clean up by label; exit 0 unless it crashed."""
    args = parse(argv)
    params = results.Params()
    if args.quick:
        params = results.Params(build_reps=1, start_runs=2, load_requests=300, load_rounds=1,
                                load_warmup=50, load_cap=20, gate_runs=0, pipeline_pairs=1)
    started = time.monotonic()
    ensure_engine()
    cli = client(timeout=900)
    session = new_session_id()
    log(f"session {session}; results go to {args.out}")
    with tempfile.TemporaryDirectory(prefix="imagegate-bench-") as tmp:
        ctx = Ctx(cli, session, Path(tmp), log=log)
        try:
            r = collect(ctx, params, args)
        finally:
            removed = cleanup_session(session, cli)
            images = remove_bench_images(cli, keep=set()) + initsizes.remove_images(cli)
            log(f"cleanup: {removed}, {images} superseded images")
    r.seconds = time.monotonic() - started
    data = results.to_data(r)
    log(f"wrote {results.write(data, args.results)} in {r.seconds / 60:.1f} min")
    args.out.write_text(render.render(data))
    log(f"rendered {args.out} (again, without measuring: python -m bench.render)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
