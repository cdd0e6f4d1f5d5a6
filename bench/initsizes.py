"""Image sizes of `imagegate init`'s output against the seed's recipe, per init sample.

For each sample under ``tests_stack/init_samples/`` (the ones ``tests_stack/test_init_gate.py`` gates):

- **init**: ``imagegate init`` in a private copy, then the image built exactly as the gate builds
  it (:func:`imagegate.build.pipeline.build_app`: wheelhouse for the base, hermetic build), on
  ``imagegate/python:3.11-bookworm``; and the same Dockerfile on the slim stand-in;
- **seed**: the seed's recipe (``bench/seed/Dockerfile``: one stage, root, ``pip install`` into
  the system Python, ``gunicorn -w 4`` in shell form) adapted to the sample's code, on the
  ``python:3.11-slim`` stand-in (``testsupport/standins.py``), installing the same locked wheels
  from the same kind of wheelhouse with ``--network none``.

Sizes are the engine's ``Size`` (``docker images``: uncompressed, base included). The seed ships
the wheelhouse it was fed (a networked build would not), so that layer is reported apart.

    .venv/bin/python bench/initsizes.py [--markdown] [--keep]

Every image built carries ``imagegate.bench=init-*`` and is removed at the end (unless
``--keep``); containers (the wheelhouse's tag probe) carry the session label.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from contextlib import nullcontext, redirect_stdout
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

# Run as a script (`python bench/initsizes.py`): make the repo root importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BENCH_LABEL, ROOT, SEED_DOCKERFILE, Ctx, image_size, mb
from imagegate import build
from imagegate import scaffold as init
from imagegate.build import pipeline, wheelhouse
from imagegate.config import settings
from imagegate.engine import cleanup_session, client, ensure_engine, new_session_id, session_labels

SAMPLES_DIR = ROOT / "tests_stack" / "init_samples"
SAMPLES = ("blog", "seed", "hitcount", "microblog")


@dataclass(frozen=True)
class InitSizeRow:
    """One sample: its init image on both bases, and the seed recipe's image on the slim one."""

    sample: str
    wsgi: str
    init_ours: int
    init_slim: int
    seed_slim: int
    seed_wheels: int
    ours_base: int
    slim_base: int

    @property
    def ratio(self) -> float:
        """init on our base ÷ seed on slim: what a user gets vs what they start from."""
        return self.init_ours / self.seed_slim

    @property
    def ratio_same_base(self) -> float:
        """init on slim ÷ seed on slim: the recipe alone."""
        return self.init_slim / self.seed_slim


def _git(project: Path, *args: str) -> None:
    """A git command in the sample copy (labels need a checkout; nothing leaves the machine)."""
    subprocess.run(["git", "-C", str(project), "-c", "user.name=bench", "-c",
                    "user.email=bench@example.com", *args], check=True, capture_output=True,
                   timeout=60)


def prepare(sample: str, dest: Path) -> init.Plan:
    """A git checkout of ``sample`` in ``dest`` with `imagegate init`'s files written."""
    shutil.copytree(SAMPLES_DIR / sample, dest)
    _git(dest, "init", "-q", "-b", "main")
    _git(dest, "remote", "add", "origin", f"https://github.com/example/{sample}")
    _git(dest, "add", "-A")
    _git(dest, "commit", "-q", "-m", "sample")
    plan = init.make_plan(dest)
    init.write(plan)
    return plan


def seed_context(project: Path, dest: Path, plan: init.Plan, slim: str, ctx: Ctx) -> str:
    """The seed recipe's context for the sample: the code init put in its image (at the same
    import paths), the same lock as requirements.txt, the wheelhouse for the slim stand-in.
    Returns the gunicorn app spec."""
    assert plan.app is not None
    prefix = f"{plan.app.import_root}/" if plan.app.import_root else ""
    dest.mkdir(parents=True)
    for entry in plan.entries:
        src, target = project / entry, dest / entry.removeprefix(prefix)
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "tests"))
        else:
            shutil.copy2(src, target)
    shutil.copy2(project / init.LOCK, dest / "requirements.txt")
    target_py = wheelhouse.detect_target(slim, ctx.cli, session_labels(ctx.session))
    locks = [project / lock for lock in (init.LOCK, init.BOOTSTRAP_LOCK)]
    wheelhouse.ensure_wheelhouse(
        locks, target_py, dest / ".wheels", log=lambda _: None,
        compile=lambda sdist, deps: pipeline.compile_on_target(ctx.cli, target_py, ctx.session,
                                                               sdist, deps, log=lambda _: None))
    # The seed installs requirements.txt alone: a pin built from its sdist also accepts the
    # built wheel's hash (built.lock's), so the same wheels go in without a second step.
    (dest / "requirements.txt").write_text(with_built_hashes(
        (dest / "requirements.txt").read_text(),
        (dest / ".wheels" / wheelhouse.BUILT_LOCK).read_text()))
    names = [e.removeprefix(prefix) for e in plan.entries]
    copies = [f"COPY {n}/ {n}/" for n in names if not n.endswith(".py")]
    files = [n for n in names if n.endswith(".py")]
    copies += [f"COPY {' '.join(files)} ./"] if files else []
    text = SEED_DOCKERFILE.read_text().replace("COPY app/ app/", "\n".join(copies))
    (dest / "Dockerfile").write_text(text.replace("app.wsgi:app", f"'{plan.app.wsgi}'"))
    (dest / ".dockerignore").write_text("Dockerfile\n.dockerignore\n")
    return plan.app.wsgi


