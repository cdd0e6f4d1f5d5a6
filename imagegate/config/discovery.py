"""Zero-config discovery: what the user did not configure, read from the project itself.

:func:`discover` looks at the project the way ``docker compose`` would (through one
:class:`~imagegate.model.compose.Model`) and fills, each value with where it came from:

* the compose file (``compose_file``, else the first of compose.yaml, compose.yml,
  docker-compose.yaml, docker-compose.yml; none is not an error: the stack stage is skipped);
* the web service (``web_service``, else the one service built from the project, else the only
  service publishing a port);
* Dockerfile, context, target and build args (the web service's ``build:``: the gate builds
  exactly what compose would; else ``./Dockerfile``); given settings win;
* the web port (``web_port``, else the web service's first published container port, else the
  Dockerfile's ``EXPOSE``);
* the health probe (``health_path`` answering 2xx, else ``GET /`` below 500; the image's own
  HEALTHCHECK is preferred at run time, which the caller decides after the build);
* the gated services: every service whose ``build:`` is the gated Dockerfile + context (+ target);
  the gate's override runs the tested image on them.

Every failure is one :class:`UsageError` line naming the setting to add.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagegate.config.settings import Settings
from imagegate.errors import UsageError
from imagegate.model import compose, servers
from imagegate.model.compose import Model

#: ``compose_file = "none"``: gate the image alone (no stack; the run checks on the image's own
#: CMD and ENV), though the project has a compose file.
NO_COMPOSE = "none"
#: Where a value that could not be discovered came from starts with this (the reason follows).
UNKNOWN = "unknown: "
#: The probe used when no ``health_path`` is configured (and the image has no HEALTHCHECK).
DEFAULT_PROBE = "/"


#: What discovery reads: the project's settings as loaded (nothing discovered yet).
SettingsLike = Settings


@dataclass
class Discovered:
    """What the project is, each setting with where it came from (see :attr:`values`)."""

    project_dir: Path
    #: The compose file, or None (then :attr:`no_compose` says why the stack stage is skipped).
    compose_file: Path | None
    #: The compose project resolved once (None without a compose file); reuse it for the stack.
    model: Model | None
    web_service: str
    dockerfile: Path
    context: Path
    target: str
    build_args: dict[str, str]
    web_port: int
    #: The path the stack's probe GETs, and whether it must answer 2xx (else: any status < 500).
    health_path: str
    expect_2xx: bool
    #: Services whose ``build:`` is the gated Dockerfile + context: they run the tested image.
    gated: tuple[str, ...]
    #: Setting key → (value in the settings' own type, where it came from). Only keys discovery
    #: decides; ``health_path`` appears only when configured (empty means "the default probe").
    values: dict[str, tuple[Any, str]] = field(default_factory=dict)
    #: "" or the reason there is no stack to run ("no compose file (…)").
    no_compose: str = ""
    #: How compose interpolates the files (process environment, ``.env``, ``run_env``).
    interpolation: compose.Interpolation | None = None
    #: Services that build their own image besides the gated one (built and run, not gated).
    others: tuple[str, ...] = ()

    def where(self, key: str) -> str:
        """Where ``key``'s value came from ("" when discovery did not decide it)."""
        return self.values.get(key, ("", ""))[1]

    def describe(self) -> list[str]:
        """Lines for a report header: ``key: value [where it came from]``."""
        rel = self._rel
        lines = [f"compose_file: {rel(self.compose_file)} [{self.where('compose_file')}]"
                 if self.compose_file else f"compose_file: none [{self.no_compose}]"]
        if self.web_service:
            lines.append(f"web_service: {self.web_service} [{self.where('web_service')}]")
        lines += [
            f"dockerfile: {rel(self.dockerfile)} [{self.where('dockerfile')}]",
            f"context: {rel(self.context)} [{self.where('context')}]",
        ]
        if self.target:
            lines.append(f"target: {self.target} [{self.where('target')}]")
        if self.build_args:
            shown = ", ".join(f"{k}={v}" for k, v in sorted(self.build_args.items()))
            lines.append(f"build_args: {shown} [{self.where('build_args')}]")
        lines.append(f"web_port: {self.web_port} [{self.where('web_port')}]")
        if self.expect_2xx:
            lines.append(f"health: GET {self.health_path} answers 2xx "
                         f"[{self.where('health_path')}]")
        else:
            lines.append(f"health: the image's HEALTHCHECK, else GET {self.health_path} "
                         "answers below 500 [default]")
        if self.compose_file and self.gated:
            lines.append(f"gated services: {', '.join(self.gated)} (run the tested image; "
                         "every port on 127.0.0.1)")
        elif self.compose_file:
            lines.append(f"gated services: none (no service builds {rel(self.dockerfile)})")
        if self.others:
            lines.append(f"also built: {', '.join(self.others)} (their own build:, run in the "
                         "stack, linted as advice)")
        if self.interpolation is not None and self.interpolation.sources:
            lines.append(f"interpolation: {self.interpolation.describe()}")
        return lines

    def _rel(self, path: Path | None) -> str:
        """``path`` project-relative when inside the project (``.`` for the project itself)."""
        return _setting_path(path, self.project_dir) if path else ""


