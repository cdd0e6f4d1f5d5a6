"""The pytest face of imagegate: options, settings, findings, session fixtures and cleanup.

Hooks and fixtures only; the work is done by the plain modules. Every fixture below can be
overridden by a project's conftest.py (define one with the same name).

A good citizen: in a project that merely has imagegate installed, a plain ``pytest`` behaves as
without it. Settings are resolved on first use of an imagegate fixture (not at configure time),
the SIGTERM handler is installed only once Docker is used, and the report header appears only
when the project configures imagegate or a flag asks for it.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import signal
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from imagegate.config import settings as settings_mod
from imagegate.config.settings import Settings
from imagegate.engine import cleanup_session, ensure_engine, new_session_id
from imagegate.errors import ImagegateError
from imagegate.model.compose import GATE_HEALTH_INTERVAL_S
from imagegate.proc import interrupt
from imagegate.pytest_plugin.stack import (  # noqa: F401  (fixtures: every project gets them)
    attached,
    compose_model,
    service_images,
    stack,
    stack_attempt,
    stack_env,
    stack_env_file,
    stack_factory,
    stack_files,
    stack_interpolation,
    stack_up,
    stack_url,
)
from imagegate.results.findings import Finding
from imagegate.text import first_line

STATE_KEY = pytest.StashKey["State"]()
FINDINGS_KEY = pytest.StashKey[list[Finding]]()
#: Set when :func:`imagegate_record` itself failed or skipped the test (that is the verdict).
DECIDED_KEY = pytest.StashKey[bool]()
#: The readiness wait app_start begins as soon as the container starts (a Future of Readiness).
READY_KEY = pytest.StashKey[Any]()
MARKERS = (
    "imagegate_check(id, where=''): the test is imagegate check `id` (severity, ignore, reports)",
    "lint: checks the Dockerfile's text",
    "image: needs a Docker Engine and the image under test",
    "stack: needs a Docker Engine and the compose stack",
)
GENERIC_PACKAGE = "imagegate.suites"


class State:
    """One pytest session's imagegate state: lazily resolved settings, the session id, findings."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.session = config.option.imagegate_session or new_session_id()
        worker = xdist_worker(config)
        if worker and config.option.imagegate_session:
            self.session = f"{self.session}-{worker}"  # xdist: each worker cleans only its own
        self.used_docker = False
        self.built: dict[str, str] = {}
        self.findings: list[Finding] = []
        self._settings: Settings | None = None
        self._judge: Any = None
        self._old_sigterm: Any = None

    @property
    def settings(self) -> Settings:
        """The resolved settings (a UsageError on bad config, raised at first use)."""
        if self._settings is None:
            self._settings = _resolve(self.config)
        return self._settings

    @property
    def judge(self) -> Any:
        """The :class:`~imagegate.results.verdict.Judge` of these settings."""
        if self._judge is None:
            from imagegate.results.verdict import Judge

            s = self.settings
            self._judge = Judge(s, s.path(s.dockerfile) if s.dockerfile else None)
        return self._judge

    def stage_of(self, check_id: str, item: pytest.Item | None = None) -> str:
        """The stage a finding belongs to: the gate's ``--imagegate-stage``; of several
        (``image+stack``, one session for both), the one whose marker the test carries; else
        the catalogue's."""
        from imagegate.checks import catalogue

        given = stages(self.config)
        if len(given) > 1 and item is not None:
            given = tuple(s for s in given if item.get_closest_marker(s)) or given
        if given:
            return given[0]
        return catalogue.spec(check_id).stage if catalogue.known(check_id) else "tests"

    def catch_sigterm(self) -> None:
        """From now on SIGTERM (CI cancelling a job) unwinds like Ctrl-C: finalizers run."""
        if self._old_sigterm is None and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            self._old_sigterm = signal.signal(signal.SIGTERM, interrupt)

    def restore_sigterm(self) -> None:
        """Put back the SIGTERM handler that was there before."""
        if self._old_sigterm is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None


