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

from .errors import UsageError


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
    image_repo: str = ""
    image_var: str = "APP_IMAGE"
    python_image: str = ""
    #: Local bases to make; empty: those the Dockerfile names (imagegate/python, imagegate/redis).
    bases: tuple[str, ...] = ()
    #: Hashed locks turned into a wheelhouse in ``<context>/<wheelhouse>`` (hermetic builds).
    locks: tuple[str, ...] = ()
    wheelhouse: str = ".wheels"
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
    def checks(self) -> tuple[HttpCheck, ...]:
        """HTTP checks to run on the stack; the health path at least."""
        return self.http_checks or (HttpCheck(self.health_path, 200),)

    def ignored(self, check_id: str) -> bool:
        """True when ``check_id`` is on the ignore list."""
        return check_id in self.ignore


KEYS = {f.name for f in fields(Settings)} - {"project_dir", "sources", "image", "push"}


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
        if value is None or value == "" or value == ():
            continue
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


def _validate(s: Settings) -> None:
    """Cross-field checks that need the resolved values."""
    if s.size_budget_mb <= 0 or s.layer_budget <= 0:
        raise UsageError("size_budget_mb and layer_budget must be positive")
    if not s.health_path.startswith("/"):
        raise UsageError(f"health_path {s.health_path!r} must start with /")
    unknown_bases = set(s.bases) - {"python", "redis"}
    if unknown_bases:
        raise UsageError(f"bases: unknown {sorted(unknown_bases)} (python, redis)")


def flag_env(s: Settings) -> dict[str, str]:
    """Every flag-set value as the ``IMAGEGATE_<KEY>`` variable :func:`load` reads back.

    How the gate hands its command-line overrides to the pytest stages it runs, whatever the key.
    """
    out = {}
    for key in sorted(KEYS):
        if s.sources.get(key) == "flag":
            value = getattr(s, key)
            text = ",".join(value) if isinstance(value, tuple) else str(value)
            out[f"IMAGEGATE_{key.upper()}"] = text
    return out


def describe(s: Settings) -> list[str]:
    """Lines for a report header: each setting that matters, with its source."""
    keys = ("dockerfile", "context", "compose_file", "web_service", "python_image", "image_repo",
            "size_budget_mb", "layer_budget", "ignore")
    lines = [f"project: {s.project_dir}"]
    for key in keys:
        lines.append(f"{key}: {getattr(s, key) or '(auto)'} [{s.sources.get(key, 'default')}]")
    return lines


def materialize_env(run_env: Mapping[str, str]) -> dict[str, str]:
    """The container environment with every ``@random`` replaced by a fresh hex secret."""
    import secrets

    return {k: secrets.token_hex(32) if v == "@random" else v for k, v in run_env.items()}
