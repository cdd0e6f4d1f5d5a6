"""The gate: lint → bases → build → image → stack → push, stopping at the first red stage.

The image and stack stages (and lint) run *through pytest* with the plugin, so every check is a
test with a stable id whichever face ran it; this module only sequences, times and reports.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagegate import build
from imagegate.build import pipeline
from imagegate.checks.stack import built
from imagegate.config import settings as settings_mod
from imagegate.config.settings import Settings
from imagegate.engine import (
    PID_LABEL,
    client,
    ensure_engine,
    new_session_id,
    session_labels,
    write_atomic,
)
from imagegate.errors import BuildFailed, ImagegateError, UsageError
from imagegate.facts.policy import created_by
from imagegate.proc import run
from imagegate.results import report, verdict
from imagegate.results.findings import Finding
from imagegate.results.report import GateResult, StageResult

#: pytest exit codes that mean "the suite could not run", not "a check failed".
PYTEST_USAGE = {2: "interrupted", 3: "internal error", 4: "usage error", 5: "no tests collected"}
GENERIC = {"lint": "imagegate.suites.test_lint", "image": "imagegate.suites.test_image",
           "stack": "imagegate.suites.test_stack"}
STAGE_TIMEOUT = {"lint": 600, "image": 900, "stack": 1500}
GENERIC_INI = Path(__file__).parent.parent / "data" / "pytest-generic.ini"


@dataclass
class GateOptions:
    """How this run behaves (not what it gates: that is :class:`Settings`)."""

    push: str = ""
    quiet: bool = False
    session: str = ""
    pytest_args: tuple[str, ...] = ()


class Gate:
    """One gate run over one project; ``run()`` returns the :class:`GateResult` it reported.

    Every stage contributes :class:`~imagegate.results.findings.Finding`s; the verdict is ``fail_on``
    applied to them. A pytest exit code only says whether a stage could run at all.
    """

    def __init__(self, settings: Settings, options: GateOptions,
                 echo: Callable[[str], None] = print) -> None:
        self.settings = settings
        self.options = options
        self.echo = echo
        self.session = options.session or new_session_id()
        self.out_dir = settings.path(settings.report_dir)
        self.result = GateResult(project=str(settings.project_dir), fail_on=settings.fail_on,
                                 profile=settings.profile)
        self.image_id = settings.image
        self.cli: Any = None
        self.settings_file = self.out_dir / "settings.json"
        #: The compose project as the gate reads it (None without a compose file).
        self.model: Any = None
        #: The other services compose builds, built by the build stage ({service: result}).
        self.built_services: dict[str, Any] = {}
        #: Set when a red stage stops the stages still running beside it (see :meth:`run`).
        self._stopped = threading.Event()
        self._stop_reason = ""
        self._running: set[subprocess.Popen[str]] = set()
        self._lock = threading.Lock()

    # -- orchestration ------------------------------------------------------------------------

    def run(self) -> GateResult:
        """Run the stages; a red stage stops the ones after it. Reports are always written.

        Stages that need nothing of each other run side by side: the lint (it reads only the
        Dockerfile) beside the bases, the build, and then the image and the stack (both need
        only the built image): with a compose file their generic checks are one pytest session
        sharing one stack, the project's own suites beside it; without one, the image alone.
        The image and stack stages start as soon as the build is done, the lint still running:
        a red lint stops them (their pytest runs are terminated, their findings dropped) and
        they are reported skipped, as if they had waited. Each stage still has its own status,
        time and findings.
        """
        started = time.monotonic()
        actions: dict[str, Callable[[StageResult], None]] = {
            "preflight": self._preflight, "lint": self._pytest_stage("lint"),
            "bases": self._bases, "build": self._build,
            "image": self._pytest_stage("image"), "stack": self._pytest_stage("stack"),
        }
        if self.options.push:
            actions["push"] = self._push
        self.result.stages = [StageResult(name) for name in actions]
        by_name = {stage.name: stage for stage in self.result.stages}

        def lint() -> bool:
            ok = self._stage(by_name["lint"], actions["lint"])
            if not ok:
                self._stop_running("lint failed")
            return ok

        def build_and_judge() -> bool:
            for name in ("bases", "build"):
                if not self._stage(by_name[name], actions[name]):
                    return False
            if self._stopped.is_set():
                return False
            if self._one_session():
                # one pytest session judges the image and the stack: one compose project
                combined = self._pytest_stage("image", also=("stack",))
                return self._stage(by_name["image"], combined, also=[by_name["stack"]])
            return self._wave([[(by_name[name], actions[name])] for name in ("image", "stack")])

        try:
            if self._stage(by_name["preflight"], actions["preflight"]):
                with ThreadPoolExecutor(max_workers=2, thread_name_prefix="gate") as pool:
                    lanes = [pool.submit(lint), pool.submit(build_and_judge)]
                    try:
                        ok = all([lane.result() for lane in lanes])
                    except BaseException:  # Ctrl-C: the pytest runs clean up and end first
                        self._stop_running("interrupted")
                        raise
                if ok and self.options.push:
                    self._stage(by_name["push"], actions["push"])
        finally:
            self.result.seconds = time.monotonic() - started
            failed = [s for s in self.result.stages if s.status in ("failed", "error")]
            for stage in self.result.stages:
                if stage.status == "pending":
                    stage.status = "skipped"
            self.result.status = "failed" if failed else "passed"
            self.result.exit_code = max((2 if s.status == "error" else 1 for s in failed),
                                        default=0)
            self.result.settings = settings_mod.describe(self.settings)
            self._fold()
            paths = report.write_all(self.result, self.out_dir, project_dir=self.settings.project_dir,
                                     files=self._report_files())
            self._say("report: " + " ".join(str(p) for p in paths.values()), force=True)
        return self.result

    def _fold(self) -> None:
        """One fix, one finding (:func:`verdict.fold`) across the stages, before the reports;
        says on the console what was folded into what."""
        folded = verdict.fold(self.result.findings)
        mapping = {id(old): new for old, new in zip(self.result.findings, folded, strict=True)}
        self.result.findings = folded
        for stage in self.result.stages:
            stage.findings = [mapping.get(id(f), f) for f in stage.findings]
        merged: dict[str, list[str]] = {}
        for f in folded:
            if f.skipped.startswith("folded into "):
                merged.setdefault(f.skipped.split(":")[0].removeprefix("folded into "),
                                  []).append(f.check_id)
        for lead, others in merged.items():
            self._say(f"one fix, one finding: {', '.join(dict.fromkeys(others))} reported as "
                      f"{lead} (the strongest evidence)", force=True)

    def _report_files(self) -> dict[str, Path]:
        """The project files report locations point into (SARIF)."""
        files = {}
        if self.settings.dockerfile:
            files["dockerfile"] = self.settings.path(self.settings.dockerfile)
        if self.settings.compose_file:
            files["compose"] = self.settings.path(self.settings.compose_file)
        return files

    def _wave(self, lanes: list[list[tuple[StageResult, Callable[[StageResult], None]]]]) -> bool:
        """Run each lane's stages in order, the lanes side by side; True when all passed."""
        def lane_ok(lane: list[tuple[StageResult, Callable[[StageResult], None]]]) -> bool:
            return all(self._stage(stage, action) for stage, action in lane)

        if len(lanes) == 1:
            return lane_ok(lanes[0])
        with ThreadPoolExecutor(max_workers=len(lanes), thread_name_prefix="gate") as pool:
            results = list(pool.map(lane_ok, lanes))
        return all(results)

    def _one_session(self) -> bool:
        """True when the image and stack stages run as one pytest session: the project has a
        compose file with a web service, so the run checks judge the stack's web container."""
        return bool(self.settings.compose_file and self.settings.web_service)

    def _stage(self, stage: StageResult, action: Callable[[StageResult], None],
               also: list[StageResult] | None = None) -> bool:
        """Run one stage, time it, judge its findings; True when it passed. ``also``: stages
        the same action runs (each gets its time, its error and its own verdict)."""
        group = [stage, *(also or [])]
        for one in group:
            self._say(f"▶ {one.name}")
        started = time.monotonic()
        try:
            action(stage)
        except _Stopped:
            for one in group:
                one.seconds = time.monotonic() - started
                one.message = f"stopped: {self._stop_reason}"
                self._say(f"- {one.name} {one.message}", force=True)
            return False  # still pending: reported skipped, as if it had not started
        except ImagegateError as exc:
            for one in group:
                one.status = "error" if exc.exit_code == 2 else "failed"
                one.message, one.detail = exc.message, exc.detail
        for one in group:
            one.seconds = time.monotonic() - started
        return all([self._judged(one) for one in group])

    def _stop_running(self, reason: str) -> None:
        """Stop the pytest runs still going beside a red stage (SIGTERM: the plugin cleans up);
        a stage whose runs were stopped is not judged (:class:`_Stopped`)."""
        with self._lock:
            if not self._stopped.is_set():
                self._stop_reason = reason
                self._stopped.set()
            for proc in self._running:
                proc.terminate()

    def _judged(self, stage: StageResult) -> bool:
        """Settle a finished stage's status from its findings and say it; True when it passed."""
        if stage.status == "pending":
            failing = [f for f in stage.findings if verdict.fails(f, self.settings.fail_on)]
            stage.status = "failed" if failing else "passed"
        ok = stage.status in ("passed", "skipped")
        counts = ", ".join(f"{n} {k}" for k, n in stage.counts(self.settings.fail_on).items())
        mark = {"passed": "✓", "skipped": "-"}.get(stage.status, "✗")
        line = f"{mark} {stage.name} {stage.status} in {stage.seconds:.1f}s"
        self._say(line + (f" ({counts})" if counts else ""), force=True)
        groups = verdict.by_outcome(stage.findings, self.settings.fail_on)
        for f in groups["failed"]:
            self._say(f"    ✗ {f.severity} {f}", force=True)
        for f in groups["warning"] + groups["info"]:
            self._say(f"    ⚠ {f.severity} {f}", force=True)
        if stage.message and stage.message not in {f.message for f in stage.findings}:
            self._say(f"    {stage.message}", force=True)  # not again when a finding said it
        if not ok and stage.detail and not groups["failed"]:
            tail = stage.detail.strip().splitlines()[-15:]
            self._say("\n".join(f"    | {t}" for t in tail), force=True)
        return ok

    def _say(self, line: str, *, force: bool = False) -> None:
        """Progress output; ``--quiet`` keeps only stage verdicts, findings and the report line."""
        if force or not self.options.quiet:
            self.echo(line)

    # -- stages ------------------------------------------------------------------------------

    def _preflight(self, stage: StageResult) -> None:
        """Discover what was not configured, check files, start/find the engine; write the
        resolved settings the pytest stages read."""
        from imagegate.config.project import discover_settings, web_port

        self.settings, found = discover_settings(self.settings)
        for line in settings_mod.describe(self.settings):
            self._say(f"    {line}", force=True)
        if self.settings.compose_file:
            # discovery's one compose model; its header lines the settings do not already say
            self.model = found.model
            for line in found.describe():
                if line.startswith(("gated services:", "also built:", "interpolation:")):
                    self._say(f"    {line}", force=True)
        dockerfile = self.settings.path(self.settings.dockerfile)
        if not dockerfile.is_file():
            raise UsageError(f"{dockerfile}: Dockerfile not found")
        web_port(self.settings)  # the image and stack stages run the web service: its port must be known
        ensure_engine()
        self.cli = client()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.settings_file, json.dumps(settings_mod.dump(self.settings), indent=2) + "\n")

    def _bases(self, stage: StageResult) -> None:
        """Make (or find) the local base images the Dockerfile names."""
        if not pipeline.ensure_bases(self.settings, log=self._say):
            stage.status = "skipped"
            stage.message = "the Dockerfile names no imagegate base"

    def _build(self, stage: StageResult) -> None:
        """Build the image (BuildKit or classic, as configured) and, side by side, every other
        service compose builds; record size and biggest layers of the gated one."""
        where = self.settings.dockerfile
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="build") as pool:
            others = pool.submit(self._build_others) if self.model is not None else None
            if not self.image_id:
                try:
                    result = pipeline.build_app(self.cli, self.settings, self.session,
                                                log=self._say)
                except BuildFailed as exc:
                    self._add(stage, built(exc, where))
                    raise
                self.image_id = result.image_id
                self._add(stage, built(result, where))
        try:
            services = others.result() if others is not None else {}
        except BuildFailed as exc:
            self._add(stage, built(exc, where))
            raise
        self.built_services = services
        for svc, result in services.items():
            self._add(stage, built(result, f"{self.model.files[0].name}:service {svc}", svc))
        self._record_image()

    def _add(self, stage: StageResult, finding: Finding) -> None:
        """Record ``finding`` in the stage and in the gate's result."""
        stage.findings.append(finding)
        self.result.findings.append(finding)

    def _build_others(self) -> dict[str, Any]:
        """The other services' images (:func:`pipeline.build_services`)."""
        from imagegate.pytest_plugin.stack import gated_of

        return pipeline.build_services(self.cli, self.settings, self.model,
                                       gated_of(self.settings, self.model), log=self._say)

    def _record_image(self) -> None:
        """Size, layers and the biggest layers of the gated image; its id in the settings file."""
        image = self.cli.images.get(self.image_id)
        layers = [h for h in image.history() if h.get("Size", 0) > 0]
        top = sorted(layers, key=lambda h: h["Size"], reverse=True)[:5]
        self.result.image = {
            "id": image.id, "tags": ", ".join(image.tags), "size": image.attrs["Size"],
            "budget_mb": self.settings.size_budget_mb, "layers": len(layers),
            "layer_budget": self.settings.layer_budget,
            "top_layers": [
                {"size": h["Size"], "created_by": created_by(h, width=100)}
                for h in top
            ],
        }
        with contextlib.suppress(ImagegateError):  # the settings file now names the image
            data = settings_mod.dump(self.settings)
            data["image"] = self.image_id
            data["sources"] = {**data["sources"], "image": "tested by this gate"}
            # atomically: the lint stage's pytest reads this file while the build runs beside it
            write_atomic(self.settings_file, json.dumps(data, indent=2) + "\n")

    def _pytest_stage(self, name: str, also: tuple[str, ...] = ()) -> Callable[[StageResult], None]:
        """A stage made of pytest runs: the generic checks (isolated from the project's pytest
        configuration), and beside them the project's own suite for that stage (under its own).

        ``also``: more stages whose generic checks run in the same pytest session (the image and
        the stack: one compose project serves both); each finding goes to the stage its test is
        marked with, and each stage's own suite is a run of its own."""
        names = (name, *also)

        def action(stage: StageResult) -> None:
            by_name = {s.name: s for s in self.result.stages}
            if name == "stack" and not self.settings.compose_file:
                stage.status = "skipped"
                from imagegate.model.compose import no_compose_file

                stage.message = f"{no_compose_file()}: stack checks skipped; set compose_file"
                return
            runs: list[tuple[str, str, list[str]]] = [
                ("+".join(names), "generic", generic_args(*names))]
            select = ["-m", self.settings.gate_select] if self.settings.gate_select else []
            for one_stage in names:
                own = {"lint": self.settings.unit_tests, "image": self.settings.image_tests,
                       "stack": self.settings.stack_tests}[one_stage]
                if own:
                    runs.append((one_stage, "project", [
                        *(str(self.settings.path(t)) for t in own),
                        "--imagegate-skip-generic", *select]))

            def one(stages: str, label: str, args: list[str]) -> tuple[int, list[str], list[Finding]]:
                tag = stages.replace("+", "-")
                findings_file = self.out_dir / f"findings-{tag}-{label}.jsonl"
                findings_file.unlink(missing_ok=True)
                cmd = [sys.executable, "-m", "pytest", *args,
                       "--rootdir", str(self.settings.project_dir),
                       "--imagegate-settings", str(self.settings_file),
                       "--imagegate-findings", str(findings_file),
                       # one session per pytest run: runs side by side never clean up each other
                       "--imagegate-stage", stages,
                       "--imagegate-session", f"{self.session}-{tag}-{label}",
                       "-q" if self.options.quiet else "-v", "--color=no", "-p", "no:cacheprovider",
                       *self.options.pytest_args]
                timeout = max(STAGE_TIMEOUT[n] for n in stages.split("+"))
                rc, tail = self._stream(cmd, timeout=timeout, generic=label == "generic",
                                        prefix=f"{tag}/{label}")
                return rc, tail, _read_findings(findings_file)

            with contextlib.ExitStack() as shared:
                if {"image", "stack"} <= set(names):
                    # one stack for the generic checks and the project's image suite
                    where = shared.enter_context(self._shared_stack())
                    for run in runs:
                        if run[1] == "generic" or run[0] == "image":
                            run[2].extend(["--imagegate-attach", str(where)])
                # the generic checks and the project's own suites side by side (pytest runs)
                with ThreadPoolExecutor(max_workers=len(runs), thread_name_prefix=name) as pool:
                    done = list(pool.map(lambda run: one(*run), runs))
            if self._stopped.is_set():
                raise _Stopped  # a red stage beside this one: its findings do not count
            for (stages, label, _), (rc, tail, found) in zip(runs, done, strict=True):
                for f in found:
                    by_name.get(f.stage, stage).findings.append(f)
                self.result.findings.extend(found)
                if rc in PYTEST_USAGE or (rc != 0 and not found):
                    for failed in stages.split("+"):
                        target = by_name[failed]
                        target.status = "error"
                        target.message = (f"pytest {PYTEST_USAGE.get(rc, f'exited {rc}')} in the "
                                          f"{stages} stage ({label} checks): "
                                          f"{tail[-1] if tail else ''}")
                        target.detail = "\n".join(tail)
        return action

    @contextlib.contextmanager
    def _shared_stack(self) -> Iterator[Path]:
        """The project's stack for the image and stack stages, brought up once by the gate
        beside the pytest runs that judge it, and taken down after them (pass, fail, Ctrl-C):
        yields the private directory that describes it (``--imagegate-attach``; see
        :func:`imagegate.pytest_plugin.stack.gate_stack`). The project's stack suite is not
        given it: its tests may stop, restart or fill what they use, so it has its own."""
        import tempfile

        from imagegate.pytest_plugin.stack import ATTACH_ENV, gate_stack, write_private

        where = Path(tempfile.mkdtemp(prefix=ATTACH_PREFIX))  # 0700: secrets inside
        # whose it is: `imagegate prune` removes the directory of a gate that was killed
        (where / "owner").write_text(session_labels(self.session)[PID_LABEL])
        built = {svc: result.image_id for svc, result in self.built_services.items()}
        try:
            with contextlib.ExitStack() as up:
                write_private(
                    where / ATTACH_ENV,
                    settings_mod.materialize_env(self.settings.run_env))
                with ThreadPoolExecutor(1, thread_name_prefix="stack") as pool:
                    coming = pool.submit(up.enter_context, gate_stack(
                        self.cli, self.settings, f"{self.session}-image-stack-shared",
                        self.image_id, built, where))
                    try:
                        yield where
                    finally:
                        coming.result()  # up ends by its own timeouts; then it goes down
        finally:
            shutil.rmtree(where, ignore_errors=True)

    def _stream(self, cmd: list[str], timeout: float, *, generic: bool,
                prefix: str = "") -> tuple[int, list[str]]:
        """Run pytest, echoing its lines (unless quiet); return its exit code and output tail.

        The settings come from the gate's file, so IMAGEGATE_* variables are not passed on;
        the generic checks also lose PYTEST_ADDOPTS/PYTEST_PLUGINS (isolated from the project).
        """
        tail: list[str] = []
        env = stage_env(generic=generic)
        proc = subprocess.Popen(cmd, cwd=self.settings.project_dir, stdout=subprocess.PIPE, env=env,
                                stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
        with self._lock:
            self._running.add(proc)
            if self._stopped.is_set():
                proc.terminate()
        deadline = time.monotonic() + timeout
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.rstrip("\n")
                tail = [*tail[-40:], line]
                self._say(f"    [{prefix}] {line}" if prefix else f"    {line}")
                if time.monotonic() > deadline:
                    proc.terminate()  # the plugin turns SIGTERM into an orderly cleanup
                    tail.append(f"stage timed out after {timeout:g}s")
                    break
            return proc.wait(timeout=60), tail
        except BaseException:
            proc.terminate()
            proc.wait(timeout=60)
            raise
        finally:
            with self._lock:
                self._running.discard(proc)

    def _push(self, stage: StageResult) -> None:
        """Push the tested image (credentials, retries, digest pulled back: :mod:`.push`);
        record ``ref@digest``."""
        from imagegate.gate.push import push

        pushed = push(self.cli, self.image_id, self.options.push, log=self._say)
        self.result.pushed = {"ref": pushed.ref, "digest": pushed.digest}
        self._say(f"pushed {pushed.pinned}", force=True)


#: Where a gate describes its shared stack to its pytest runs (``<tmp>/imagegate-attach-*``).
ATTACH_PREFIX = "imagegate-attach-"


def stale_attach_dirs() -> list[Path]:
    """Stack descriptions (they hold secrets) whose gate on this host has ended: a gate killed
    (SIGKILL) could not remove its own."""
    import tempfile

    from imagegate.engine import owner_alive

    stale = []
    for where in Path(tempfile.gettempdir()).glob(f"{ATTACH_PREFIX}*"):
        try:
            owner = (where / "owner").read_text().strip()
        except OSError:
            continue  # not ours, or still being made
        if owner_alive(owner) is False:
            stale.append(where)
    return sorted(stale)


class _Stopped(Exception):
    """A stage's pytest runs were stopped because a stage beside it went red."""


def generic_args(*stages: str) -> list[str]:
    """pytest arguments that collect the generic checks of ``stages`` isolated from the
    project's own pytest configuration (imagegate's ini, no conftest above the checks package)."""
    return ["--pyargs", *(GENERIC[stage] for stage in stages), "-c", str(GENERIC_INI),
            "--confcutdir", str(Path(__file__).parent.parent / "suites")]


def stage_env(*, generic: bool) -> dict[str, str]:
    """The environment of a stage's pytest run: settings come from the gate's file (no
    IMAGEGATE_*), and the generic checks lose PYTEST_ADDOPTS/PYTEST_PLUGINS too."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_")}
    if generic:
        env = {k: v for k, v in env.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS")}
    return env


def _read_findings(path: Path) -> list[Finding]:
    """The findings a pytest stage wrote (JSON lines); none when it wrote no file."""
    if not path.is_file():
        return []
    return [Finding.from_dict(json.loads(line)) for line in path.read_text().splitlines()
            if line.strip()]


def check_push_ref(ref: str) -> None:
    """A push target must name a registry host: REGISTRY/REPO[:TAG] (a UsageError if not)."""
    from imagegate.gate.push import parse_ref

    parse_ref(ref)


def lint_only(settings: Settings) -> list[Finding]:
    """The Dockerfile lint findings, judged (for `imagegate lint`): those that are not passes."""
    from imagegate.checks import lint
    from imagegate.config.project import resolve
    from imagegate.results.verdict import Judge

    settings = resolve(settings)
    dockerfile = settings.path(settings.dockerfile)
    found = lint.hadolint(dockerfile, lint.hadolint_config(dockerfile, settings.project_dir))
    found += lint.extra_checks(dockerfile.read_text(), dockerfile.name, settings.target,
                               build.builder_name(settings.builder))
    return [f for f in Judge(settings, dockerfile).judge_all(found) if not f.ok]


def prune(*, images: bool, echo: Callable[[str], None] = print) -> None:
    """Remove objects of dead sessions (and the private directories of dead gates), and with
    ``images`` every image the harness labelled."""
    from imagegate.engine import IMAGE_LABEL, cleanup_session, stale_sessions

    cli = client()
    for session in sorted(stale_sessions(cli)):
        echo(f"session {session}: removed {cleanup_session(session, cli)}")
    for where in stale_attach_dirs():
        shutil.rmtree(where, ignore_errors=True)
        echo(f"{where}: removed (the stack description of a gate that ended without cleaning up)")
    if images:
        for image in cli.images.list(filters={"label": f"{IMAGE_LABEL}=true"}):
            try:
                cli.images.remove(image.id, force=True)
                echo(f"image {image.short_id} {image.tags}: removed")
            except Exception as exc:
                echo(f"image {image.short_id}: kept ({str(exc)[:80]})")
    run(["docker", "image", "prune", "-f", "--filter", f"label={IMAGE_LABEL}=true"],
        timeout=120, check=False)