def stages(config: pytest.Config) -> tuple[str, ...]:
    """The gate stages this run is (``--imagegate-stage image+stack``: both); () outside the gate."""
    given = config.option.imagegate_stage or ""
    return tuple(s for s in given.split("+") if s)


def shares_stack(config: pytest.Config) -> bool:
    """True when this run is the image and the stack stage in one session: the run checks then
    judge the stack's own web container instead of starting the web service a second time."""
    return {"image", "stack"} <= set(stages(config))


def xdist_worker(config: pytest.Config) -> str:
    """This process's pytest-xdist worker id (``gw0`` …), or "" outside a worker. Read from the
    config xdist gives its workers, not the environment: a pytest run inside a worker (pytester)
    inherits PYTEST_XDIST_WORKER without being one."""
    return str(getattr(config, "workerinput", {}).get("workerid", ""))


@dataclass(frozen=True)
class Readiness:
    """Whether the app container became ready, how long it took, or why it did not."""

    ok: bool
    seconds: float = 0.0
    message: str = ""
    detail: str = ""
    #: Container start → end of its first passing healthcheck (engine clock), read the moment it
    #: turned healthy: the engine keeps only the last 5 probes, and the gate probes every second.
    to_healthy: float | None = None

    @classmethod
    def wait(cls, ctr: Any, *, path: str, expect_2xx: bool, timeout: float) -> Readiness:
        """Wait for ``ctr`` (HEALTHCHECK, else the health probe); a failure is recorded."""
        try:
            seconds = float(ctr.wait_ready(path, expect_2xx=expect_2xx, timeout=timeout))
        except ImagegateError as exc:
            return cls(False, message=exc.message, detail=exc.detail)
        return cls(True, seconds, to_healthy=ctr.seconds_to_healthy()
                   if ctr.has_healthcheck() else None)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the imagegate options: one per setting (generated), plus the run's own."""
    group = parser.getgroup("imagegate", "imagegate: gate a Flask service's Docker image")
    group.addoption("--imagegate-project-dir", metavar="DIR",
                    help="project to gate (its pyproject's [tool.imagegate]); default: rootdir")
    group.addoption("--imagegate-image", metavar="REF",
                    help="test this already built image instead of building one")
    group.addoption("--imagegate-session", metavar="ID",
                    help="label value for objects this run creates (default: a fresh id)")
    group.addoption("--imagegate-settings", metavar="FILE",
                    help="resolved settings written by `imagegate gate` (skips resolution)")
    group.addoption("--imagegate-findings", metavar="FILE",
                    help="write every check's findings here (JSON lines)")
    group.addoption("--imagegate-stage", metavar="NAME", help="the gate stage this run is")
    group.addoption("--imagegate-skip-generic", action="store_true",
                    help="deselect imagegate's generic checks (the gate runs them on their own)")
    group.addoption("--imagegate-attach", metavar="DIR",
                    help="judge the stack `imagegate gate` brought up (described in DIR) "
                         "instead of bringing one up")
    settings_mod.add_flags(group.addoption, "--imagegate-", "imagegate_")


def _overrides(config: pytest.Config) -> dict[str, Any]:
    """The ``--imagegate-<key>`` flags given, as settings overrides."""
    given = {key: getattr(config.option, f"imagegate_{key}", None)
             for key in settings_mod.FLAG_KEYS}
    return {"image": config.option.imagegate_image, **settings_mod.flag_overrides(given)}


def _resolve(config: pytest.Config) -> Settings:
    """Settings from the gate's file, else resolved here (config → env → flags → discovery)."""
    from imagegate.config.project import resolve

    given = config.option.imagegate_settings
    if given:
        return settings_mod.undump(json.loads(Path(given).read_text()))
    return resolve(_load(config))


