"""Stack fixtures: the session's compose project, its URL, and per-test project variants.

Imported into :mod:`imagegate.pytest_plugin`, so every project gets them. Each one can be overridden
by a conftest.py fixture of the same name (e.g. ``stack_files`` to add an overlay).

The stack always runs the image that was built and tested, never a rebuild: the gate's own
override (:func:`imagegate.model.compose.gate_override`) pins it on every service whose ``build:`` is
the gated Dockerfile, and moves every published port to an ephemeral one on 127.0.0.1 so a
developer's running stack or a second gate never collides. The ``${APP_IMAGE}`` convention
(``image_var``) keeps working beside it.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from imagegate.config.settings import Settings
from imagegate.engine.hosts import published_host
from imagegate.errors import ImagegateError, UsageError
from imagegate.run.stack import Stack, running_stack


@pytest.fixture(scope="session")
def stack_files(imagegate_settings: Settings) -> list[Path]:
    """The compose files of the session's stack: ``compose_file`` (discovered when not set).

    Override to add an overlay, e.g. ``return [*base, Path("compose.ci.yml")]``.
    """
    if not imagegate_settings.compose_file:
        from imagegate.model.compose import no_compose_file

        pytest.skip(f"{no_compose_file()}: set compose_file to test a stack")
    return [imagegate_settings.path(imagegate_settings.compose_file)]


@pytest.fixture(scope="session")
def stack_interpolation(run_env: dict[str, str], imagegate_settings: Settings, app_image: str,
                        stack_files: list[Path]) -> Any:
    """How compose interpolates the session's files, as ``docker compose`` would: the process
    environment, then the project's ``.env``, then ``run_env`` (+ ``REDIS_IMAGE``); the image
    variable (``image_var``) is always the tested image. An
    :class:`~imagegate.model.compose.Interpolation` (names and sources for the report header)."""
    from imagegate.build.pipeline import redis_image
    from imagegate.config.project import gate_interpolation

    return gate_interpolation(imagegate_settings.project_dir, stack_files,
                              {**run_env, "REDIS_IMAGE": redis_image()},
                              imagegate_settings.image_var, app_image)


@pytest.fixture(scope="session")
def stack_env(stack_interpolation: Any) -> dict[str, str]:
    """Interpolation environment of every stack (see ``stack_interpolation``): what is passed
    to compose as its process environment. Override to add variables."""
    return dict(stack_interpolation.env)


@pytest.fixture(scope="session")
def stack_env_file(stack_interpolation: Any) -> Path | None:
    """The env file compose reads for interpolation: the project's ``.env`` (None: none)."""
    found: Path | None = stack_interpolation.env_file
    return found


@pytest.fixture(scope="session")
def compose_model(imagegate_settings: Settings, stack_files: list[Path],
                  stack_env: dict[str, str], stack_env_file: Path | None) -> Any:
    """The session's compose project resolved once (``compose config``): a
    :class:`~imagegate.model.compose.Model` the stack checks and the override read."""
    from imagegate.model.compose import Model

    try:
        return Model.load(stack_files, project_dir=imagegate_settings.project_dir, env=stack_env,
                          env_file=stack_env_file)
    except ImagegateError as exc:
        pytest.fail(f"imagegate: {exc.message}", pytrace=False)


def gated_of(settings: Settings, model: Any) -> list[str]:
    """The services of ``model`` that build the gated Dockerfile (they run the tested image)."""
    from imagegate.model.compose import gated_services

    return gated_services(model, context=settings.path(settings.context or "."),
                          dockerfile=settings.path(settings.dockerfile or "Dockerfile"),
                          target=settings.target)


@pytest.fixture(scope="session")
def service_images(docker_client: Any, imagegate_settings: Settings, compose_model: Any,
                   ) -> dict[str, str]:
    """{service: image id} of every service with its own ``build:`` besides the gated image,
    built as compose would (a cache hit when the gate's build stage built them already)."""
    from imagegate.build.pipeline import build_services

    try:
        built = build_services(docker_client, imagegate_settings, compose_model,
                               gated_of(imagegate_settings, compose_model), log=lambda _: None)
    except ImagegateError as exc:
        pytest.fail(f"imagegate: {exc.message}\n{exc.detail}", pytrace=False)
    return {svc: result.image_id for svc, result in built.items()}


def gate_overrides(settings: Settings, model: Any, image: str,
                   built: Mapping[str, str] | None = None) -> list[str]:
    """The gate's override texts for ``model``: the tested image on the services that build the
    gated Dockerfile, the images in ``built`` on the other services that build, every port on
    127.0.0.1. Another ``build:`` service that was not built is a one-line UsageError."""
    from imagegate.model.compose import gate_override, other_builds

    gated = gated_of(settings, model)
    missing = [svc for svc, _ in other_builds(model, gated) if svc not in (built or {})]
    if missing:
        raise UsageError(f"{model.files[0].name}: service {', '.join(missing)} builds its own "
                         "image and none was built for it (request the service_images fixture)")
    return [gate_override(model, tested_image=image, gated=gated, labels={}, built=built)]


