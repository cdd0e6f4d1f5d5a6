"""`imagegate gate|lint|base|build|engine|prune` — the gate's command line.

Exit codes: 0 passed, 1 a check or stage failed, 2 usage or environment error (no engine, bad
config, missing file). One clear line per failure; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from typing import Any

from imagegate import __version__
from imagegate.config import settings as settings_mod
from imagegate.errors import ImagegateError


def parser() -> argparse.ArgumentParser:
    """The argument parser (flags override [tool.imagegate] and IMAGEGATE_* env)."""
    p = argparse.ArgumentParser(prog="imagegate", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"imagegate {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def project_flags(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--project-dir", default=".", metavar="DIR",
                        help="project to gate (reads its pyproject's [tool.imagegate])")
        group = sp.add_argument_group("settings (override [tool.imagegate] and IMAGEGATE_*)")
        gate_only = frozenset() if sp.prog.split()[-1] == "gate" else frozenset({"report_dir"})
        settings_mod.add_flags(group.add_argument, "--", skip=gate_only)

    gate = sub.add_parser("gate", help="lint → bases → build → image → stack [→ push]")
    project_flags(gate)
    gate.add_argument("--push", metavar="REGISTRY/REPO:TAG", default="",
                      help="push the tested image here when every stage passed")
    gate.add_argument("--image", metavar="REF", help="gate this built image (skip the build)")
    gate.add_argument("--quiet", "-q", action="store_true", help="stage verdicts only (CI logs)")
    gate.add_argument("--pytest-arg", action="append", default=[], metavar="ARG",
                      help="extra argument for the pytest stages (repeatable)")

    lint = sub.add_parser("lint", help="hadolint plus the checks it misses")
    project_flags(lint)
    base = sub.add_parser("base", help="make the local base images from Debian packages")
    base.add_argument("kind", nargs="?", default="all",
                      choices=["all", "python", "redis", "python-build"])
    base.add_argument("--force", action="store_true", help="rebuild even when up to date")
    base.add_argument("--project-dir", default=".", metavar="DIR",
                      help="the project whose extra_ca_certs the bases' CA bundle gets")
    build = sub.add_parser("build", help="wheelhouse + hermetic build, tagged <repo>:local")
    project_flags(build)
    engine = sub.add_parser("engine", help="start/stop a local Docker Engine")
    engine.add_argument("action", choices=["up", "down", "status"])
    prune = sub.add_parser("prune", help="remove leftovers of dead runs (and labelled images)")
    prune.add_argument("--images", action="store_true", help="also remove labelled images")
    init = sub.add_parser("init", help="write a hardened Docker setup for an existing Flask project")
    init.add_argument("--project-dir", default=".", metavar="DIR", help="the Flask project")
    init.add_argument("--force", action="store_true", help="overwrite files that exist")
    init.add_argument("--dry-run", action="store_true", help="print what would be written, as a diff")
    init.add_argument("--ci", choices=("github", "gitlab"), default="github",
                      help="the CI file to write: a GitHub workflow (default) or .gitlab-ci.yml")
    checks = sub.add_parser("checks", help="list every check: id, stage, severity per profile")
    checks.add_argument("--markdown", action="store_true", help="as the README's Markdown table")
    matrix = sub.add_parser("matrix", help="the images a repository holds, as a CI matrix (JSON)")
    matrix.add_argument("--project-dir", default=".", metavar="DIR",
                        help="a project, or a repository of projects (searched 4 levels deep)")
    explain = sub.add_parser("explain", help="print a check's page: what it proves, why, the fix")
    explain.add_argument("check_id", metavar="ID", help="a check id (IG-…, DL…, SC…)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args = parser().parse_args(argv)
    try:
        return int(COMMANDS[args.command](args))
    except ImagegateError as exc:
        if args.debug:
            raise
        print(f"imagegate {args.command}: {exc.message}", file=sys.stderr)
        if exc.detail and args.command != "gate":
            print(_indent(exc.detail), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"imagegate {args.command}: interrupted", file=sys.stderr)
        return 130


def _settings(args: argparse.Namespace) -> settings_mod.Settings:
    """Resolve settings for a project command from flags over config (discovery comes later)."""
    overrides: dict[str, Any] = {"image": getattr(args, "image", None),
                                 **settings_mod.flag_overrides(vars(args))}
    return settings_mod.load(args.project_dir, overrides)


def cmd_gate(args: argparse.Namespace) -> int:
    """Run the gate and print where the reports are."""
    from imagegate.gate import Gate, GateOptions, check_push_ref

    if args.push:
        check_push_ref(args.push)
    s = _settings(args)
    # CI cancelling a job sends SIGTERM: unwind like Ctrl-C, so the stack the gate brought up
    # goes down and its pytest runs clean up (they turn SIGTERM into the same)
    from imagegate.proc import interrupt

    signal.signal(signal.SIGTERM, interrupt)
    result = Gate(s, GateOptions(push=args.push, quiet=args.quiet,
                                 pytest_args=tuple(args.pytest_arg))).run()
    verdict = "PASSED" if result.exit_code == 0 else "FAILED"
    print(f"imagegate gate: {verdict} in {result.seconds:.1f}s"
          + (f", pushed {result.pushed['ref']}@{result.pushed['digest']}" if result.pushed else ""))
    return result.exit_code


def cmd_lint(args: argparse.Namespace) -> int:
    """Lint the Dockerfile; one line per finding; exit 1 when one reaches ``fail_on``."""
    from imagegate.gate import lint_only
    from imagegate.results.verdict import fails

    s = _settings(args)
    found = lint_only(s)
    failing = [f for f in found if fails(f, s.fail_on)]
    for f in found:
        state = "ignored" if f.skipped else f.severity
        print(f"{f.where}: {f.check_id} ({state}): {f.skipped or f.message}")
    print(f"imagegate lint: {len(failing)} failing, {len(found) - len(failing)} other finding(s)"
          if found else "imagegate lint: clean")
    return 1 if failing else 0


def cmd_init(args: argparse.Namespace) -> int:
    """Write the Docker setup (see :mod:`imagegate.scaffold`)."""
    from imagegate import scaffold as init

    return init.run(args.project_dir, force=args.force, dry_run=args.dry_run, ci=args.ci)


def cmd_checks(args: argparse.Namespace) -> int:
    """Print the check catalogue."""
    from imagegate.checks import catalogue

    print(catalogue.markdown() if args.markdown else catalogue.text())
    return 0


def cmd_matrix(args: argparse.Namespace) -> int:
    """Print the images to gate as a CI matrix: ``{"include": [{project, service, …}]}``."""
    import json

    from imagegate.gate.matrix import entries

    print(json.dumps({"include": entries(args.project_dir)}, separators=(",", ":")))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """Print one check's page (docs/checks/<ID>.md)."""
    from imagegate.docs import explain

    print(explain(args.check_id))
    return 0