def discover(project_dir: str | os.PathLike[str], given: SettingsLike, *,
             env: Mapping[str, str] | None = None, model: Model | None = None) -> Discovered:
    """Fill what ``given`` leaves empty from the project at ``project_dir`` (see the module doc).

    ``env`` is the compose interpolation environment (default: ``run_env`` with ``@random``
    materialized and ``image_var`` set to a placeholder, since the image is not built yet);
    ``model`` skips loading the compose file again.
    """
    root = Path(project_dir).resolve()
    sources = dict(getattr(given, "sources", {}) or {})
    values: dict[str, tuple[Any, str]] = {}

    def source(key: str) -> str:
        return sources.get(key) or "given"

    # -- compose file ------------------------------------------------------------------------
    compose_path: Path | None
    no_compose = ""
    if given.compose_file == NO_COMPOSE:
        compose_path = None
        no_compose = (f"compose_file = none [{source('compose_file')}]: the image runs alone, "
                      "no stack")
    elif given.compose_file:
        compose_path = (root / given.compose_file).resolve()
        if not compose_path.is_file():
            raise UsageError(f"compose_file {given.compose_file}: not found in {root} "
                             f"[{source('compose_file')}]")
        values["compose_file"] = (given.compose_file, source("compose_file"))
    else:
        compose_path = compose.find_file(root)
        if compose_path is None:
            no_compose = compose.no_compose_file()
        else:
            values["compose_file"] = (_setting_path(compose_path, root), "found")
    interp = None
    if compose_path is not None:
        interp = _interpolation(given, env, root, compose_path)
    if compose_path is not None and model is None and interp is not None:
        model = Model.load([compose_path], project_dir=root, env=interp.env,
                           env_file=interp.env_file)
    if compose_path is None:
        model = None
    label = compose_path.name if compose_path else ""

    # -- web service -------------------------------------------------------------------------
    given_context = (root / given.context).resolve() if given.context else None
    given_dockerfile = (root / given.dockerfile).resolve() if given.dockerfile else None
    web = ""
    if given.web_service:
        web = given.web_service
        if model is not None and web not in model.raw.get("services", {}):
            raise UsageError(f"web_service {web!r} [{source('web_service')}]: {label} has no such "
                             f"service (services: {', '.join(model.services) or 'none'})")
        values["web_service"] = (web, source("web_service"))
    elif model is not None:
        web, why = _web_service(model, given_context, given_dockerfile, given.target, label)
        values["web_service"] = (web, why)

    # -- what to build: exactly what compose would build for the web service ----------------
    spec = model.build(web) if model is not None and web else None
    where_build = f"{label}: {web} build"
    if spec is not None and (spec.inline or spec.remote) and given_dockerfile is None:
        kind = "dockerfile_inline" if spec.inline else f"the remote context {spec.remote}"
        raise UsageError(f"{label}: service {web} builds from {kind}; the gate builds a local "
                         "Dockerfile: set dockerfile (and context) in [tool.imagegate]")
    local = spec if spec is not None and not (spec.inline or spec.remote) else None
    if given_context is not None:
        context, context_from = given_context, source("context")
    elif local is not None:
        context, context_from = local.context, where_build
    else:
        context, context_from = root, "default"
    if given_dockerfile is not None:
        dockerfile, dockerfile_from = given_dockerfile, source("dockerfile")
    elif local is not None and _real(local.context) == _real(context):
        dockerfile, dockerfile_from = local.dockerfile, where_build
    else:
        dockerfile, dockerfile_from = context / "Dockerfile", "default"
    same = local is not None and (_real(local.context), _real(local.dockerfile)) == (
        _real(context), _real(dockerfile))
    if given.target:
        target, target_from = given.target, source("target")
    else:
        target = local.target if same and local is not None else ""
        target_from = where_build if target else "default"
    compose_args = dict(local.args) if same and local is not None else {}
    build_args = {**compose_args, **dict(given.build_args or {})}
    args_from = " + ".join(w for w, present in ((where_build, compose_args),
                                                (source("build_args"), given.build_args))
                           if present) or "default"
    values["context"] = (_setting_path(context, root), context_from)
    values["dockerfile"] = (_setting_path(dockerfile, root), dockerfile_from)
    values["target"] = (target, target_from)
    values["build_args"] = (build_args, args_from)

    # -- web port ----------------------------------------------------------------------------
    if given.web_port:
        port, port_from = int(given.web_port), source("web_port")
    else:
        port, port_from = _web_port(model, web, label, dockerfile, target, root)
    values["web_port"] = (port, port_from)

    # -- health ------------------------------------------------------------------------------
    if given.health_path:
        health, expect_2xx = given.health_path, True
        values["health_path"] = (given.health_path, source("health_path"))
    else:
        health, expect_2xx = DEFAULT_PROBE, False

    gated = tuple(compose.gated_services(model, context=context, dockerfile=dockerfile,
                                         target=target)) if model is not None else ()
    others = tuple(s for s, _ in compose.other_builds(model, gated)) if model is not None else ()
    return Discovered(root, compose_path, model, web, dockerfile, context, target, build_args,
                      port, health, expect_2xx, gated, values, no_compose, interp, others)


