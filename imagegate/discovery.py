"""Zero-config discovery: what the user did not configure, read from the project itself.

:func:`discover` looks at the project the way ``docker compose`` would (through one
:class:`~imagegate.compose.Model`) and fills, each value with where it came from:

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

from . import compose
from .compose import Model
from .errors import UsageError
from .settings import Settings

#: Stands in for the tested image while discovering (the image is built after discovery).
PENDING_IMAGE = "imagegate/discovery:pending"
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
    if given.compose_file:
        compose_path = (root / given.compose_file).resolve()
        if not compose_path.is_file():
            raise UsageError(f"compose_file {given.compose_file}: not found in {root} "
                             f"[{source('compose_file')}]")
        values["compose_file"] = (given.compose_file, source("compose_file"))
    else:
        compose_path = compose.find_file(root)
        if compose_path is None:
            no_compose = f"no compose file ({', '.join(compose.DEFAULT_FILES)})"
        else:
            values["compose_file"] = (_setting_path(compose_path, root), "found")
    if compose_path is not None and model is None:
        model = Model.load([compose_path], project_dir=root, env=_interpolation(given, env))
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
        web, why = _web_service(model, given_context or root, given_dockerfile, given.target,
                                label)
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
    return Discovered(root, compose_path, model, web, dockerfile, context, target, build_args,
                      port, health, expect_2xx, gated, values, no_compose)


def _interpolation(given: SettingsLike, env: Mapping[str, str] | None) -> dict[str, str]:
    """The environment compose interpolates the file with while discovering."""
    if env is not None:
        return dict(env)
    from .settings import materialize_env

    out = materialize_env(dict(getattr(given, "run_env", {}) or {}))
    image_var = getattr(given, "image_var", "") or "APP_IMAGE"
    out.setdefault(image_var, PENDING_IMAGE)
    return out


def _web_service(model: Model, context: Path, dockerfile: Path | None, target: str,
                 label: str) -> tuple[str, str]:
    """The one service built from ``context`` (``dockerfile``, ``target`` when given), else the
    only one publishing a port; when several build it, the only one of them publishing."""
    services = model.services
    builds = []
    for name in services:
        spec = model.build(name)
        if spec is None or spec.remote or _real(spec.context) != _real(context):
            continue
        if dockerfile is not None and _real(spec.dockerfile) != _real(dockerfile):
            continue
        if target and spec.target != target:
            continue
        builds.append(name)
    shown = _setting_path(context, model.project_dir)
    if len(builds) > 1:
        publishing = [s for s in builds if model.published(s)]
        if len(publishing) == 1:
            return publishing[0], f"{label}: builds {shown}, publishes a port"
        raise UsageError(f"{label}: {', '.join(builds)} all build {shown}; set web_service "
                         "(the one serving HTTP) in [tool.imagegate]")
    if builds:
        return builds[0], f"{label}: builds {shown}"
    publishing = [s for s in services if model.published(s)]
    if len(publishing) == 1:
        return publishing[0], f"{label}: the only service publishing a port"
    if publishing:
        raise UsageError(f"{label}: no service builds {shown} and {', '.join(publishing)} all "
                         "publish ports; set web_service (the one serving HTTP) in "
                         "[tool.imagegate]")
    raise UsageError(f"{label}: no service builds {shown} or publishes a port (services: "
                     f"{', '.join(services) or 'none'}); set web_service in [tool.imagegate]")


def _web_port(model: Model | None, web: str, label: str, dockerfile: Path, target: str,
              root: Path) -> tuple[int, str]:
    """The web service's first published TCP container port, else the Dockerfile's EXPOSE."""
    if model is not None and web:
        ports = [p for p in model.published(web) if p.protocol == "tcp"]
        if ports:
            return ports[0].target, f"{label}: {web} ports {ports[0].short}"
    from .dockerfile import exposed_ports, parse

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
    # Not an error here: linting needs no port. Whatever runs a container asks for it and
    # raises this very line (see :func:`imagegate.project.web_port`).
    if text is None:
        return 0, (f"{UNKNOWN}{shown}: Dockerfile not found; set dockerfile (or web_port) in "
                   "[tool.imagegate]")
    why = f"{label}: {web} publishes no port and " if model is not None and web else ""
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