def _load(config: pytest.Config) -> Settings:
    """The project's settings as configured (config → env → flags), before discovery."""
    given = config.option.imagegate_settings
    if given:
        return settings_mod.undump(json.loads(Path(given).read_text()))
    project = (config.option.imagegate_project_dir or os.environ.get("IMAGEGATE_PROJECT_DIR")
               or config.rootpath)
    return settings_mod.load(project, _overrides(config))


def _active(config: pytest.Config) -> bool:
    """True when this run is about imagegate: a flag, the gate, or [tool.imagegate]."""
    opt = config.option
    if opt.imagegate_settings or opt.imagegate_project_dir or opt.imagegate_image:
        return True
    pyproject = config.rootpath / "pyproject.toml"
    try:
        return "[tool.imagegate]" in pyproject.read_text()
    except OSError:
        return False


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers and the session state (nothing is resolved yet)."""
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    config.stash[STATE_KEY] = State(config)
    from imagegate.pytest_plugin import host as plugin_host

    # Registered last, so its ``host`` overrides testinfra's (see plugin_host).
    config.pluginmanager.register(plugin_host, "imagegate-host")


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say what is being gated, and where each setting came from (imagegate projects only)."""
    if not _active(config):
        return []
    state = config.stash[STATE_KEY]
    try:
        s = state.settings
    except ImagegateError as exc:
        return [f"imagegate: {exc.message}"]
    lines = [f"imagegate session: {state.session}"]
    lines += [f"imagegate {line}" for line in settings_mod.describe(s)]
    if s.image:
        lines.append(f"imagegate image: {s.image} [{s.sources.get('image', 'flag')}]")
    return lines


def _check_id(item: pytest.Item) -> str:
    """The catalogue id an item checks, or "" for a plain (project) test."""
    marker = item.get_closest_marker("imagegate_check")
    return str(marker.args[0]) if marker and marker.args else ""


