"""Settings, resolved once: defaults → ``[tool.imagegate]`` → ``IMAGEGATE_*`` env → flags.

Every value remembers where it came from, so a CI log (the pytest header, the report) says what
was tested and why. An unknown key or a badly typed value is a :class:`UsageError` naming the file.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from imagegate.errors import UsageError


@dataclass(frozen=True)
class HttpCheck:
    """One expected HTTP answer from the running stack: ``GET path`` gives ``status``."""

    path: str
    status: int = 200
    contains: str = ""


@dataclass(frozen=True)
class Settings:
    """What to gate and how; one frozen object shared by the CLI, the plugin and the checks."""

    project_dir: Path = Path(".")
    #: Empty means "discover": the compose file's web service decides (see discovery.py).
    dockerfile: str = ""
    context: str = ""
    target: str = ""
    build_args: Mapping[str, str] = field(default_factory=dict)
    compose_file: str = ""
    web_service: str = ""
    web_port: int = 0
    #: Empty: the image's HEALTHCHECK, else ``GET /`` answering below 500. Set: that path, 2xx.
    health_path: str = ""
    http_checks: tuple[HttpCheck, ...] = ()
    #: GET routes IG-FLASK-ROUTES does not ask (glob patterns of the rule, ``/admin/*``).
    flask_routes_ignore: tuple[str, ...] = ()
    image_repo: str = ""
    image_var: str = "APP_IMAGE"
    python_image: str = ""
    #: Local bases to make; empty: those the Dockerfile names (imagegate/python, imagegate/redis).
    bases: tuple[str, ...] = ()
    #: Hashed locks turned into a wheelhouse in ``<context>/<wheelhouse>`` (hermetic builds).
    locks: tuple[str, ...] = ()
    wheelhouse: str = ".wheels"
    #: PEM files (project-relative) added to the CA bundle of imagegate's own bases, on top of
    #: Debian's ca-certificates set: a company proxy's CA, declared, never taken from the host.
    extra_ca_certs: tuple[str, ...] = ()
    #: auto (BuildKit when there, else classic) | buildkit | classic
    builder: str = "auto"
    #: missing (pull a FROM/service image that is not local, as docker does) | never | always
    pull: str = "missing"
    #: True: builds get no network (``--network none``), dependencies come from the wheelhouse.
    hermetic: bool = False
    size_budget_mb: float = 80.0
    layer_budget: int = 20
    #: baseline (any project's default) | hardened (every hardening check is an error)
    profile: str = "baseline"
    #: The lowest severity that fails the gate: error | warning | info
    fail_on: str = "error"
    #: Per-check severity overrides, ``{"IG-LABELS" = "error"}`` (hadolint's ``override``).
    severity: Mapping[str, str] = field(default_factory=dict)
    ignore: tuple[str, ...] = ()
    #: Environment for containers the harness runs (the app container and the stack); a value of
    #: ``@random`` becomes a fresh 32-byte hex secret per session.
    run_env: Mapping[str, str] = field(default_factory=dict)
    #: The project's own suites per stage; the gate runs them besides the generic checks.
    unit_tests: tuple[str, ...] = ()
    image_tests: tuple[str, ...] = ()
    stack_tests: tuple[str, ...] = ()
    #: A pytest ``-m`` expression the gate's stages use on the project's own suites.
    gate_select: str = ""
    wait_timeout: float = 120.0
    #: Where published ports are reached: empty means 127.0.0.1 for a local engine, else the
    #: host of a tcp:// or ssh:// DOCKER_HOST (as pytest-docker's docker_ip).
    published_host: str = ""
    image: str = ""  # an already built image id/ref: skip the build
    push: str = ""
    report_dir: str = ".imagegate-out"
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def path(self, rel: str) -> Path:
        """A project-relative path made absolute."""
        return (self.project_dir / rel).resolve()

    @property
    def name(self) -> str:
        """The project's short name (its directory), used for image repos and compose projects."""
        return self.project_dir.resolve().name.lower().replace("_", "-") or "project"

    @property
    def repo(self) -> str:
        """The local repository the built image is tagged into."""
        return self.image_repo or f"imagegate/{self.name}"

    @property
    def stack_checks(self) -> tuple[HttpCheck, ...]:
        """HTTP checks to run on the stack: ``http_checks``, else the health probe.

        With ``health_path`` set it must answer 200; without, ``GET /`` must answer below 500
        (status 0 means "any status below 500").
        """
        return self.http_checks or (HttpCheck(self.health_path or "/", 200 if self.health_path
                                              else 0),)

    def ignored(self, check_id: str) -> bool:
        """True when ``check_id`` is on the ignore list."""
        return check_id in self.ignore