def _start(settings: Settings, session: str, files: Sequence[str | os.PathLike[str]],
           env: Mapping[str, str], project: str, **options: Any) -> Any:
    """``running_stack`` with the settings' defaults; a context manager."""
    return running_stack(
        files, project=project, session=session, env=env,
        project_dir=options.pop("project_dir", None) or Path(files[0]).resolve().parent,
        wait_timeout=options.pop("wait_timeout", None) or settings.wait_timeout,
        default_port=settings.web_port, pull=options.pop("pull", None) or settings.pull,
        published_host=published_host(settings),
        **options,
    )


def serving(settings: Settings) -> tuple[str, int, str] | None:
    """(web service, web port, probe path) a stack waits to answer through the gate's probe."""
    if not settings.web_service or not settings.web_port:
        return None
    return settings.web_service, settings.web_port, settings.health_path or "/"


@dataclass
class StackAttempt:
    """The session's stack if it came up, else why not (IG-STACK-HEALTHY judges it)."""

    stack: Stack | None
    message: str = ""
    detail: str = ""

    def diagnostics(self) -> list[tuple[str, str]]:
        """Report sections for a failing test: the stack's, or the failure's detail."""
        if self.stack is not None:
            return self.stack.diagnostics()
        return [("stack did not come up", f"{self.message}\n{self.detail}")]


@pytest.fixture(scope="session")
def stack_attempt(pytestconfig: pytest.Config, docker_client: Any, imagegate_settings: Settings,
                  imagegate_session: str, stack_files: list[Path], stack_env: dict[str, str],
                  compose_model: Any, app_image: str, service_images: dict[str, str],
                  stack_env_file: Path | None) -> Iterator[StackAttempt]:
    """Bring the session's stack up (``<session>-main-<x>``) and keep it up for the session; a stack
    that does not get healthy (or whose web service dies, or never answers HTTP through the
    gate's probe on its network) is recorded (and taken down), not raised. Under the gate
    (``--imagegate-attach``): the gate's one stack, which the gate brings up and down."""
    s = imagegate_settings
    if attached(pytestconfig) is not None:
        yield from attach_stack(pytestconfig, docker_client, s, compose_model)
        return
    with contextlib.ExitStack() as exits:
        try:
            overrides = gate_overrides(s, compose_model, app_image, service_images)
            running = exits.enter_context(_start(
                s, imagegate_session, stack_files, stack_env,
                f"{imagegate_session}-main-{uuid.uuid4().hex[:6]}",
                project_dir=s.project_dir, overrides=overrides, model=compose_model,
                env_file=stack_env_file, serve=serving(s)))
        except ImagegateError as exc:
            attempt = StackAttempt(None, exc.message, exc.detail)
        else:
            attempt = StackAttempt(running)
        yield attempt  # the stack comes down when the session ends (pass, fail, Ctrl-C)


@pytest.fixture(scope="session")
def stack(stack_attempt: StackAttempt) -> Stack:
    """The project's compose stack, up and healthy for the whole session.

    The services that build the gated Dockerfile run the tested image; ports are on 127.0.0.1.
    Interpolation reads only ``stack_env`` and an empty env file (never the project's ``.env``);
    override ``stack_files``/``stack_env`` to change what comes up, or this fixture entirely.
    On a failing test its ``compose ps``, logs and health logs are attached to the report.
    """
    if stack_attempt.stack is None:
        pytest.fail(f"imagegate: {stack_attempt.message}\n{stack_attempt.detail}",
                    pytrace=False)
    return stack_attempt.stack


@pytest.fixture(scope="session")
def stack_up(stack_attempt: StackAttempt) -> Stack:
    """The session's stack; a check using it skips when the stack did not come up (the
    generic IG-STACK-HEALTHY check reports why)."""
    if stack_attempt.stack is None:
        pytest.skip(f"the stack did not come up (see IG-STACK-HEALTHY): {stack_attempt.message}")
    return stack_attempt.stack


@pytest.fixture
def stack_url(stack: Stack, imagegate_settings: Settings) -> str:
    """Base URL (no trailing slash) of ``web_service``:``web_port``, reachable from the tests:
    its published port on 127.0.0.1, or, where this machine cannot reach the engine's published
    ports (a remote engine, GitLab's dind), a forward on 127.0.0.1 through the gate's probe
    (:meth:`~imagegate.run.stack.Stack.reach`).

    Function-scoped on purpose: a restarted container may get a new ephemeral port.
    """
    return stack.reach(imagegate_settings.web_service, "",
                       container_port=imagegate_settings.web_port)