def _generic(item: pytest.Item) -> bool:
    """True for imagegate's own generic checks (also when a project's module imports them)."""
    owner = getattr(item, "cls", None) or getattr(item, "function", None)
    return str(getattr(owner, "__module__", "")).startswith(GENERIC_PACKAGE)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect generic checks when asked; skip every suppressed check with where it was
    ignored (config, env, flag or an inline Dockerfile comment) — one rule for every id."""
    if config.option.imagegate_skip_generic:
        keep = [i for i in items if not _generic(i)]
        deselected = [i for i in items if _generic(i)]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = keep
    if attached(config) is not None:
        # the gate's stack comes up beside this run: what needs no running container goes
        # first, while it does (otherwise in the order given)
        items.sort(key=_needs_the_stack)
    checks = [(item, _check_id(item)) for item in items]
    if not any(check_id for _, check_id in checks):
        return
    state = config.stash[STATE_KEY]
    try:
        judge = state.judge
    except ImagegateError:
        return  # the fixtures report the settings error, once per test that needs them
    for item, check_id in checks:
        marker = item.get_closest_marker("imagegate_check")
        where = str(marker.kwargs.get("where", "")) if marker else ""
        why = judge.suppression(check_id, where) if check_id else ""
        if why and not check_id.startswith(("DL", "SC")):
            item.add_marker(pytest.mark.skip(reason=f"{check_id} {why}"))


#: Fixtures that give (or wait for) the running web container or the stack; ``host`` asks for
#: ``app_host`` only when called, so it is named here too.
STACK_FIXTURES = frozenset({"app_start", "app_ready", "app_container", "ready_container",
                            "app_host", "host", "app_interpreter", "flask_app", "run_facts_ahead",
                            "stack_attempt", "stack", "stack_up", "stack_url", "app_sockets",
                            "app_processes"})


def _needs_the_stack(item: pytest.Item) -> bool:
    """True when the test uses the running web container or the stack (by its fixtures)."""
    return bool(STACK_FIXTURES & set(getattr(item, "fixturenames", ())))


def _failure_text(call: pytest.CallInfo[None], report: pytest.TestReport) -> str:
    """What a failed check said: pytest.fail's message, the assert message, or the exception."""
    excinfo = call.excinfo
    if excinfo is None:
        return str(report.longrepr or "failed")
    value = excinfo.value
    msg = getattr(value, "msg", None)
    if isinstance(msg, str) and msg:
        return msg
    text = str(value)
    if isinstance(value, AssertionError):
        return text or "assertion failed"
    return f"{type(value).__name__}: {text}" if text else type(value).__name__


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Record a finding for every check (and project test); a check that failed below
    ``fail_on`` becomes a pass with a warning; on failure attach container/stack diagnostics."""
    report: pytest.TestReport = yield
    state = item.config.stash.get(STATE_KEY, None)
    if state is None:
        return report
    check_id = _check_id(item)
    recorded = item.stash.get(FINDINGS_KEY, None)
    decided = report.passed or item.stash.get(DECIDED_KEY, False)
    phase_done = call.when == "call" or (call.when == "setup" and not report.passed)
    if phase_done and not (recorded and decided):
        _record_outcome(state, item, report, call, check_id, recorded)
    if report.failed and call.when in ("setup", "call"):
        funcargs = getattr(item, "funcargs", {})
        for name in getattr(item, "fixturenames", ()):
            diagnostics = getattr(funcargs.get(name), "diagnostics", None)
            if callable(diagnostics):
                with contextlib.suppress(Exception):
                    for title, text in diagnostics():
                        report.sections.append((f"imagegate: {title}", text))
    return report


def _record_outcome(state: State, item: pytest.Item, report: pytest.TestReport,
                    call: pytest.CallInfo[None], check_id: str,
                    recorded: list[Finding] | None) -> None:
    """The finding a test's outcome stands for (when the test recorded none itself)."""
    from imagegate.checks.stack import project_test

    path, lineno, _ = item.location
    marker = item.get_closest_marker("imagegate_check")
    where = str(marker.kwargs.get("where", "")) if marker else f"{path}:{(lineno or 0) + 1}"
    cid = check_id or "IG-PROJECT-TEST"
    stage = state.stage_of(cid, item)
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        skipped = Finding(cid, True, reason, where, skipped=reason or "skipped", stage=stage,
                          name=item.nodeid)
        with contextlib.suppress(ImagegateError):
            skipped = Finding(**{**skipped.to_dict(), "severity": state.judge.severity(skipped)})
        state.findings.append(skipped)
        return
    text = "" if report.passed else _failure_text(call, report)
    if recorded:  # the check recorded its findings, then broke: that is an error of its own
        text = f"check crashed after recording: {first_line(text)}"
    if call.when == "setup" and not report.passed:
        text = f"could not run: {first_line(text)}"
    if not check_id:  # a test of the project's own suites
        state.findings.append(project_test(report.passed, text, where, item.nodeid, stage))
        return
    if report.passed:
        state.findings.append(Finding(cid, True, "passed", where, stage=stage, name=item.nodeid))
        return
    finding = Finding(cid, False, first_line(text), where, detail=text, stage=stage,
                      name=item.nodeid)
    if call.when == "setup" or recorded:
        state.findings.append(Finding(**{**finding.to_dict(), "severity": "error"}))
        return
    try:
        judge = state.judge
    except ImagegateError:  # bad settings: the fixtures say so; this failure stays a failure
        state.findings.append(Finding(**{**finding.to_dict(), "severity": "error"}))
        return
    judged = judge.judge(finding)
    state.findings.append(judged)
    if not judged.skipped and not judge.fails(judged):
        report.outcome = "passed"  # below fail_on: advice, recorded, not a failure
        report.longrepr = None
        report.user_properties.append(("imagegate_severity", judged.severity))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write the findings file the gate reads (when asked)."""
    state = session.config.stash.get(STATE_KEY, None)
    target = session.config.option.imagegate_findings
    if state is None or not target:
        return
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    worker = xdist_worker(session.config)
    if worker:  # xdist: each worker writes its own file; the controller merges them below
        path = path.with_name(f"{path.name}.{worker}")
    with open(path, "w") as out:
        for finding in state.findings:
            out.write(json.dumps(finding.to_dict()) + "\n")
        if not worker:
            for part in sorted(path.parent.glob(f"{glob.escape(path.name)}.gw*")):
                out.write(part.read_text())
                part.unlink()


def pytest_unconfigure(config: pytest.Config) -> None:
    """Last line of defence: remove whatever still carries this session's label."""
    state = config.stash.get(STATE_KEY, None)
    if state is None:
        return
    if state.used_docker:
        with contextlib.suppress(Exception):
            cleanup_session(state.session)
    state.restore_sigterm()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Name the image that was tested and list the checks that warned (below ``fail_on``)."""
    state = config.stash.get(STATE_KEY, None)
    if state is None:
        return
    advice = [f for f in state.findings if not f.ok and not f.skipped and f.check_id
              != "IG-PROJECT-TEST" and state._settings is not None and not state.judge.fails(f)]
    if state.built or advice:
        terminalreporter.write_sep("-", "imagegate")
        for key, value in state.built.items():
            terminalreporter.write_line(f"{key}: {value}")
        for f in advice:
            terminalreporter.write_line(f"{f.severity}: {f}")


# -- fixtures ---------------------------------------------------------------------------------


def _state(config: pytest.Config) -> State:
    return config.stash[STATE_KEY]


@pytest.fixture(scope="session")
def imagegate_settings(pytestconfig: pytest.Config) -> Settings:
    """The resolved settings (override to gate something else)."""
    try:
        return _state(pytestconfig).settings
    except ImagegateError as exc:
        pytest.fail(f"imagegate: {exc.message}", pytrace=False)


@pytest.fixture(scope="session")
def imagegate_session(pytestconfig: pytest.Config) -> str:
    """This run's id: the value of the ``imagegate.session`` label on everything it creates."""
    return _state(pytestconfig).session