KEYS = {f.name for f in fields(Settings)} - {"project_dir", "sources", "image", "push"}
#: The pull policies (docker's own): pull a FROM or service image that is absent, never, always.
PULL_POLICIES = ("missing", "never", "always")
CHOICES = {
    "builder": ("auto", "buildkit", "classic"),
    "pull": PULL_POLICIES,
    "profile": ("baseline", "hardened"),
    "fail_on": ("error", "warning", "info"),
}
#: One line per setting: the CLI's ``--KEY`` and the plugin's ``--imagegate-KEY`` help, and the
#: README's table. Every setting is declared once (here and in :class:`Settings`).
HELP = {
    "dockerfile": "the Dockerfile, project-relative (default: the web service's compose build:, "
                  "else ./Dockerfile)",
    "context": "the build context (default: the web service's compose build:, else .)",
    "target": "the build target stage (default: compose build: target, else the last stage)",
    "build_args": "build args NAME=VALUE (repeatable; added to compose build: args)",
    "compose_file": "the compose file (default: compose.yaml, compose.yml, docker-compose.yaml, "
                    "docker-compose.yml: the first found; none: the image runs alone, no stack)",
    "web_service": "the compose service that runs the Flask app (default: the one that builds an "
                   "image and is not a proxy; see discovery)",
    "web_port": "the container port the web service listens on (default: compose ports target, "
                "expose, the server command's bind, else EXPOSE)",
    "health_path": "a path that must answer 2xx (default: the image's HEALTHCHECK, else any "
                   "HTTP answer; in the stack GET / below 500)",
    "http_checks": "HTTP checks on the stack: [{path, status, contains}]",
    "image_repo": "the local repository the built image is tagged into (default: "
                  "imagegate/<project>)",
    "image_var": "the compose variable that names the tested image (default: APP_IMAGE)",
    "python_image": "PYTHON_IMAGE build arg for Dockerfiles that declare it",
    "bases": "local bases to make from Debian packages: python, redis (default: those the "
             "Dockerfile names)",
    "locks": "hashed lock files turned into a wheelhouse for hermetic builds",
    "wheelhouse": "where the wheelhouse goes, context-relative",
    "extra_ca_certs": "PEM files added to the bases' CA bundle besides Debian's (e.g. a proxy CA)",
    "published_host": "host to reach published ports on (default: 127.0.0.1, or DOCKER_HOST's "
                      "host for a remote engine)",
    "builder": "auto (BuildKit when available), buildkit or classic",
    "pull": "missing (pull absent images, as docker does), never, or always",
    "hermetic": "build with no network (--network none): true or false",
    "size_budget_mb": "image size budget in MB (set: an error when exceeded; default: a warning)",
    "layer_budget": "filesystem layer budget (set: an error when exceeded; default: a warning)",
    "profile": "baseline (defects fail, hardening advice warns) or hardened (both fail)",
    "fail_on": "lowest severity that fails the gate: error, warning or info",
    "severity": "per-check severity overrides ID=LEVEL (repeatable)",
    "ignore": "check id to ignore (repeatable; IG-*, DL*, SC*)",
    "flask_routes_ignore": "GET routes IG-FLASK-ROUTES leaves out (glob patterns of the rule, "
                           "repeatable, e.g. /admin/*)",
    "run_env": "environment for the containers the gate runs ({NAME = value}, @random: a secret)",
    "unit_tests": "the project's own unit suites (paths), run in the lint stage",
    "image_tests": "the project's own image suites, run in the image stage",
    "stack_tests": "the project's own stack suites, run in the stack stage",
    "gate_select": "a pytest -m expression for the project's own suites in the gate",
    "wait_timeout": "seconds a container or stack may take to become ready",
    "report_dir": "where the reports go (junit.xml, result.json, summary.md, imagegate.sarif)",
}
#: Settings that make no sense as a flag (tables: pyproject or env only).
NOT_FLAGS = {"http_checks", "run_env"}
FLAG_KEYS = tuple(sorted(KEYS - NOT_FLAGS))
#: Settings a flag may give several times (``--ignore A --ignore B``).
MULTI = frozenset({"ignore", "severity", "build_args", "bases", "locks", "unit_tests",
                   "image_tests", "stack_tests", "flask_routes_ignore"})