class StackFactory:
    """Start extra compose projects for one test; all of them go down when the test ends.

    ``stack_factory(files=[...], env={...}, env_file=..., project_dir=..., wait_timeout=...)``
    returns a started :class:`Stack`. ``files`` defaults to the session's ``stack_files``;
    ``env`` is merged over ``stack_env`` (a value of ``None`` removes that variable);
    ``project_dir`` defaults to the first file's directory (so a ``.env`` beside it is read).
    Like the session's stack, each variant runs the tested image with its ports on 127.0.0.1.
    """

    def __init__(self, settings: Settings, session: str, files: list[Path],
                 env: Mapping[str, str], image: str, exits: contextlib.ExitStack,
                 built: Mapping[str, str] | None = None) -> None:
        self._settings, self._session, self._files, self._env = settings, session, files, env
        self._image, self._built = image, dict(built or {})
        self._exits = exits
        self.stacks: list[Stack] = []

    def __call__(self, files: Sequence[str | os.PathLike[str]] | None = None, *,
                 env: Mapping[str, str | None] | None = None, **options: Any) -> Stack:
        """Bring up one project variant (see the class docstring)."""
        from imagegate.model.compose import Model

        merged = {**self._env, **(env or {})}
        clean = {k: v for k, v in merged.items() if v is not None}
        chosen = list(files or self._files)
        project_dir = options.get("project_dir") or Path(chosen[0]).resolve().parent
        model = Model.load(chosen, project_dir=project_dir, env=clean,
                           env_file=options.get("env_file"))
        project = f"{self._session}-{uuid.uuid4().hex[:6]}"
        started: Stack = self._exits.enter_context(
            _start(self._settings, self._session, chosen, clean, project, model=model,
                   overrides=gate_overrides(self._settings, model, self._image, self._built),
                   **options))
        self.stacks.append(started)
        return started

    def diagnostics(self) -> list[tuple[str, str]]:
        """Every started variant's diagnostics, for the failure report."""
        return [(f"{s.project}: {title}", text)
                for s in self.stacks for title, text in s.diagnostics()]


@pytest.fixture
def stack_factory(docker_client: Any, imagegate_settings: Settings, imagegate_session: str,
                  stack_files: list[Path], stack_env: dict[str, str], app_image: str,
                  service_images: dict[str, str]) -> Iterator[StackFactory]:
    """A factory for per-test compose projects (:class:`StackFactory`); torn down at test end."""
    with contextlib.ExitStack() as exits:
        yield StackFactory(imagegate_settings, imagegate_session, stack_files, stack_env,
                           app_image, exits, service_images)


@contextlib.contextmanager
def web_as_compose_runs_it(settings: Settings, session: str, files: Sequence[Path],
                           env: Mapping[str, str], env_file: Path | None, model: Any,
                           image: str, built: Mapping[str, str]) -> Iterator[Any]:
    """The web service's container as compose runs it — its command, entrypoint, environment,
    env_file, user, read_only, tmpfs and volumes, with the services it depends on up — in a
    project of its own (``<session>-run-<x>``), the tested image pinned; a
    :class:`~imagegate.run.container.RunningContainer` reached through the gate's probe on its
    network (and its published port, when it has one). The project goes down on exit."""
    overrides = gate_overrides(settings, model, image, built)
    with _start(settings, session, files, env, f"{session}-run-{uuid.uuid4().hex[:6]}",
                project_dir=settings.project_dir, overrides=overrides, model=model,
                env_file=env_file, services=(settings.web_service,),
                serve=serving(settings)) as running:
        yield web_container(running, settings, model)


def web_container(running: Stack, settings: Settings, model: Any) -> Any:
    """The web service of a started stack as a :class:`~imagegate.run.container.RunningContainer`
    (the run checks' view): reached through the stack's probe on its network, and through its
    published port when it has one this machine reaches."""
    from imagegate.config.project import web_port
    from imagegate.run.container import RunningContainer

    web, port = settings.web_service, web_port(settings)
    url = ""
    if any(p.target == port for p in model.published(web)):
        with contextlib.suppress(ImagegateError):
            url = running.url(web, "", container_port=port)
    return RunningContainer(running.container(web), url, port,
                            probe_get=lambda path: running.http(web, path, container_port=port))


# -- the gate's one stack, shared by its pytest runs (``--imagegate-attach``) -----------------

#: In the directory ``--imagegate-attach`` names: the container environment the gate's stack
#: runs with (``@random`` already drawn), written before the runs start, and the stack itself
#: (or why it did not come up), written once it is up. Private (0700 directory, 0600 files):
#: both hold secrets.
ATTACH_ENV, ATTACH_STACK = "run_env.json", "stack.json"