def _interpolation(given: SettingsLike, env: Mapping[str, str] | None, root: Path,
                   compose_path: Path) -> compose.Interpolation:
    """How compose interpolates the file while discovering: as the gate will (see
    :func:`imagegate.config.project.gate_interpolation`); a given ``env`` replaces all that."""
    if env is not None:
        return compose.Interpolation(dict(env), None, {})
    from imagegate.config.project import gate_interpolation

    found: compose.Interpolation = gate_interpolation(
        root, [compose_path], getattr(given, "run_env", {}), getattr(given, "image_var", ""))
    return found


def _web_service(model: Model, context: Path | None, dockerfile: Path | None, target: str,
                 label: str) -> tuple[str, str]:
    """The service that runs the Flask app (see the module doc): built from the project and not
    a proxy; among several, the one running a web server, then the one publishing a port."""
    root = model.project_dir
    proxies = {s: why for s in model.services if (why := proxy_of(model, s))}
    local = {s: spec for s in model.services
             if (spec := model.build(s)) is not None and not spec.remote and s not in proxies}

    def builds_here(spec: compose.BuildSpec, where: Path) -> bool:
        if _real(spec.context) != _real(where):
            return False
        if dockerfile is not None and _real(spec.dockerfile) != _real(dockerfile):
            return False
        return not target or spec.target == target

    where = context or root
    builds = [s for s, spec in local.items() if builds_here(spec, where)]
    if not builds and context is None and dockerfile is None and not target:
        builds = list(local)  # services/web, app/ …: every non-proxy service that builds
    skipped = (f" ({', '.join(f'{s}: {why}' for s, why in proxies.items())}: a proxy, "
               "never the app)") if proxies else ""
    shown_context = _setting_path(where, root)
    if len(builds) == 1:
        return builds[0], f"{label}: builds {_built(local[builds[0]], root)}{skipped}"
    if builds:
        pool = builds
        narrowing = (("publishes a port", lambda svc: bool(model.published(svc))),
                     ("exposes a port", lambda svc: bool(model.published(svc) or
                                                         model.exposed(svc))),
                     ("runs a web server", lambda svc: bool(servers.server(run_argv(model, svc)))))
        for said, keeps in narrowing:
            kept = [svc for svc in pool if keeps(svc)]
            if len(kept) == 1:
                return kept[0], f"{label}: builds {_built(local[kept[0]], root)}, {said}"
            pool = kept or pool
        same = len({_real(local[s].context) for s in pool}) == 1
        what = f"all build {shown_context}" if same else "all build an app image"
        raise UsageError(f"{label}: {', '.join(pool)} {what}; set web_service (the one serving "
                         "HTTP) in [tool.imagegate]")
    candidates = [s for s in model.services if s not in proxies]
    publishing = [s for s in candidates if model.published(s)]
    if len(publishing) == 1:
        return publishing[0], f"{label}: the only service publishing a port{skipped}"
    if publishing:
        raise UsageError(f"{label}: no service builds {shown_context} and "
                         f"{', '.join(publishing)} all publish ports; set web_service (the one "
                         "serving HTTP) in [tool.imagegate]")
    raise UsageError(f"{label}: no service builds {shown_context} or publishes a port (services: "
                     f"{', '.join(model.services) or 'none'}); set web_service in "
                     "[tool.imagegate]")