#: Of those, the ones given as ``NAME=VALUE`` (``--severity IG-LABELS=error``).
PAIRS = frozenset({"severity", "build_args"})


def add_flags(add: Any, prefix: str, dest_prefix: str = "", *,
              skip: frozenset[str] = frozenset()) -> None:
    """Declare one flag per setting with ``add`` (argparse's ``add_argument`` for the CLI,
    pytest's ``addoption`` for the plugin): the same names after ``prefix``, the same help and
    choices, and one parser (:func:`flag_value`) so both refuse the same values the same way."""
    for key in FLAG_KEYS:
        if key in skip:
            continue
        add(f"{prefix}{key.replace('_', '-')}", dest=f"{dest_prefix}{key}", metavar=key.upper(),
            action="append" if key in MULTI else "store", type=flag_type(key, prefix),
            choices=CHOICES.get(key) if key not in MULTI else None, help=HELP.get(key, key))


def flag_type(key: str, prefix: str = "--") -> Any:
    """The argparse ``type`` of one setting's flag: :func:`flag_value`, its UsageError turned
    into argparse's own error (the line names the flag)."""
    import argparse

    def parse(value: str) -> Any:
        try:
            return flag_value(key, value, f"{prefix}{key.replace('_', '-')}")
        except UsageError as exc:
            raise argparse.ArgumentTypeError(exc.message) from None
    return parse


def flag_value(key: str, value: str, flag: str) -> Any:
    """One flag's value in the setting's type, checked; a repeatable flag's one item (``NAME=
    VALUE`` for :data:`PAIRS`). A bad value is a one-line UsageError naming ``flag``."""
    if key in PAIRS:
        name, eq, given = value.partition("=")
        if not eq or not name.strip():
            raise UsageError(f"{flag} {value}: expected NAME=VALUE")
        if key == "severity":
            check_value(key, {name.strip(): given.strip()}, flag)
        return f"{name.strip()}={given.strip()}"
    if key in MULTI:
        return value.strip()
    coerced = _coerce(key, value, flag)
    check_value(key, coerced, flag)
    return coerced


def flag_overrides(values: Mapping[str, Any]) -> dict[str, Any]:
    """The flags given (``{key: value or [items]}`` as argparse left them) as settings
    overrides: repeatable items to a tuple, :data:`PAIRS` to a mapping."""
    out: dict[str, Any] = {}
    for key in FLAG_KEYS:
        value = values.get(key)
        if isinstance(value, list):
            value = (dict(v.split("=", 1) for v in value) if key in PAIRS else tuple(value))
        out[key] = value
    return out