@pytest.fixture
def imagegate_record(request: pytest.FixtureRequest) -> Callable[[Iterable[Finding]], None]:
    """``imagegate_record(findings)``: a check hands over its findings; they are judged
    (severity, suppressions) and the test fails, naming each, when one reaches ``fail_on``."""
    state = _state(request.config)
    item = request.node

    def record(findings: Iterable[Finding] | Finding) -> None:
        __tracebackhide__ = True
        items = [findings] if isinstance(findings, Finding) else list(findings)
        judged = [Finding(**{**f.to_dict(), "stage": state.stage_of(f.check_id, item),
                             "name": item.nodeid}) for f in state.judge.judge_all(items)]
        item.stash.setdefault(FINDINGS_KEY, []).extend(judged)
        state.findings.extend(judged)
        failed = [f for f in judged if state.judge.fails(f)]
        if failed:
            item.stash[DECIDED_KEY] = True
            pytest.fail("\n".join(f"{f}" + (f"\n{f.detail}" if f.detail else "")
                                  for f in failed), pytrace=False)
        if judged and all(f.skipped for f in judged):
            item.stash[DECIDED_KEY] = True
            pytest.skip(judged[0].skipped)

    return record


@pytest.fixture(scope="session")
def docker_client(pytestconfig: pytest.Config, imagegate_session: str) -> Iterator[Any]:
    """A docker SDK client; starts the engine when none answers. Cleans the session up after."""
    from imagegate.engine import client

    state = _state(pytestconfig)
    try:
        ensure_engine()
        cli = client()
    except ImagegateError as exc:
        pytest.fail(f"imagegate: {exc.message}", pytrace=False)
    state.used_docker = True
    state.catch_sigterm()
    try:
        yield cli
    finally:
        cleanup_session(imagegate_session, cli)