def _built(spec: compose.BuildSpec, root: Path) -> str:
    """``services/web`` (``services/web/Dockerfile.prod`` when not the default name)."""
    where = _setting_path(spec.context, root)
    return where if spec.dockerfile.name == "Dockerfile" else \
        f"{where} ({spec.dockerfile.name})"


def _dockerfile_of(model: Model, service: str) -> Any:
    """The parsed Dockerfile ``service`` builds, or None (no build, unreadable, inline)."""
    from imagegate.model.dockerfile import parse

    spec = model.build(service)
    if spec is None or spec.remote:
        return None
    try:
        return parse(spec.inline or spec.dockerfile.read_text())
    except (OSError, UsageError):
        return None


def run_argv(model: Model, service: str) -> list[str]:
    """The argv ``service`` runs as compose starts it: its ``entrypoint``/``command``, else the
    Dockerfile's ENTRYPOINT/CMD (an image's own is unknown before it is built or pulled)."""
    from imagegate.model import dockerfile as df_mod

    entrypoint, command = model.entrypoint(service), model.command(service)
    parsed = _dockerfile_of(model, service)
    spec = model.build(service)
    if parsed is not None and spec is not None:
        image_entry, image_cmd = df_mod.run_argv(parsed, spec.target)
    else:
        image_entry, image_cmd = [], []
    if entrypoint is not None:
        return [*entrypoint, *(command or [])]  # compose's entrypoint resets the image's CMD
    return [*image_entry, *(command if command is not None else image_cmd)]


def proxy_of(model: Model, service: str) -> str:
    """Why ``service`` is a reverse proxy (``FROM nginx:1.25``, ``image nginx:1.25``), or ""."""
    from imagegate.model.dockerfile import final_base

    image = model.image(service)
    spec = model.build(service)
    parsed = _dockerfile_of(model, service)
    if parsed is not None and spec is not None:
        base = final_base(parsed, spec.target, spec.args)
        if servers.proxy(base):
            return f"FROM {base}"
        return ""
    if spec is None and servers.proxy(image):
        return f"image {image}"
    return ""


def _web_port(model: Model | None, web: str, label: str, dockerfile: Path, target: str,
              root: Path) -> tuple[int, str]:
    """The web service's port, in order: its first published TCP container port, its first
    ``expose``d port, the port its server command binds, the Dockerfile's EXPOSE."""
    from imagegate.model.dockerfile import exposed_ports, parse

    if model is not None and web:
        ports = [p for p in model.published(web) if p.protocol == "tcp"]
        if ports:
            return ports[0].target, f"{label}: {web} ports {ports[0].short}"
        exposed = model.exposed(web)
        if exposed:
            return exposed[0], f"{label}: {web} expose {exposed[0]}"
        port, said = servers.bind_port(run_argv(model, web))
        if port:
            return port, f"{label}: {web} runs {said}"
    shown = _setting_path(dockerfile, root)
    try:
        text = dockerfile.read_text()
    except OSError:
        text = None
    if text is not None:
        exposed = exposed_ports(parse(text), target)
        if exposed:
            more = f" (first of {', '.join(map(str, exposed))})" if len(exposed) > 1 else ""
            return exposed[0], f"{shown}: EXPOSE {exposed[0]}{more}"
        if model is None or not web:
            from imagegate.model.dockerfile import run_argv as image_argv

            entry, cmd = image_argv(parse(text), target)
            port, said = servers.bind_port([*entry, *cmd])
            if port:
                return port, f"{shown}: CMD {said}"
    # Not an error here: linting needs no port. Whatever runs a container asks for it and
    # raises this very line (see :func:`imagegate.config.project.web_port`).
    if text is None:
        return 0, (f"{UNKNOWN}{shown}: Dockerfile not found; set dockerfile (or web_port) in "
                   "[tool.imagegate]")
    why = (f"{label}: {web} publishes, exposes and binds no port and "
           if model is not None and web else "")
    return 0, (f"{UNKNOWN}cannot tell the web port: {why}{shown} EXPOSEs none; set web_port in "
               "[tool.imagegate]")


def _real(path: Path) -> Path:
    """``path`` with symlinks resolved, to compare two spellings of one file."""
    return Path(os.path.realpath(path))


def _setting_path(path: Path, root: Path) -> str:
    """A path as a setting holds it: project-relative inside the project, else absolute."""
    try:
        return Path(path).relative_to(root).as_posix() or "."
    except ValueError:
        return str(path)