def load(project_dir: Path | str = ".", overrides: Mapping[str, Any] | None = None,
         environ: Mapping[str, str] | None = None) -> Settings:
    """Resolve the settings of the project at ``project_dir``; flags in ``overrides`` win."""
    root = Path(project_dir).resolve()
    if not root.is_dir():
        raise UsageError(f"--project-dir {project_dir}: not a directory")
    values: dict[str, Any] = {}
    sources = {k: "default" for k in KEYS}
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        try:
            table = tomllib.loads(pyproject.read_text()).get("tool", {}).get("imagegate", {})
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"{pyproject}: invalid TOML: {exc}") from None
        for key, value in table.items():
            if key not in KEYS:
                raise UsageError(
                    f"{pyproject}: unknown key [tool.imagegate] {key!r} "
                    f"(known: {', '.join(sorted(KEYS))})"
                )
            values[key] = _coerce(key, value, f"{pyproject} [tool.imagegate] {key}")
            sources[key] = str(pyproject.name)
    env = os.environ if environ is None else environ
    for key in sorted(KEYS):
        raw = env.get(f"IMAGEGATE_{key.upper()}")
        if raw:
            values[key] = _coerce(key, raw, f"IMAGEGATE_{key.upper()}")
            sources[key] = "env"
    for key, value in (overrides or {}).items():
        if value is None or value == "" or value == () or value == {} or value == []:
            continue
        if key not in KEYS | {"image", "push"}:
            raise UsageError(f"--{key.replace('_', '-')}: not a setting")
        values[key] = _coerce(key, value, f"--{key.replace('_', '-')}")
        sources[key] = "flag"
    settings = Settings(project_dir=root, sources=sources, **values)
    _validate(settings)
    return settings


def _coerce(key: str, value: Any, where: str) -> Any:
    """Turn a TOML/env/flag value into the field's type, or a UsageError naming ``where``."""
    kind = Settings.__dataclass_fields__[key].type
    try:
        if key == "http_checks":
            return tuple(_http_check(item) for item in value)
        if "Mapping" in str(kind):
            if isinstance(value, str):  # IMAGEGATE_SEVERITY="IG-LABELS=error,DL3008=info"
                pairs = [item.partition("=") for item in value.split(",") if item.strip()]
                if not pairs or any(not eq or not name.strip() for name, eq, _ in pairs):
                    raise TypeError("NAME=value pairs separated by commas")
                return {name.strip(): given.strip() for name, _, given in pairs}
            if not isinstance(value, Mapping):
                raise TypeError("a table of NAME = value")
            return {str(k): str(v) for k, v in value.items()}
        if kind in ("bool", bool):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError("true or false")
            return text in ("true", "1", "yes")
        if "tuple" in str(kind):
            items = value.split(",") if isinstance(value, str) else value
            return tuple(str(v).strip() for v in items if str(v).strip())
        if kind in ("float", float):
            return float(value)
        if kind in ("int", int):
            if isinstance(value, bool) or float(value) != int(float(value)):
                raise ValueError("a whole number")
            return int(float(value))
        if not isinstance(value, str | int | float):
            raise TypeError("a string")
        return str(value)
    except (TypeError, ValueError, AttributeError) as exc:
        raise UsageError(f"{where}: bad value {value!r}: expected {exc or kind}") from None


def _http_check(item: Any) -> HttpCheck:
    """One ``{path = "/", status = 200, contains = "…"}`` entry (or just a path)."""
    if isinstance(item, str):
        return HttpCheck(item)
    if not isinstance(item, Mapping) or "path" not in item:
        raise TypeError("a list of {path, status, contains} tables")
    unknown = set(item) - {"path", "status", "contains"}
    if unknown:
        raise TypeError(f"http_checks keys path/status/contains, not {sorted(unknown)}")
    return HttpCheck(str(item["path"]), int(item.get("status", 200)), str(item.get("contains", "")))


def check_value(key: str, value: Any, where: str) -> None:
    """One setting's own constraints (a choice, a positive number, a path), or a UsageError
    naming ``where`` it was given: the flag parsers call this at parse time, :func:`load` too."""
    allowed = CHOICES.get(key)
    if allowed and value not in allowed:
        raise UsageError(f"{key} = {value!r} [{where}]: expected one of {', '.join(allowed)}")
    if key in ("size_budget_mb", "layer_budget", "wait_timeout") and value <= 0:
        raise UsageError(f"{key} = {value:g} [{where}]: must be positive")
    if key == "web_port" and not 0 <= value <= 65535:
        raise UsageError(f"web_port {value} [{where}]: expected a port number 1-65535")
    if key == "health_path" and value and not str(value).startswith("/"):
        raise UsageError(f"health_path {value!r} [{where}]: must start with /")


