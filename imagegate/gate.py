"""The gate: lint → bases → build → image → stack → push, stopping at the first red stage.

The image and stack stages (and lint) run *through pytest* with the plugin, so every check is a
test with a stable id whichever face ran it; this module only sequences, times and reports.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import pipeline, report
from . import settings as settings_mod
from .engine import client, ensure_engine, new_session_id
from .errors import ImagegateError, PushFailed, UsageError
from .proc import run
from .report import GateResult, StageResult
from .settings import Settings

#: pytest exit codes that mean "the suite could not run", not "a check failed".
PYTEST_USAGE = {3: "internal error", 4: "usage error", 5: "no tests collected"}
GENERIC = {"lint": "imagegate.checks.test_lint", "image": "imagegate.checks.test_image",
           "stack": "imagegate.checks.test_stack"}
STAGE_TIMEOUT = {"lint": 600, "image": 900, "stack": 1500}


@dataclass
class GateOptions:
    """How this run behaves (not what it gates: that is :class:`Settings`)."""

    push: str = ""
    quiet: bool = False
    session: str = ""
    pytest_args: tuple[str, ...] = ()


class Gate:
    """One gate run over one project; ``run()`` returns the :class:`GateResult` it reported."""

    def __init__(self, settings: Settings, options: GateOptions,
                 echo: Callable[[str], None] = print) -> None:
        self.s = settings
        self.o = options
        self.echo = echo
        self.session = options.session or new_session_id()
        self.out_dir = settings.path(settings.report_dir)
        self.result = GateResult(project=str(settings.project_dir))
        self.image_id = settings.image
        self.cli: Any = None

    # -- orchestration ------------------------------------------------------------------------

    def run(self) -> GateResult:
        """Run every stage in order; the first red one stops the gate. Reports are always written."""
        started = time.monotonic()
        stages: list[tuple[str, Callable[[StageResult], None]]] = [
            ("preflight", self._preflight), ("lint", self._pytest_stage("lint")),
            ("bases", self._bases), ("build", self._build),
            ("image", self._pytest_stage("image")), ("stack", self._pytest_stage("stack")),
        ]
        if self.o.push:
            stages.append(("push", self._push))
        self.result.stages = [StageResult(name) for name, _ in stages]
        try:
            for (_, action), stage in zip(stages, self.result.stages, strict=True):
                if not self._stage(stage, action):
                    break
        finally:
            self.result.seconds = time.monotonic() - started
            failed = [s for s in self.result.stages if s.status in ("failed", "error")]
            for stage in self.result.stages:
                if stage.status == "pending":
                    stage.status = "skipped"
            self.result.status = "failed" if failed else "passed"
            self.result.exit_code = max((2 if s.status == "error" else 1 for s in failed),
                                        default=0)
            paths = report.write_all(self.result, self.out_dir)
            self._say(f"report: {paths['markdown']} {paths['junit']} {paths['json']}", force=True)
        return self.result

    def _stage(self, stage: StageResult, action: Callable[[StageResult], None]) -> bool:
        """Run one stage, time it, classify its failure; True when it passed."""
        self._say(f"▶ {stage.name}")
        started = time.monotonic()
        try:
            action(stage)
            if stage.status == "pending":
                stage.status = "passed"
        except ImagegateError as exc:
            stage.status = "error" if exc.exit_code == 2 else "failed"
            stage.message, stage.detail = exc.message, exc.detail
        stage.seconds = time.monotonic() - started
        ok = stage.status == "passed"
        counts = ", ".join(f"{n} {k}" for k, n in sorted(stage.counts().items()))
        line = f"{'✓' if ok else '✗'} {stage.name} {stage.status} in {stage.seconds:.1f}s"
        self._say(line + (f" ({counts})" if counts else ""), force=True)
        if not ok:
            for check in stage.checks:
                if check.outcome in ("failed", "error"):
                    self._say(f"    {check.id}: {check.message}", force=True)
            if stage.message:
                self._say(f"    {stage.message}", force=True)
            if stage.detail and not stage.checks:
                tail = stage.detail.strip().splitlines()[-15:]
                self._say("\n".join(f"    | {t}" for t in tail), force=True)
        return ok

    def _say(self, line: str, *, force: bool = False) -> None:
        """Progress output; ``--quiet`` keeps only stage verdicts and the report line."""
        if force or not self.o.quiet:
            self.echo(line)

    # -- stages ------------------------------------------------------------------------------

    def _preflight(self, stage: StageResult) -> None:
        """Files exist, compose YAML parses, an engine answers (or is started)."""
        dockerfile = self.s.path(self.s.dockerfile)
        if not dockerfile.is_file():
            raise UsageError(f"{dockerfile}: Dockerfile not found")
        compose = self.s.path(self.s.compose_file)
        if not compose.is_file():
            raise UsageError(f"{compose}: compose file not found")
        ensure_engine()
        self.cli = client()
        from . import stack

        stack.validate_compose([compose], project_dir=self.s.project_dir)

    def _bases(self, stage: StageResult) -> None:
        """Make (or find) the local base images."""
        pipeline.ensure_bases(self.s, log=self._say)

    def _build(self, stage: StageResult) -> None:
        """Wheelhouse and hermetic build; records the image's size and biggest layers."""
        if not self.image_id:
            built = pipeline.build_app(self.cli, self.s, self.session, log=self._say)
            self.image_id = built.image_id
        image = self.cli.images.get(self.image_id)
        layers = [h for h in image.history() if h.get("Size", 0) > 0]
        top = sorted(layers, key=lambda h: h["Size"], reverse=True)[:5]
        self.result.image = {
            "id": image.id, "tags": ", ".join(image.tags), "size": image.attrs["Size"],
            "budget_mb": self.s.size_budget_mb, "layers": len(layers),
            "layer_budget": self.s.layer_budget,
            "top_layers": [
                {"size": h["Size"], "created_by": h["CreatedBy"][-120:] or "(imported base layer)"}
                for h in top
            ],
        }

    def _pytest_stage(self, name: str) -> Callable[[StageResult], None]:
        """A stage that is a pytest run of the project's suite or the generic checks."""
        def action(stage: StageResult) -> None:
            own = {"lint": self.s.unit_tests, "image": self.s.image_tests,
                   "stack": self.s.stack_tests}[name]
            targets = [str(self.s.path(t)) for t in own] or ["--pyargs", GENERIC[name]]
            junit = self.out_dir / f"junit-{name}.xml"
            self.out_dir.mkdir(parents=True, exist_ok=True)
            junit.unlink(missing_ok=True)
            cmd = [sys.executable, "-m", "pytest", *targets, f"--junitxml={junit}",
                   "-p", "no:cacheprovider", "--rootdir", str(self.s.project_dir),
                   "--imagegate-project-dir", str(self.s.project_dir),
                   "--imagegate-session", self.session, "-o", "junit_family=xunit2",
                   "-q" if self.o.quiet else "-v", "--color=no", *self.o.pytest_args]
            if self.image_id:
                cmd += ["--imagegate-image", self.image_id]
            if self.s.gate_select and own:
                cmd += ["-m", self.s.gate_select]
            rc, tail = self._stream(cmd, timeout=STAGE_TIMEOUT[name])
            stage.junit = str(junit)
            stage.checks = report.read_junit(junit)
            if rc in PYTEST_USAGE or (rc != 0 and not stage.checks):
                stage.status = "error"
                stage.message = (f"pytest {PYTEST_USAGE.get(rc, f'exited {rc}')} in the {name} "
                                 f"stage: {tail[-1] if tail else ''}")
                stage.detail = "\n".join(tail)
            elif rc != 0:
                stage.status = "failed"
        return action

    def _stream(self, cmd: list[str], timeout: float) -> tuple[int, list[str]]:
        """Run pytest, echoing its lines (unless quiet); return its exit code and output tail."""
        tail: list[str] = []
        env = {**os.environ, **settings_mod.flag_env(self.s)}  # the gate's flags, every key
        proc = subprocess.Popen(cmd, cwd=self.s.project_dir, stdout=subprocess.PIPE, env=env,
                                stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.rstrip("\n")
                tail = [*tail[-40:], line]
                self._say(f"    {line}")
                if time.monotonic() > deadline:
                    proc.terminate()  # the plugin turns SIGTERM into an orderly cleanup
                    tail.append(f"stage timed out after {timeout:g}s")
                    break
            return proc.wait(timeout=60), tail
        except BaseException:
            proc.terminate()
            proc.wait(timeout=60)
            raise

    def _push(self, stage: StageResult) -> None:
        """Tag the tested image as REGISTRY/REPO:TAG and push it; record the registry digest."""
        ref = self.o.push
        repo, _, tag = ref.rpartition(":")
        if not repo or "/" in tag:
            repo, tag = ref, "latest"
        image = self.cli.images.get(self.image_id)
        image.tag(repo, tag)
        digest = ""
        for chunk in self.cli.api.push(repo, tag=tag, stream=True, decode=True):
            if "error" in chunk:
                raise PushFailed(f"push {ref}: {chunk['error']}")
            digest = (chunk.get("aux") or {}).get("Digest", digest)
        if not digest:
            raise PushFailed(f"push {ref}: the registry returned no digest")
        self.result.pushed = {"ref": f"{repo}:{tag}", "digest": digest}
        self._say(f"pushed {repo}:{tag}@{digest}")


def check_push_ref(ref: str) -> None:
    """A push target must name a registry host: REGISTRY/REPO[:TAG]."""
    host = ref.split("/", 1)[0]
    if "/" not in ref or (not any(c in host for c in ".:") and host != "localhost"):
        raise UsageError(f"--push {ref}: expected REGISTRY/REPO:TAG, e.g. 127.0.0.1:5000/app:1.0")


def lint_only(settings: Settings) -> list[Any]:
    """The Dockerfile lint findings that failed (for `imagegate lint`)."""
    from . import lint

    config = settings.project_dir / ".hadolint.yaml"
    findings = lint.lint(settings.path(settings.dockerfile),
                         config=config if config.is_file() else None, ignore=settings.ignore)
    return [f for f in findings if not f.ok]


def prune(*, images: bool, echo: Callable[[str], None] = print) -> None:
    """Remove objects of dead sessions, and with ``images`` every image the harness labelled."""
    from .engine import IMAGE_LABEL, cleanup_session, stale_sessions

    cli = client()
    for session in sorted(stale_sessions(cli)):
        echo(f"session {session}: removed {cleanup_session(session, cli)}")
    if images:
        for image in cli.images.list(filters={"label": f"{IMAGE_LABEL}=true"}):
            try:
                cli.images.remove(image.id, force=True)
                echo(f"image {image.short_id} {image.tags}: removed")
            except Exception as exc:
                echo(f"image {image.short_id}: kept ({str(exc)[:80]})")
    run(["docker", "image", "prune", "-f", "--filter", f"label={IMAGE_LABEL}=true"],
        timeout=120, check=False)