@pytest.fixture(scope="session")
def run_env(pytestconfig: pytest.Config, imagegate_settings: Settings) -> dict[str, str]:
    """Environment for containers this session runs (``@random`` values become fresh secrets;
    judging the gate's stack, ``--imagegate-attach``: the values that stack runs with)."""
    from imagegate.pytest_plugin.stack import ATTACH_ENV, attach_file, attached

    if attached(pytestconfig) is not None:
        return {str(k): str(v) for k, v in attach_file(pytestconfig, ATTACH_ENV, 60).items()}
    return settings_mod.materialize_env(imagegate_settings.run_env)


@pytest.fixture(scope="session")
def app_image(pytestconfig: pytest.Config, docker_client: Any, imagegate_settings: Settings,
              imagegate_session: str) -> str:
    """The image under test, built once per session (or ``--imagegate-image``); its id."""
    from imagegate.build import pipeline

    built = _state(pytestconfig).built
    if imagegate_settings.image:
        image = docker_client.images.get(imagegate_settings.image)
        built["image"] = f"{image.id} (given)"
        return str(image.id)
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")

    def log(line: str) -> None:
        if reporter is not None and pytestconfig.option.verbose > 0:
            reporter.write_line(f"imagegate: {line}")

    try:
        pipeline.ensure_bases(imagegate_settings, log=log)
        result = pipeline.build_app(docker_client, imagegate_settings, imagegate_session, log=log)
    except ImagegateError as exc:
        pytest.fail(f"imagegate: {exc.message}\n{exc.detail}", pytrace=False)
    built["image"] = f"{result.image_id} ({imagegate_settings.repo}:local, {result.seconds:.1f}s)"
    return result.image_id


@pytest.fixture(scope="session")
def image_facts(request: pytest.FixtureRequest, docker_client: Any, app_image: str) -> Any:
    """Metadata and the flattened layer view of the image (policy checks read these).

    When the session also runs the image's container, the layers are read while it starts
    (and, sharing the stack, while the stack comes up): neither waits for the other. Judging
    the gate's stack (``--imagegate-attach``), the checks that need no container run first,
    while the gate brings the stack up: the layers are read then.
    """
    from imagegate.facts.policy import ImageFacts

    if attached(request.config) is not None or not any(
            "app_start" in getattr(item, "fixturenames", ()) for item in request.session.items):
        # (judging the gate's stack, which comes up beside this run: nothing to wait for)
        return ImageFacts.load(docker_client, app_image)
    with ThreadPoolExecutor(1, thread_name_prefix="layers") as pool:
        reading = pool.submit(ImageFacts.load, docker_client, app_image)
        request.getfixturevalue("app_start")
        return reading.result()


@pytest.fixture(scope="session")
def app_start(request: pytest.FixtureRequest, docker_client: Any, app_image: str,
              imagegate_session: str, imagegate_settings: Settings,
              run_env: dict[str, str]) -> Iterator[Any]:
    """The web container the run checks judge, started once; its
    :class:`~imagegate.run.container.RunningContainer`, or the ImagegateError that stopped it from
    starting (the engine's reason, or the service that died and its exception line).

    With a compose file and a web service: that service as compose runs it (command,
    environment, env_file, user, volumes, its dependencies up), reached from inside its network
    by the gate's probe. When the image and stack stages share one session (the gate's
    ``--imagegate-stage image+stack``): the session stack's own web container, so the web
    service starts once. Without a compose file: one container of the image alone (not
    read-only, no Redis; :func:`alone`), through the probe and its published loopback port."""
    s = imagegate_settings
    with contextlib.ExitStack() as exits:
        # entered first, so left last: the container is gone by then, which ends a wait still
        # running instead of waiting it out
        pool = exits.enter_context(ThreadPoolExecutor(1, thread_name_prefix="ready"))
        started: Any
        try:
            if s.compose_file and s.web_service and (shares_stack(request.config)
                                                     or attached(request.config) is not None):
                from imagegate.pytest_plugin.stack import web_container

                attempt = request.getfixturevalue("stack_attempt")
                if attempt.stack is None:
                    raise ImagegateError(attempt.message, detail=attempt.detail)
                started = web_container(attempt.stack, s, request.getfixturevalue("compose_model"))
            elif s.compose_file and s.web_service:
                from imagegate.pytest_plugin.stack import web_as_compose_runs_it

                value = request.getfixturevalue
                started = exits.enter_context(web_as_compose_runs_it(
                    s, imagegate_session, value("stack_files"), value("stack_env"),
                    value("stack_env_file"), value("compose_model"), app_image,
                    value("service_images")))
            else:
                started = exits.enter_context(alone(docker_client, app_image,
                                                    imagegate_session, s, run_env))
        except ImagegateError as exc:
            started = exc
        # Wait for readiness from the moment it started, beside whatever the session does first
        # (the image checks read layers meanwhile): the time to healthy is read when it turns
        # healthy, while the engine's 5-probe health log still holds that first passing probe.
        request.config.stash[READY_KEY] = pool.submit(_readiness, started, s)
        yield started


