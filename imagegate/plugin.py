"""The pytest face of imagegate: options, settings, session fixtures, cleanup and diagnostics.

Hooks and fixtures only; the work is done by the plain modules. Every fixture below can be
overridden by a project's conftest.py (define one with the same name).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from . import settings as settings_mod
from .engine import cleanup_session, ensure_engine, new_session_id
from .errors import ImagegateError
from .plugin_stack import (  # noqa: F401  (fixtures: every project gets them)
    stack,
    stack_env,
    stack_factory,
    stack_files,
    stack_url,
)
from .settings import Settings

SETTINGS_KEY = pytest.StashKey[Settings]()
SESSION_KEY = pytest.StashKey[str]()
USED_DOCKER_KEY = pytest.StashKey[bool]()
BUILT_KEY = pytest.StashKey[dict[str, Any]]()


def _positive_float(value: str) -> float:
    """argparse type: a number above zero."""
    number = float(value)
    if number <= 0:
        raise ValueError(value)
    return number


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the imagegate options (flags win over [tool.imagegate] and IMAGEGATE_* env)."""
    group = parser.getgroup("imagegate", "imagegate: gate a Flask service's Docker image")
    group.addoption("--imagegate-project-dir", metavar="DIR",
                    help="project to gate (its pyproject's [tool.imagegate]); default: rootdir")
    group.addoption("--imagegate-image", metavar="REF",
                    help="test this already built image instead of building one")
    group.addoption("--imagegate-python-image", metavar="REF",
                    help="Python base image for the build (default: the local Debian-made one)")
    group.addoption("--imagegate-dockerfile", metavar="PATH", help="Dockerfile, project-relative")
    group.addoption("--imagegate-compose-file", metavar="PATH", help="compose file for the stack")
    group.addoption("--imagegate-size-budget-mb", metavar="MB", type=_positive_float,
                    help="uncompressed image size budget in MB")
    group.addoption("--imagegate-ignore", metavar="ID", action="append", default=[],
                    help="check id to ignore (repeatable)")
    group.addoption("--imagegate-session", metavar="ID",
                    help="label value for objects this run creates (default: a fresh id)")


def pytest_configure(config: pytest.Config) -> None:
    """Resolve the settings once, name the session, and turn SIGTERM into a clean interrupt."""
    opt = config.option
    project = opt.imagegate_project_dir or os.environ.get("IMAGEGATE_PROJECT_DIR") or config.rootpath
    overrides = {
        "image": opt.imagegate_image,
        "python_image": opt.imagegate_python_image,
        "dockerfile": opt.imagegate_dockerfile,
        "compose_file": opt.imagegate_compose_file,
        "size_budget_mb": opt.imagegate_size_budget_mb,
        "ignore": tuple(opt.imagegate_ignore),
    }
    try:
        resolved = settings_mod.load(project, overrides)
    except ImagegateError as exc:
        raise pytest.UsageError(f"imagegate: {exc.message}") from None
    config.stash[SETTINGS_KEY] = resolved
    config.stash[SESSION_KEY] = opt.imagegate_session or new_session_id()
    config.stash[USED_DOCKER_KEY] = False
    config.stash[BUILT_KEY] = {}
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM (CI cancelling a job) unwinds like Ctrl-C, so every finalizer still runs."""
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say what is being gated, and where each setting came from."""
    s = config.stash[SETTINGS_KEY]
    lines = [f"imagegate session: {config.stash[SESSION_KEY]}"]
    lines += [f"imagegate {line}" for line in settings_mod.describe(s)]
    if s.image:
        lines.append(f"imagegate image: {s.image} [flag]")
    return lines


def pytest_unconfigure(config: pytest.Config) -> None:
    """Last line of defence: remove whatever still carries this session's label."""
    if config.stash.get(USED_DOCKER_KEY, False):
        with contextlib.suppress(Exception):
            cleanup_session(config.stash[SESSION_KEY])


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Name the image that was tested, so a CI log ties results to an image id."""
    built = config.stash.get(BUILT_KEY, {})
    if built:
        terminalreporter.write_sep("-", "imagegate")
        for key, value in built.items():
            terminalreporter.write_line(f"{key}: {value}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """On failure, attach what a person needs: container/stack logs, health log, compose ps."""
    report = yield
    if report.failed and call.when in ("setup", "call"):
        funcargs = getattr(item, "funcargs", {})
        for name in item.fixturenames:  # type: ignore[attr-defined]
            value = funcargs.get(name)
            diagnostics = getattr(value, "diagnostics", None)
            if callable(diagnostics):
                with contextlib.suppress(Exception):
                    for title, text in diagnostics():
                        report.sections.append((f"imagegate: {title}", text))
    return report


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def imagegate_settings(pytestconfig: pytest.Config) -> Settings:
    """The resolved settings (override to gate something else)."""
    return pytestconfig.stash[SETTINGS_KEY]


@pytest.fixture(scope="session")
def imagegate_session(pytestconfig: pytest.Config) -> str:
    """This run's id: the value of the ``imagegate.session`` label on everything it creates."""
    return pytestconfig.stash[SESSION_KEY]


@pytest.fixture(scope="session")
def docker_client(pytestconfig: pytest.Config, imagegate_session: str) -> Iterator[Any]:
    """A docker SDK client; starts the engine when none answers. Cleans the session up after."""
    from .engine import client

    try:
        ensure_engine()
        cli = client()
    except ImagegateError as exc:
        pytest.fail(f"imagegate: {exc.message}", pytrace=False)
    pytestconfig.stash[USED_DOCKER_KEY] = True
    try:
        yield cli
    finally:
        cleanup_session(imagegate_session, cli)


@pytest.fixture(scope="session")
def run_env(imagegate_settings: Settings) -> dict[str, str]:
    """Environment for containers this session runs (``@random`` values become fresh secrets)."""
    return settings_mod.materialize_env(imagegate_settings.run_env)


@pytest.fixture(scope="session")
def app_image(pytestconfig: pytest.Config, docker_client: Any, imagegate_settings: Settings,
              imagegate_session: str) -> str:
    """The image under test, built once per session (or ``--imagegate-image``); its id."""
    from . import pipeline

    built = pytestconfig.stash[BUILT_KEY]
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
def image_facts(docker_client: Any, app_image: str) -> Any:
    """Metadata and the flattened layer view of the image (policy checks read these)."""
    from .policy import ImageFacts

    return ImageFacts.load(docker_client, app_image)


@pytest.fixture(scope="session")
def app_container(docker_client: Any, app_image: str, imagegate_session: str,
                  imagegate_settings: Settings, run_env: dict[str, str]) -> Iterator[Any]:
    """One running container of the image (not read-only, no Redis): for testinfra and HTTP."""
    from .container import running

    with running(docker_client, app_image, imagegate_session, env=run_env,
                 port=imagegate_settings.web_port) as ctr:
        yield ctr


@pytest.fixture(scope="session")
def app_healthy(app_container: Any) -> float:
    """Waits until :func:`app_container`'s healthcheck passes (within start period + retries)."""
    from .container import health_budget

    try:
        return float(app_container.wait_healthy(timeout=health_budget(app_container.container)))
    except ImagegateError as exc:
        pytest.fail(f"imagegate: {exc.message}\n{exc.detail}", pytrace=False)


@pytest.fixture(scope="session")
def app_host(app_container: Any) -> Any:
    """A testinfra host inside :func:`app_container` (``docker://<id>``)."""
    import testinfra

    return testinfra.get_host(f"docker://{app_container.id}")