def write_private(path: Path, data: Mapping[str, Any]) -> None:
    """``data`` as JSON at ``path``, readable by this user only, never seen half written."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out)
    os.replace(tmp, path)


@contextlib.contextmanager
def gate_stack(cli: Any, settings: Settings, session: str, image: str,
               built: Mapping[str, str], where: Path) -> Iterator[None]:
    """Bring up the project's stack once for the gate's image and stack stages and describe it in
    ``where`` (:data:`ATTACH_STACK`) for the pytest runs that judge it: the generic checks and
    the project's own image suite (``--imagegate-attach``), so the web service starts once,
    as compose runs it. ``where`` must already hold :data:`ATTACH_ENV`. A stack that does not
    come up is described with its error (IG-STACK-HEALTHY and IG-RUN-HEALTHY report it), never
    raised; the stack goes down when the block is left, however it is left."""
    from imagegate.build.pipeline import redis_image
    from imagegate.config.project import gate_interpolation
    from imagegate.model.compose import Model

    described: dict[str, Any] = {"ok": False, "message": "the gate's stack did not start",
                                 "detail": ""}
    try:
        with contextlib.ExitStack() as exits:
            run_env = json.loads((where / ATTACH_ENV).read_text())
            files = [settings.path(settings.compose_file)]
            try:
                found = gate_interpolation(settings.project_dir, files,
                                           {**run_env, "REDIS_IMAGE": redis_image()},
                                           settings.image_var, image)
                env, env_file = dict(found.env), found.env_file
                model = Model.load(files, project_dir=settings.project_dir, env=env,
                                   env_file=env_file)
                running = exits.enter_context(_start(
                    settings, session, files, env, f"{session}-main-{uuid.uuid4().hex[:6]}",
                    project_dir=settings.project_dir,
                    overrides=gate_overrides(settings, model, image, built), model=model,
                    env_file=env_file, serve=serving(settings)))
            except ImagegateError as exc:
                described = {"ok": False, "message": exc.message, "detail": exc.detail}
            except Exception as exc:  # the engine's or compose's own: still a verdict, not a crash
                described = {"ok": False, "detail": "",
                             "message": f"the gate's stack did not come up: "
                                        f"{type(exc).__name__}: {str(exc)[:300]}"}
            else:
                probe = running.probe
                described = {
                    "ok": True, "files": [str(f) for f in running.files],
                    "project": running.project, "project_dir": str(running.project_dir),
                    "env": running.env, "env_file": str(running.env_file),
                    "session": running.session, "default_port": running.default_port,
                    "published_host": running.published_host,
                    "probe": None if probe is None else {
                        "container": probe.container.id, "interpreter": probe.interpreter,
                        "network": probe.network}}
            write_private(where / ATTACH_STACK, described)
            yield
    finally:
        if not (where / ATTACH_STACK).exists():  # never leave the runs waiting for it
            with contextlib.suppress(OSError):
                write_private(where / ATTACH_STACK, described)


def attached(config: pytest.Config) -> Path | None:
    """The directory of the gate's shared stack this run judges (``--imagegate-attach``)."""
    given = config.getoption("imagegate_attach", default=None)
    return Path(given) if given else None


def attach_file(config: pytest.Config, name: str, timeout: float) -> dict[str, Any]:
    """File ``name`` of the attached stack's directory, once the gate has written it."""
    from imagegate.proc import wait_until

    where = attached(config)
    assert where is not None
    path = where / name
    wait_until(path.exists, timeout=timeout, interval=0.05,
               what=f"the gate's stack description {path}")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def attach_stack(config: pytest.Config, cli: Any, settings: Settings,
                 model: Any) -> Iterator[StackAttempt]:
    """The gate's shared stack as this run's :class:`StackAttempt` (waiting until it is up):
    the same compose project (files, environment, probe container), never taken down here."""
    from imagegate.run.probe import Probe

    data = attach_file(config, ATTACH_STACK, timeout=settings.wait_timeout + 300)
    if not data["ok"]:
        yield StackAttempt(None, data["message"], data["detail"])
        return
    stack = Stack(tuple(Path(f) for f in data["files"]), data["project"],
                  Path(data["project_dir"]), dict(data["env"]), Path(data["env_file"]),
                  data["session"], default_port=int(data["default_port"]),
                  published_host=data["published_host"], model=model)
    probe = data["probe"]
    if probe is not None:
        stack.probe = Probe(cli.containers.get(probe["container"]), probe["interpreter"],
                            probe["network"])
    try:
        yield StackAttempt(stack)
    finally:
        if stack.probe is not None:
            stack.probe.close()  # this run's request loop; the container is the gate's