def cmd_base(args: argparse.Namespace) -> int:
    """Make the local base images."""
    from imagegate.build import base
    from imagegate.engine import ensure_engine

    ensure_engine()
    s = settings_mod.load(args.project_dir)  # its extra_ca_certs go into the bundle
    extra_ca = tuple(s.path(p) for p in s.extra_ca_certs)
    for recipe in base.recipes(args.kind):
        result = base.ensure_base(recipe, force=args.force, extra_ca=extra_ca)
        state = "built" if result.built else "up to date"
        print(f"{result.ref}: {state} ({result.packages} packages, {result.size / 1e6:.1f} MB, "
              f"digest {result.digest})")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    """Build the project's image hermetically."""
    from imagegate.build import pipeline
    from imagegate.engine import client, ensure_engine, new_session_id

    s = _settings(args)
    ensure_engine()
    pipeline.ensure_bases(s)
    result = pipeline.build_app(client(), s, new_session_id())
    size = client().images.get(result.image_id).attrs["Size"]
    print(f"{result.image_id} {s.repo}:local {size / 1e6:.1f} MB")
    return 0


def cmd_engine(args: argparse.Namespace) -> int:
    """Start, stop or report the local engine."""
    from imagegate.engine import engine_answers, ensure_engine, stop_engine

    if args.action == "up":
        status = ensure_engine()
        how = f"started dockerd (pid {status.pid})" if status.started else "already answering"
        print(f"engine {status.version}: {how}")
    elif args.action == "down":
        pid = stop_engine()
        print(f"stopped dockerd pid {pid}" if pid else "no dockerd started by imagegate is running")
    else:
        up = engine_answers()
        print("engine answers" if up else "no engine answers")
        return 0 if up else 2
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    """Remove leftovers of dead sessions (and labelled images)."""
    from imagegate.gate import prune

    prune(images=args.images)
    return 0


COMMANDS = {"gate": cmd_gate, "lint": cmd_lint, "base": cmd_base, "build": cmd_build,
            "engine": cmd_engine, "prune": cmd_prune, "checks": cmd_checks,
            "explain": cmd_explain, "matrix": cmd_matrix,
            "init": cmd_init}


def _indent(text: str) -> str:
    """Indent a detail block under its one-line message."""
    return "\n".join(f"  | {line}" for line in text.strip().splitlines()[-20:])


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