def _validate(s: Settings) -> None:
    """Cross-field checks that need the resolved values; each a one-line UsageError."""
    from imagegate.checks.catalogue import SEVERITIES, known

    for key in sorted(KEYS):
        check_value(key, getattr(s, key), s.sources.get(key, "default"))
    unknown_bases = set(s.bases) - {"python", "redis"}
    if unknown_bases:
        raise UsageError(f"bases: unknown {sorted(unknown_bases)} (python, redis)")
    typos = [i for i in s.ignore if not known(i)]
    if typos:
        raise UsageError(f"ignore [{s.sources.get('ignore', 'default')}]: unknown check id "
                         f"{', '.join(typos)} (see `imagegate checks`; hadolint ids look like "
                         "DL3008 or SC2086)")
    for check_id, level in s.severity.items():
        if not known(check_id):
            raise UsageError(f"severity: unknown check id {check_id} (see `imagegate checks`)")
        if level not in SEVERITIES:
            raise UsageError(f"severity {check_id} = {level!r}: expected error, warning or info")


def user_set(s: Settings) -> frozenset[str]:
    """The settings the user gave a value (pyproject, env or flag), not left at their default."""
    return frozenset(k for k, v in s.sources.items() if v != "default")


def dump(s: Settings) -> dict[str, Any]:
    """The resolved settings as JSON-ready data (with sources): how the gate hands them to the
    pytest stages it runs, so each stage tests exactly what the gate resolved."""
    data: dict[str, Any] = {}
    for f in fields(Settings):
        value = getattr(s, f.name)
        if f.name == "http_checks":
            value = [{"path": c.path, "status": c.status, "contains": c.contains} for c in value]
        elif isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, Mapping):
            value = dict(value)
        data[f.name] = value
    return data


def undump(data: Mapping[str, Any]) -> Settings:
    """The inverse of :func:`dump`."""
    values = dict(data)
    values["project_dir"] = Path(values["project_dir"])
    values["http_checks"] = tuple(_http_check(c) for c in values.get("http_checks", ()))
    for f in fields(Settings):
        if isinstance(values.get(f.name), list):
            values[f.name] = tuple(values[f.name])
    known_names = {f.name for f in fields(Settings)}
    return Settings(**{k: v for k, v in values.items() if k in known_names})


def describe(s: Settings) -> list[str]:
    """Lines for a report header: each setting that matters, with its source."""
    keys = ("dockerfile", "context", "target", "compose_file", "web_service", "web_port",
            "health_path", "builder", "pull", "hermetic", "profile", "fail_on", "size_budget_mb",
            "layer_budget", "ignore")
    lines = [f"project: {s.project_dir}"]
    for key in keys:
        value = getattr(s, key)
        if isinstance(value, bool):
            value = str(value).lower()
        elif isinstance(value, tuple):
            value = ", ".join(value)
        shown = value if value not in ("", 0, ()) else "(none)"
        lines.append(f"{key}: {shown} [{s.sources.get(key, 'default')}]")
    return lines


def materialize_env(run_env: Mapping[str, str]) -> dict[str, str]:
    """The container environment with every ``@random`` replaced by a fresh hex secret."""
    import secrets

    return {k: secrets.token_hex(32) if v == "@random" else v for k, v in run_env.items()}


def markdown() -> str:
    """Every setting with its default and meaning: the README's table (generated, no drift)."""
    defaults = Settings()
    lines = ["| setting | default | meaning |", "|---|---|---|"]
    for key in sorted(KEYS):
        value = getattr(defaults, key)
        if isinstance(value, bool):
            shown = str(value).lower()
        elif isinstance(value, tuple | Mapping):
            shown = "(discover)" if key in DISCOVERED else ("[]" if isinstance(value, tuple)
                                                            else "{}")
        elif value in ("", 0):
            shown = "(discover)" if key in DISCOVERED else '""'
        else:
            shown = f"{value:g}" if isinstance(value, float) else str(value)
        lines.append(f"| `{key}` | `{shown}` | {HELP.get(key, '')} |")
    return "\n".join(lines)


#: Settings that, left empty, are found from the project (see discovery.py).
DISCOVERED = {"dockerfile", "context", "target", "compose_file", "web_service", "web_port",
              "health_path", "bases", "image_repo"}
