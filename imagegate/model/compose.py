"""The compose model: a project as ``docker compose config`` resolves it, read once per gate.

Compose itself decides file names, merging, interpolation and the short syntaxes; this module
runs ``compose config --format json`` once and reads the canonical JSON it prints (absolute
paths, ``ports``/``volumes``/``build`` in long form). On top of it:

* :func:`find_file`: the project's compose file, in the Compose spec's order;
* :class:`Model`: services, builds, images, published ports, bind mounts, healthchecks and the
  line of each service in the user's file (for report locations);
* :func:`source_mounts` / :func:`exposed_beyond_loopback`: what two stack checks judge on the
  user's file;
* :func:`gate_override`: the text of the gate's own override file (the tested image pinned on
  the services that build the gated Dockerfile, every port moved to 127.0.0.1 ephemeral, labels
  everywhere). The gate never edits the user's files.

The argv/environment handling every compose call shares (an empty ``--env-file`` unless one is
given, stray process variables blanked) lives here too; :mod:`imagegate.run.stack` uses it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagegate.errors import UsageError
from imagegate.proc import run

#: The Compose spec's default file names, in the order compose looks for them. The gate reads
#: only the first one found: ``compose.override.*`` is a developer's overlay and is NOT merged.
DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
#: Host addresses that publish a port on every interface.
ALL_INTERFACES = ("", "0.0.0.0", "::", "[::]")
#: Seconds a ``compose config`` may take.
CONFIG_TIMEOUT = 60.0

_VAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
_REQUIRED = re.compile(r"required variable ([A-Za-z_][A-Za-z0-9_]*) is missing a value(?::\s*(.*))?")


# -- the compose CLI, as every caller runs it -------------------------------------------------


def compose_command() -> list[str]:
    """The Compose v2+ argv prefix: the binary next to this Python first, then PATH, then the CLI."""
    beside = Path(sys.executable).parent / "docker-compose"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("docker-compose")
    return [found] if found else ["docker", "compose"]


def last_line(text: str) -> str:
    """Compose's own complaint: the last non-empty line of its stderr, trimmed."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "(no output)"


def env_file_names(path: Path) -> set[str]:
    """The variable names an env file defines (``NAME=value`` lines)."""
    try:
        text = path.read_text()
    except OSError:
        return set()
    return {ln.split("=", 1)[0].strip().removeprefix("export ").strip()
            for ln in text.splitlines() if "=" in ln and not ln.lstrip().startswith("#")}


def compose_argv(files: Sequence[Path], *args: str, project_dir: Path, env_file: Path,
                 project: str = "") -> list[str]:
    """The full compose argv for ``args`` on ``files`` (``-p`` only when ``project`` is given)."""
    named = ["-p", project] if project else []
    return [*compose_command(), "--ansi", "never", *named, "--project-directory", str(project_dir),
            "--env-file", str(env_file), *(a for f in files for a in ("-f", str(f))), *args]


def process_env(files: Sequence[Path], env: Mapping[str, str], env_file: Path) -> dict[str, str]:
    """``env`` plus blanks for variables the files read that leak in from our own process.

    Compose lets the process environment win over ``--env-file``; a stray ``SECRET_KEY`` or
    ``APP_ENV`` in the developer's shell would make the project untestable, so those read by the
    files (and not given here or in the env file) are set empty (``${X:-d}`` → d).
    """
    read: set[str] = set()
    for path in files:
        with contextlib.suppress(OSError):
            read |= set(_VAR.findall(path.read_text()))
    given = set(env) | env_file_names(env_file)
    blanks = {name: "" for name in read if name in os.environ and name not in given}
    return {**blanks, **env}