def with_built_hashes(lock: str, built: str) -> str:
    """``lock`` with each pin of ``built`` (built.lock) also accepting its built wheel's hash."""
    import re

    for name, digest in re.findall(r"(?m)^([A-Za-z0-9][\w.-]*)==\S+.*--hash=sha256:(\w+)", built):
        pin = re.compile(rf"(?im)^({re.escape(name)}==\S+[^\n]*?)(\s*\\?\n)")
        lock = pin.sub(rf"\1 --hash=sha256:{digest}\2", lock, count=1)
    return lock


def measure(ctx: Ctx, slim: str, samples: Sequence[str] = SAMPLES) -> list[InitSizeRow]:
    """Build the three images of every sample; one row each."""
    ours_base = pipeline.python_image(settings.load(ROOT))
    rows = []
    for sample in samples:
        project = ctx.tmp / f"init-{sample}"
        plan = prepare(sample, project)
        images = {}
        for base_name, python_image in (("ours", ""), ("slim", slim)):
            repo = f"imagegate/bench-init-{sample}-{base_name}"
            config = settings.load(project, overrides={
                "image_repo": repo, "python_image": python_image, "builder": ctx.builder})
            pipeline.build_app(ctx.cli, config, ctx.session, log=lambda _: None)
            images[base_name] = f"{repo}:local"
        seed_dir = ctx.tmp / f"seed-{sample}"
        wsgi = seed_context(project, seed_dir, plan, slim, ctx)
        seed_ref = f"imagegate/bench-init-{sample}-seed:local"
        build.build(ctx.cli, context=seed_dir, dockerfile=seed_dir / "Dockerfile", tags=[seed_ref],
                    buildargs={"PYTHON_IMAGE": slim},
                    labels={BENCH_LABEL: f"init-{sample}-seed", "imagegate.project": seed_ref},
                    progress=lambda _: None, builder=ctx.builder, network="none", pull="never")
        rows.append(InitSizeRow(
            sample, wsgi, image_size(ctx.cli, images["ours"]), image_size(ctx.cli, images["slim"]),
            image_size(ctx.cli, seed_ref), wheels_layer(ctx.cli, seed_ref),
            image_size(ctx.cli, ours_base), image_size(ctx.cli, slim)))
        ctx.log(f"{sample}: init {mb(rows[-1].init_ours):.1f} MB, seed on slim "
                f"{mb(rows[-1].seed_slim):.1f} MB")
    return rows


def wheels_layer(cli: Any, ref: str) -> int:
    """Bytes of the image's layers that COPY the wheelhouse to /wheels (either builder's
    history wording: ``COPY dir:… in /wheels/`` or ``COPY .wheels/ /wheels/ # buildkit``)."""
    return sum(int(h.get("Size") or 0) for h in cli.images.get(ref).history()
               if "COPY" in (h.get("CreatedBy") or "") and "/wheels/" in h["CreatedBy"])


def remove_images(cli: Any, samples: Sequence[str] = SAMPLES) -> int:
    """Remove every image this module tagged; returns how many tags went."""
    removed = 0
    for sample in samples:
        for kind in ("ours", "slim", "seed"):
            try:
                cli.images.remove(f"imagegate/bench-init-{sample}-{kind}:local")
                removed += 1
            except Exception:  # not built, or already gone
                pass
    return removed


def table(rows: Sequence[InitSizeRow]) -> str:
    """The Markdown section for these rows (the template RESULTS.md includes)."""
    from bench.render import render_section
    from bench.results import plain

    return render_section("initsizes", rows=plain(list(rows)))


def main(argv: Sequence[str] | None = None) -> int:
    """Build, print the table, clean up."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--markdown", action="store_true", help="print the RESULTS.md section only")
    p.add_argument("--keep", action="store_true", help="keep the images built")
    args = p.parse_args(argv)
    from testsupport.standins import ensure_python_slim

    def log(line: str) -> None:
        if not args.markdown:
            print(f"initsizes: {line}", flush=True)

    ensure_engine()
    cli = client(timeout=900)
    session = new_session_id()
    with tempfile.TemporaryDirectory(prefix="imagegate-initsizes-") as tmp:
        ctx = Ctx(cli, session, Path(tmp), log=log)
        try:
            slim = ensure_python_slim(log=log)
            pipeline.ensure_bases(settings.load(ROOT), log=lambda _: None)
            with redirect_stdout(StringIO()) if args.markdown else nullcontext():
                rows = measure(ctx, slim)
        finally:
            cleanup_session(session, cli)
            if not args.keep:
                remove_images(cli)
    print(table(rows), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