def _readiness(started: Any, s: Settings) -> Readiness:
    """The :class:`Readiness` of ``started`` (a RunningContainer, or the error that stopped it)."""
    if isinstance(started, ImagegateError):
        return Readiness(False, message=started.message, detail=started.detail)
    return Readiness.wait(started, path=s.health_path or "/", expect_2xx=bool(s.health_path),
                          timeout=s.wait_timeout)


@contextlib.contextmanager
def alone(cli: Any, image: str, session: str, settings: Settings,
          env: dict[str, str]) -> Iterator[Any]:
    """One container of ``image`` with no compose file: on a network of its own (labelled,
    removed after) beside the gate's probe, so it is reached from inside even where its
    published loopback port is not (a remote engine); the port is still published and used
    where this machine reaches it. Without Python in the image to probe from, the published
    port alone."""
    import uuid

    from imagegate.config.project import web_port
    from imagegate.engine import session_labels
    from imagegate.engine.hosts import published_host
    from imagegate.run.container import running
    from imagegate.run.probe import ProbeError, running_probe

    port = web_port(settings)
    labels = session_labels(session)
    network = cli.networks.create(f"{session}-alone-{uuid.uuid4().hex[:6]}", labels=labels)
    try:
        with contextlib.ExitStack() as exits:
            ctr = exits.enter_context(running(
                cli, image, session, env=env, port=port, published_host=published_host(settings),
                reach_inside=True, network=network.name,
                **fast_healthcheck(cli.images.get(image).attrs)))
            try:
                probe = exits.enter_context(running_probe(cli, image, network.name, labels))
            except ProbeError:
                probe = None
            if probe is not None:
                # the engine gives a container its short id as an alias on a user network (not
                # its generated name): the probe reaches it by that
                alias = ctr.id[:12]
                ctr.probe_get = lambda path: probe.get(alias, port, path)
            yield ctr
    finally:
        with contextlib.suppress(Exception):
            network.remove()


#: How often the gate's app container probes the image's HEALTHCHECK (its own command,
#: timeout, retries and start period): compose.GATE_HEALTH_INTERVAL_S, in nanoseconds.
HEALTH_INTERVAL_NS = int(GATE_HEALTH_INTERVAL_S * 1_000_000_000)


def fast_healthcheck(image_attrs: Mapping[str, Any]) -> dict[str, Any]:
    """``containers.run`` options probing the image's HEALTHCHECK every second (none without one)."""
    hc = (image_attrs.get("Config") or {}).get("Healthcheck") or {}
    test = list(hc.get("Test") or [])
    if not test or test[0] == "NONE":
        return {}
    return {"healthcheck": {"test": test, "interval": HEALTH_INTERVAL_NS,
                            "timeout": int(hc.get("Timeout") or 30_000_000_000),
                            "retries": int(hc.get("Retries") or 3),
                            "start_period": int(hc.get("StartPeriod") or 0)}}