def run_compose(files: Sequence[Path], *args: str, project_dir: Path, env: Mapping[str, str],
                env_file: Path, project: str = "", timeout: float = CONFIG_TIMEOUT,
                check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``compose <args>`` on ``files`` (argv list, bounded, typed error when ``check``)."""
    return run(compose_argv(files, *args, project_dir=project_dir, env_file=env_file,
                            project=project),
               timeout=timeout, check=check, cwd=project_dir,
               env=process_env(files, env, env_file))


@dataclass(frozen=True)
class Interpolation:
    """What compose interpolates a project's files with, as ``docker compose`` itself would.

    Compose takes a variable from the process environment first, then the project's ``.env``;
    the gate adds ``run_env`` for the names neither has. :attr:`env` is what to pass as the
    process environment (process values included, so :func:`process_env` keeps them),
    :attr:`env_file` the ``.env`` compose reads (None: an empty one), :attr:`sources` each
    variable the files read → where its value comes from (names only: values are never shown).
    """

    env: dict[str, str]
    env_file: Path | None
    sources: dict[str, str]

    def describe(self) -> str:
        """``NAME [where], …`` for a report header; "" when the files read no variable."""
        return ", ".join(f"{name} [{where}]" for name, where in sorted(self.sources.items()))


def interpolation(project_dir: str | os.PathLike[str], files: Sequence[Path],
                  run_env: Mapping[str, str], *,
                  environ: Mapping[str, str] | None = None) -> Interpolation:
    """The :class:`Interpolation` of ``files``: the process environment, then ``.env`` in
    ``project_dir``, then ``run_env`` (already materialized: no ``@random`` left)."""
    environ = os.environ if environ is None else environ
    read: set[str] = set()
    for path in files:
        with contextlib.suppress(OSError):
            read |= set(_VAR.findall(Path(path).read_text()))
    dotenv = Path(project_dir) / ".env"
    in_dotenv = env_file_names(dotenv) if dotenv.is_file() else set()
    env = {name: value for name, value in run_env.items()
           if name not in environ and name not in in_dotenv}
    sources: dict[str, str] = {}
    for name in sorted(read):
        if name in environ:
            env[name] = environ[name]
            sources[name] = "environment"
        elif name in in_dotenv:
            sources[name] = ".env"
        elif name in run_env:
            sources[name] = "run_env"
    return Interpolation(env, dotenv if dotenv.is_file() else None, sources)


def no_compose_file() -> str:
    """The one line saying a project has no compose file (which names are looked for)."""
    return f"no compose file ({', '.join(DEFAULT_FILES)})"


def existing(files: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """``files`` resolved; :class:`UsageError` naming every one that is not a file."""
    paths = [Path(f).resolve() for f in files]
    missing = [str(f) for f in paths if not f.is_file()]
    if missing:
        raise UsageError(f"compose file not found: {', '.join(missing)}")
    return paths


def find_file(project_dir: str | os.PathLike[str]) -> Path | None:
    """The project's compose file: the first of :data:`DEFAULT_FILES` that exists, else None."""
    root = Path(project_dir)
    return next(((root / name).resolve() for name in DEFAULT_FILES if (root / name).is_file()),
                None)


# -- the model -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildSpec:
    """What compose would build for a service: absolute context and Dockerfile, target, args."""

    context: Path
    dockerfile: Path
    target: str = ""
    args: Mapping[str, str] = field(default_factory=dict)
    #: ``dockerfile_inline`` text (then :attr:`dockerfile` is only the default name).
    inline: str = ""
    #: A remote context (git URL, tarball URL); :attr:`context` is then meaningless.
    remote: str = ""

    def same_build(self, context: Path, dockerfile: Path, target: str = "") -> bool:
        """True when this builds ``dockerfile`` in ``context`` (stage ``target``)."""
        if self.remote or self.inline:
            return False
        return (_real(self.context) == _real(context) and _real(self.dockerfile) == _real(dockerfile)
                and (self.target or "") == (target or ""))


@dataclass(frozen=True)
class PortMapping:
    """One published port in long form; ``published`` is "" for an ephemeral host port."""

    target: int
    published: str = ""
    host_ip: str = ""
    protocol: str = "tcp"

    @property
    def short(self) -> str:
        """The short syntax a person writes: ``[HOST_IP:]PUBLISHED:TARGET[/udp]``."""
        ip = f"[{self.host_ip}]" if ":" in self.host_ip else self.host_ip
        head = f"{ip}:{self.published}:" if ip else (f"{self.published}:" if self.published else "")
        return f"{head}{self.target}" + ("" if self.protocol == "tcp" else f"/{self.protocol}")


@dataclass(frozen=True)
class Bind:
    """One bind mount: an absolute host ``source`` at ``target`` in the container."""

    source: Path
    target: str
    read_only: bool = False


@dataclass
class Model:
    """A compose project as ``compose config --format json`` resolved it (see the module doc)."""

    files: tuple[Path, ...]
    project_dir: Path
    raw: dict[str, Any]
    #: The interpolation environment the model was resolved with.
    env: dict[str, str] = field(default_factory=dict)
    _lines: dict[str, int] | None = field(default=None, repr=False)

    @classmethod
    def load(cls, files: Sequence[str | os.PathLike[str]], *, project_dir: str | os.PathLike[str],
             env: Mapping[str, str], env_file: str | os.PathLike[str] | None = None,
             project: str = "", timeout: float = CONFIG_TIMEOUT) -> Model:
        """Resolve ``files`` with ONE ``compose config --format json`` call.

        ``env`` is the interpolation environment; compose reads ``env_file`` (an empty file unless
        given, never the project's ``.env``). Raises :class:`UsageError` (one line) for a missing
        file, invalid YAML (naming the file), a schema error, or a missing ``${VAR:?}`` (naming the
        variable and ``[tool.imagegate.run_env]``).
        """
        paths = tuple(existing(files))
        root = Path(project_dir).resolve()
        with tempfile.TemporaryDirectory(prefix="imagegate-config-") as tmp:
            chosen = Path(env_file).resolve() if env_file else Path(tmp) / "empty.env"
            if not env_file:
                chosen.write_text("")
            proc = run_compose(paths, "config", "--format", "json", project_dir=root, env=env,
                               env_file=chosen, project=project, timeout=timeout, check=False)
            if proc.returncode != 0:
                raise _config_error(paths, root, proc.stderr or proc.stdout, env=env,
                                    env_file=chosen)
        try:
            raw = json.loads(proc.stdout)
        except ValueError as exc:
            raise UsageError(f"{_names(paths, root)}: compose config printed no JSON ({exc})",
                             detail=proc.stdout[-2000:]) from None
        return cls(paths, root, raw, dict(env))

    # -- accessors -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The compose project name compose derived (``name:``, ``-p`` or the directory)."""
        return str(self.raw.get("name", ""))

    @property
    def services(self) -> list[str]:
        """Service names in the order the first file defines them (others after, by name)."""
        names = list(self.raw.get("services") or {})
        lines = self._service_lines()
        return sorted(names, key=lambda s: (lines.get(s, 1 << 30), s))

    def service(self, service: str) -> dict[str, Any]:
        """The canonical JSON of one service; :class:`UsageError` naming the known ones."""
        found = (self.raw.get("services") or {}).get(service)
        if found is None:
            raise UsageError(f"{_names(self.files, self.project_dir)}: no service {service!r} "
                             f"(services: {', '.join(self.services) or 'none'})")
        return dict(found)

    def build(self, service: str) -> BuildSpec | None:
        """What compose would build for ``service``, or None when it has no ``build:``."""
        spec = self.service(service).get("build")
        if not spec:
            return None
        context = str(spec.get("context") or ".")
        args = {str(k): str(v) for k, v in (spec.get("args") or {}).items() if v is not None}
        if _remote(context):
            return BuildSpec(Path(self.project_dir), Path(self.project_dir / "Dockerfile"),
                             str(spec.get("target") or ""), args, remote=context)
        base = (self.project_dir / context).resolve()
        dockerfile = base / str(spec.get("dockerfile") or "Dockerfile")
        return BuildSpec(base, dockerfile, str(spec.get("target") or ""), args,
                         inline=str(spec.get("dockerfile_inline") or ""))

    def image(self, service: str) -> str:
        """The service's ``image:`` ("" when it only builds)."""
        return str(self.service(service).get("image") or "")

    def pull_policy(self, service: str) -> str:
        """The service's ``pull_policy`` ("" when not set: compose's default, missing)."""
        return str(self.service(service).get("pull_policy") or "")

    def published(self, service: str) -> list[PortMapping]:
        """The service's published ports, one per container port (ranges come expanded)."""
        return [PortMapping(int(p["target"]), str(p.get("published") or ""),
                            str(p.get("host_ip") or ""), str(p.get("protocol") or "tcp"))
                for p in self.service(service).get("ports") or [] if p.get("target") is not None]

    def binds(self, service: str) -> list[Bind]:
        """The service's bind mounts (named and anonymous volumes are not binds)."""
        return [Bind(Path(str(v["source"])), str(v.get("target", "")), bool(v.get("read_only")))
                for v in self.service(service).get("volumes") or []
                if v.get("type") == "bind" and v.get("source")]

    def command(self, service: str) -> list[str] | None:
        """The service's ``command`` as an argv (compose splits a string), None when not set."""
        return _argv(self.service(service).get("command"))

    def entrypoint(self, service: str) -> list[str] | None:
        """The service's ``entrypoint`` as an argv, None when not set (the image's applies)."""
        return _argv(self.service(service).get("entrypoint"))

    def exposed(self, service: str) -> list[int]:
        """The TCP container ports the service ``expose``s (ranges expanded), in file order."""
        ports: list[int] = []
        for item in self.service(service).get("expose") or []:
            number, _, proto = str(item).partition("/")
            low, _, high = number.partition("-")
            if proto not in ("", "tcp") or not low.isdigit():
                continue
            for port in range(int(low), int(high if high.isdigit() else low) + 1):
                if port not in ports:
                    ports.append(port)
        return ports

    def depends_on(self, service: str) -> dict[str, str]:
        """The services ``service`` depends on, each with its condition (``service_started`` when
        the short syntax gave none)."""
        found = self.service(service).get("depends_on") or {}
        if isinstance(found, list):
            return {str(name): "service_started" for name in found}
        return {str(name): str((spec or {}).get("condition") or "service_started")
                for name, spec in found.items()}

    def restart(self, service: str) -> str:
        """The service's restart policy (``no`` when not set, as compose's default)."""
        return str(self.service(service).get("restart") or "no")

    def one_shot(self, service: str) -> bool:
        """True for a service meant to run to completion: an explicit ``restart: "no"``, or one
        another service waits for with ``condition: service_completed_successfully``."""
        awaited = any(self.depends_on(other).get(service) == "service_completed_successfully"
                      for other in self.services)
        # an explicit restart: "no" says "run to completion"; no policy at all says nothing
        return awaited or self.service(service).get("restart") == "no"

    def healthcheck(self, service: str) -> dict[str, Any] | None:
        """The service's ``healthcheck:`` as compose resolved it (None when it has none)."""
        check = self.service(service).get("healthcheck")
        return dict(check) if check else None

    def networks(self, *, own: bool = True) -> list[str]:
        """The networks the project uses; with ``own``, only those it creates (not external)."""
        return _own(self.raw.get("networks"), own)

    def volumes(self, *, own: bool = True) -> list[str]:
        """The named volumes the project uses; with ``own``, only those it creates."""
        return _own(self.raw.get("volumes"), own)

    def file_line(self, service: str) -> int | None:
        """The 1-based line of ``service``'s key in the first compose file (report locations)."""
        return self._service_lines().get(service)

    def _service_lines(self) -> dict[str, int]:
        """Service key → line in the first file, from a scan of its block-style ``services:``."""
        if self._lines is None:
            try:
                text = self.files[0].read_text() if self.files else ""
            except OSError:
                text = ""
            self._lines = _service_lines(text)
        return self._lines


def _service_lines(text: str) -> dict[str, int]:
    """Keys one level under the top-level ``services:`` key, with their 1-based lines."""
    found: dict[str, int] = {}
    inside, indent = False, -1
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        depth = len(line) - len(line.lstrip(" "))
        if depth == 0:
            inside = re.match(r"""^(["']?)services\1\s*:\s*(#.*)?$""", line) is not None
            indent = -1
            continue
        if not inside:
            continue
        if indent < 0:
            indent = depth
        if depth == indent:
            key = re.match(r"""^(["']?)([^"':#]+?)\1\s*:(\s|$)""", stripped)
            if key:
                found.setdefault(key.group(2), number)
    return found


def _argv(value: Any) -> list[str] | None:
    """A command/entrypoint as compose resolved it (a list; a string only from older compose)."""
    if value is None:
        return None
    if isinstance(value, str):
        import shlex

        return shlex.split(value)
    return [str(v) for v in value]


def _own(table: Any, own: bool) -> list[str]:
    """Names in a top-level networks/volumes table, without external ones when ``own``."""
    return [name for name, spec in (table or {}).items()
            if not (own and (spec or {}).get("external"))]


def _remote(context: str) -> bool:
    """True for a build context compose fetches (git or HTTP URL) rather than a directory."""
    return "://" in context or context.startswith(("git@", "github.com/"))


def _real(path: Path) -> Path:
    """``path`` resolved (symlinks too), for comparing two spellings of one file."""
    return Path(os.path.realpath(path))


def _names(files: Sequence[Path], project_dir: Path) -> str:
    """The files, project-relative where they live inside the project."""
    return ", ".join(_rel(f, project_dir) for f in files)


def _rel(path: Path, project_dir: Path) -> str:
    """``path`` relative to ``project_dir`` when inside it (``.`` for the dir itself), else as is."""
    try:
        return Path(path).relative_to(project_dir).as_posix() or "."
    except ValueError:
        return str(path)


def _config_error(files: Sequence[Path], project_dir: Path, stderr: str, *,
                  env: Mapping[str, str], env_file: Path) -> UsageError:
    """The one-line :class:`UsageError` for a failed ``compose config``."""
    names = _names(files, project_dir)
    required = _REQUIRED.findall(stderr)
    if required:
        variables = list(dict.fromkeys(name for name, _ in required))
        if len(variables) == 1:
            hint = next((h.strip() for n, h in required if n == variables[0] and h.strip()), "")
            what = (f"required variable {variables[0]} is missing a value"
                    + (f" ({hint})" if hint else "") + "; set it in [tool.imagegate.run_env]")
        else:
            what = (f"required variables {', '.join(variables)} are missing a value; "
                    "set them in [tool.imagegate.run_env]")
        return UsageError(f"{names}: {what}", detail=stderr)
    complaint = last_line(stderr)
    if "yaml" in complaint.lower() and not any(str(f) in complaint for f in files):
        culprit = _unparsable(files, project_dir, env, env_file)
        if culprit is not None:
            return UsageError(f"{_rel(culprit[0], project_dir)}: invalid YAML: {culprit[1]}",
                              detail=stderr)
        return UsageError(f"{names}: invalid YAML: {complaint}", detail=stderr)
    return UsageError(f"{names}: {complaint}", detail=stderr)


def _unparsable(files: Sequence[Path], project_dir: Path, env: Mapping[str, str],
                env_file: Path) -> tuple[Path, str] | None:
    """The first file compose cannot read on its own, with its complaint (error path only)."""
    if len(files) == 1:
        return None
    for path in files:
        proc = run_compose([path], "config", "--quiet", "--no-interpolate",
                           project_dir=project_dir, env=env, env_file=env_file, check=False)
        if proc.returncode != 0 and "yaml" in proc.stderr.lower():
            return path, last_line(proc.stderr)
    return None


# -- what the stack checks judge on the user's files ------------------------------------------


def source_mounts(model: Model, project_dir: str | os.PathLike[str],
                  services: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """(service, message) for each bind mount of the project directory or anything inside it,
    on ``services`` (default: every service that builds an image from the project).

    Such a mount (``.:/app``, ``./app:/app/app``) lays the working tree over the image: the stack
    would test the developer's files, not the image that ships (IG-STACK-SOURCE-MOUNT). A stock
    image's config file mounted in (``./nginx.conf:/etc/nginx/conf.d/default.conf:ro`` on a
    proxy) is deployment configuration, not the image under test: not judged.
    """
    root = _real(Path(project_dir))
    judged = list(services) if services is not None else [
        s for s in model.services if model.build(s) is not None]
    found = []
    for service in [s for s in model.services if s in judged]:
        for bind in model.binds(service):
            source = _real(bind.source)
            if source != root and root not in source.parents:
                continue
            shown = "." if source == root else f"./{source.relative_to(root).as_posix()}"
            mount = f"{shown}:{bind.target}" + (":ro" if bind.read_only else "")
            found.append((service, f"{service}: bind mount {mount} lays the project's files over "
                                   "the image, so the stack would not run what ships; move it to a "
                                   "dev overlay such as compose.dev.yml"))
    return found


def exposed_beyond_loopback(model: Model) -> list[tuple[str, str]]:
    """(service, message) for each port the user's file publishes on every interface.

    Judged on the user's file (IG-STACK-LOOPBACK-ONLY): the gate's own run moves every port to
    127.0.0.1, but ``docker compose up`` on a laptop or a server would not.
    """
    found = []
    for service in model.services:
        for port in model.published(service):
            if port.host_ip not in ALL_INTERFACES:
                continue
            safe = PortMapping(port.target, port.published, "127.0.0.1", port.protocol)
            where = f"host_ip {port.host_ip}" if port.host_ip else "no host_ip"
            found.append((service, f"{service}: port {port.short} is published on every interface "
                                   f"({where}); publish it on loopback: \"{safe.short}\""))
    return found


# -- the gate's override ---------------------------------------------------------------------


class _Tagged:
    """A value written with a YAML tag in front (``!reset null``, ``!override [...]``)."""

    def __init__(self, tag: str, value: Any) -> None:
        self.tag, self.value = tag, value


def _emit(value: Any, indent: int = 0) -> str:
    """JSON text (YAML's flow subset) with :class:`_Tagged` values prefixed by their tag."""
    pad, inner = "  " * indent, "  " * (indent + 1)
    if isinstance(value, _Tagged):
        return f"{value.tag} {_emit(value.value, indent)}"
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        items = [f"{inner}{json.dumps(str(k))}: {_emit(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        if all(not isinstance(v, Mapping | list | tuple | _Tagged) for v in value):
            return json.dumps(list(value))
        return "[\n" + ",\n".join(f"{inner}{_emit(v, indent + 1)}" for v in value) + f"\n{pad}]"
    return json.dumps(value)


def _loopback(port: Mapping[str, Any]) -> dict[str, Any]:
    """A port entry moved to 127.0.0.1 with an ephemeral host port (protocol and name kept)."""
    kept = {k: v for k, v in port.items() if k not in ("host_ip", "published")}
    return {**kept, "host_ip": "127.0.0.1"}


#: How often the gate's own runs probe a service's healthcheck (its own test command): the
#: user's interval decides when production marks a container healthy, not how long a gate waits.
#: Every probe is an exec costing the engine ~0.1 s of CPU for as long as the container runs, so
#: a faster interval slows a gate on a busy machine: a warm gate of this repo took 13.9 s
#: (median of 5) probing every 0.5 s and 11.6 s probing every second, runs interleaved; tried
#: again once a gate brought up one stack, not three: 9.86 s at 0.5 s vs 9.90 s at 1 s (bench.ab,
#: bench/results/change-health-interval-half.json), no gain; a third time with the probe
#: started beside ``up``: 9.35 vs 9.18 s (0.98x, 7 turns, change-health-interval-half-again.json),
#: within the noise, so 1 s stays. The gate's standalone container
#: (:func:`imagegate.pytest_plugin.fast_healthcheck`) probes as often.
GATE_HEALTH_INTERVAL_S = 1
GATE_HEALTH_INTERVAL = f"{GATE_HEALTH_INTERVAL_S}s"
#: How many times faster the gate probes a service another one waits for to be healthy
#: (``depends_on: condition: service_healthy``: Redis, a database): nothing of the project starts
#: before its first passing probe, which Docker 20.10 runs a whole interval after the start (no
#: ``start_interval``). Its retries are multiplied alike, so it is declared unhealthy exactly as
#: late as at :data:`GATE_HEALTH_INTERVAL`. Such checks are cheap (``redis-cli ping``,
#: ``pg_isready``).
AWAITED_HEALTH_SPEEDUP = 4


def awaited_healthy(model: Model) -> set[str]:
    """The services another service waits for with ``condition: service_healthy``."""
    return {dep for other in model.services for dep, condition in model.depends_on(other).items()
            if condition == "service_healthy"}


def _seconds(duration: str) -> float:
    """A compose duration (``1s``, ``500ms``, ``1m30s``) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "ns": 1e-9}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|ns)", duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise UsageError(f"not a duration: {duration!r} (expected e.g. 1s, 500ms)")
    return sum(float(n) * units[u] for n, u in parts)


def gate_override(model: Model, *, tested_image: str, gated: Iterable[str],
                  labels: Mapping[str, str], health_interval: str = GATE_HEALTH_INTERVAL,
                  built: Mapping[str, str] | None = None) -> str:
    """The YAML text of the gate's override file (it goes after the user's files).

    * every service in ``gated`` (those building the gated Dockerfile + context) runs
      ``tested_image``: ``image``, ``pull_policy: never``, ``build: !reset null``;
    * every published port of every service becomes the same container port on 127.0.0.1 with
      an ephemeral host port (``ports: !override [...]``, protocol kept): read it back with
      ``compose port``;
    * ``labels`` on every service and on the networks and volumes the project creates;
    * a fixed ``container_name`` is dropped (compose names the container after the project);
    * every service in ``built`` (service → image id: the gate built its own ``build:``, as
      compose would) runs that image, pinned like the tested one;
    * a healthcheck is probed every ``health_interval``; a service another waits for to be
      healthy, :data:`AWAITED_HEALTH_SPEEDUP` times as often with as many times the retries.

    ``tested_image`` may be the image id (``sha256:<64 hex>``, what compose v5 runs as is against
    a 20.10 engine) or a local tag. The text is JSON with YAML tags, which compose reads as YAML.
    """
    pinned = list(dict.fromkeys(gated))
    others = {s: image for s, image in (built or {}).items() if s not in pinned}
    unknown = [s for s in [*pinned, *others] if s not in (model.raw.get("services") or {})]
    if unknown:
        raise UsageError(f"{_names(model.files, model.project_dir)}: no service "
                         f"{', '.join(unknown)} to run the tested image "
                         f"(services: {', '.join(model.services)})")
    if pinned and not tested_image:
        raise UsageError("gate_override: the tested image is needed to pin "
                         f"{', '.join(pinned)}")
    lab = {str(k): str(v).replace("$", "$$") for k, v in labels.items()}
    awaited = awaited_healthy(model)
    services: dict[str, Any] = {}
    for name in model.services:
        spec: dict[str, Any] = {}
        if name in pinned or name in others:
            image = tested_image if name in pinned else others[name]
            spec.update(image=image.replace("$", "$$"), pull_policy="never",
                        build=_Tagged("!reset", None))
        if model.service(name).get("container_name"):
            # A fixed name would collide with the user's own stack and with parallel gates.
            spec["container_name"] = _Tagged("!reset", None)
        ports = model.service(name).get("ports") or []
        if ports:
            spec["ports"] = _Tagged("!override", [_loopback(p) for p in ports])
        check = model.service(name).get("healthcheck") or {}
        if health_interval and check.get("test") and not check.get("disable"):
            spec["healthcheck"] = {"interval": health_interval}
            if name in awaited:
                seconds = _seconds(health_interval) / AWAITED_HEALTH_SPEEDUP
                retries = int(check.get("retries") or 3) * AWAITED_HEALTH_SPEEDUP
                spec["healthcheck"] = {"interval": f"{seconds * 1000:g}ms", "retries": retries}
        if lab:
            spec["labels"] = lab
        services[name] = spec
    document: dict[str, Any] = {"services": services}
    if lab:
        document["networks"] = {n: {"labels": lab} for n in model.networks()}
        document["volumes"] = {v: {"labels": lab} for v in model.volumes()}
    header = (f"# imagegate's override for {_names(model.files, model.project_dir)} "
              "(generated; the user's files are never edited).\n"
              f"# Runs {tested_image or 'no tested image'} for "
              f"{', '.join(pinned) or 'no service'}; every port on 127.0.0.1, ephemeral.\n")
    return header + _emit(document) + "\n"


def label_override(model: Model, labels: Mapping[str, str]) -> str:
    """An override adding only ``labels`` to every service, network and volume (no remapping)."""
    lab = {str(k): str(v).replace("$", "$$") for k, v in labels.items()}
    return _emit({
        "services": {name: {"labels": lab} for name in model.services},
        "networks": {name: {"labels": lab} for name in model.networks()},
        "volumes": {name: {"labels": lab} for name in model.volumes()},
    }) + "\n"


def gated_services(model: Model, *, context: Path, dockerfile: Path, target: str = "") -> list[str]:
    """Services whose ``build:`` is ``dockerfile`` in ``context`` (stage ``target``)."""
    return [s for s in model.services
            if (spec := model.build(s)) is not None and spec.same_build(context, dockerfile, target)]


def other_builds(model: Model, gated: Iterable[str]) -> list[tuple[str, BuildSpec]]:
    """Services with a ``build:`` that is not the gated one: the caller builds them or says so."""
    pinned = set(gated)
    return [(s, spec) for s in model.services
            if s not in pinned and (spec := model.build(s)) is not None]