@pytest.fixture(scope="session")
def app_container(app_start: Any) -> Any:
    """The running container of the image under test (fails when it could not start)."""
    if isinstance(app_start, ImagegateError):
        pytest.fail(f"imagegate: {app_start.message}\n{app_start.detail}", pytrace=False)
    return app_start


@pytest.fixture(scope="session")
def app_ready(request: pytest.FixtureRequest, app_start: Any,
              imagegate_settings: Settings) -> Readiness:
    """Waits until the container is ready — its HEALTHCHECK healthy, or (without one) the
    health probe answering — and returns a :class:`Readiness`. A container that cannot start,
    exits, or never gets ready is recorded there, not raised: IG-RUN-HEALTHY judges it and the
    other running checks skip naming it."""
    waiting = request.config.stash.get(READY_KEY, None)
    if waiting is None:  # app_start overridden by a project's own fixture
        return _readiness(app_start, imagegate_settings)
    return waiting.result()


@pytest.fixture(scope="session")
def ready_container(app_start: Any, app_ready: Readiness) -> Any:
    """The running container once ready; a check using it skips when it is not."""
    if not app_ready.ok:
        pytest.skip(f"the container is not ready (see IG-RUN-HEALTHY): {app_ready.message}")
    return app_start


@pytest.fixture(scope="session")
def app_interpreter(ready_container: Any) -> str:
    """The Python the server runs under, read from its process (skips when it is not Python)."""
    from imagegate.facts import runtime

    found = runtime.server_interpreter(ready_container.container)
    if isinstance(found, runtime.Skip):
        pytest.skip(found.reason)
    return str(found)


@pytest.fixture(scope="session")
def run_facts_ahead(ready_container: Any) -> Iterator[dict[tuple[Any, ...], Any]]:
    """What the run and Flask checks ask of the ready web container, read side by side
    (:func:`imagegate.checks.running.read_ahead`) from the first check that asks."""
    from imagegate.checks.running import read_ahead
    from imagegate.facts import runtime

    interpreter = runtime.server_interpreter(ready_container.container)
    with ThreadPoolExecutor(4, thread_name_prefix="facts") as pool:
        ahead = read_ahead(ready_container.container,
                           None if isinstance(interpreter, runtime.Skip) else str(interpreter),
                           pool)
        yield ahead
        for future in ahead.values():
            future.cancel()


@pytest.fixture(scope="session")
def flask_app(request: pytest.FixtureRequest, ready_container: Any, app_interpreter: str) -> Any:
    """The Flask app of the running web container, loaded inside it the way its server loads
    it (:func:`imagegate.checks.flask.app_facts`): an ``AppFacts`` whose ``why`` says why not,
    when it could not be found or loaded. The key never leaves the container."""
    from imagegate.checks.flask import app_facts
    from imagegate.checks.running import fact

    return fact(request.getfixturevalue("run_facts_ahead"), app_facts, ready_container.container,
                app_interpreter)


@pytest.fixture(scope="session")
def app_host(ready_container: Any) -> Any:
    """A testinfra host inside the running container (``docker://<id>``)."""
    import testinfra

    return testinfra.get_host(f"docker://{ready_container.id}")


def in_image_suite(request: pytest.FixtureRequest) -> bool:
    """True when the requesting module belongs to the image suite: the gate's image stage, a
    module marked ``image``, or a module under the project's ``image_tests``."""
    if "image" in stages(request.config):
        return True
    if request.node.get_closest_marker("image") is not None:
        return True
    if not _active(request.config):
        return False
    try:
        loaded = _load(request.config)
    except ImagegateError:
        return False
    roots = [loaded.path(p) for p in loaded.image_tests]
    path = Path(str(request.node.path)).resolve()
    return any(path == root or root in path.parents for root in roots)
