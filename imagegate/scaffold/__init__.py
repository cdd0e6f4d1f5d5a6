"""`imagegate init`: a hardened Docker setup for an existing Flask project, gated at `hardened`.

What this repo does to pass the strictest profile, written for any Flask project in one command:

1. **Find the app** as ``flask --app`` would: ``FLASK_APP`` from ``.flaskenv``, else Flask's own
   defaults (``wsgi.py``, ``app.py``), else each module or package (also under ``src/``) whose
   code names Flask, each loaded by Flask's ``prepare_import`` + ``locate_app`` in a subprocess
   running in a throwaway copy (the project's tree is never touched by its own code).
2. **Read the project**: dependencies (a hashed lock, ``uv.lock``, ``requirements*.txt`` or
   ``[project].dependencies``), the Python version (``.python-version``, ``requires-python``),
   the services the dependencies justify (Redis; a ``db`` on postgres:16 or mariadb:11 for a
   database driver), the secrets and service URLs the code reads from the environment (and the
   secrets that fall back to a literal default: named by file and line, never by value).
3. **Ask the app** (in a copy holding exactly what the image will hold): a route answering 200 in
   Flask's test client for the HEALTHCHECK, whether it writes its instance folder, the modules and
   template/static folders it loads (the image's allowlist).
4. **Write** the Dockerfile, .dockerignore, compose.yaml, gunicorn.conf.py, the hashed locks (uv,
   universal, as ``make lock``), the GitHub workflow and a ``[tool.imagegate]`` table; never over
   an existing file without ``--force``; ``--dry-run`` prints the same as a unified diff.

Every refusal is one :class:`UsageError` line (exit 2), raised before anything is written.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagegate import __version__
from imagegate.errors import CommandFailed, UsageError, WheelhouseError
from imagegate.model.compose import DEFAULT_FILES as COMPOSE_FILES
from imagegate.proc import git
from imagegate.proc import run as run_cmd

TEMPLATES = Path(__file__).parent / "templates" / "init"
LOCK = "requirements.lock"
BOOTSTRAP_LOCK = "requirements-bootstrap.lock"
WORKFLOW = ".github/workflows/imagegate.yml"
GITLAB_CI = ".gitlab-ci.yml"
#: ``--ci``: which CI file init writes.
CI_FILES = {"github": WORKFLOW, "gitlab": GITLAB_CI}
GUNICORN_CONF = "gunicorn.conf.py"
PORT = 8000
APP_ROOT = "/srv/app"
#: Where a Flask instance folder lives in the image: outside the (read-only) code, a volume.
INSTANCE_DIR = "/var/lib/app/instance"
#: The local base images (``imagegate base``) and the minor Python the Python one runs.
FALLBACK_BASE = ("imagegate/python:3.11-bookworm", "3.11")
REDIS_IMAGE = "imagegate/redis:7-bookworm"
#: Tried first, in this order; then every other argument-free GET route, shortest first.
HEALTH_PATHS = ("/healthz", "/health", "/livez", "/readyz", "/ping", "/status", "/api/health",
                "/api/healthz", "/")
#: Never copied for the probe nor searched for candidates or code, at any depth (and every
#: hidden directory, every venv).
SKIP_DIRS = {"node_modules", "__pycache__", "site-packages"}
#: Skipped at the top of the project (and of src/) only: a package may have a `build` module.
SKIP_TOP = {"venv", "env", "build", "dist", "instance", "htmlcov", "wheelhouse"}
NOT_CANDIDATES = {"setup", "conftest", "noxfile", "fabfile", "tasks", "manage", "docs", "doc",
                  "tests", "test", "testing", "migrations", "alembic", "scripts", "examples",
                  "gunicorn.conf", "gunicorn_conf"}
REDIS_PACKAGES = {"redis", "flask-redis", "hiredis", "valkey"}
POSTGRES_PACKAGES = {"psycopg", "psycopg2", "psycopg2-binary", "psycopg-binary", "asyncpg",
                     "pg8000"}
MYSQL_PACKAGES = {"pymysql", "mysqlclient", "mysql-connector-python", "mariadb"}
#: The stock images a generated ``db`` runs (pulled as users pull them; the gate's pull policy).
POSTGRES_IMAGE = "postgres:16"
MARIADB_IMAGE = "mariadb:11"
#: The database the generated ``db`` creates and the app's URL names.
DB_NAME = "app"
#: Variables that hold a database URL, as apps name them.
DB_URL_NAME = re.compile(r"^(?:SQLALCHEMY_)?DATABASE_UR[LI]$|^DB_UR[LI]$|^(?:POSTGRES(?:QL)?|PG|"
                         r"MYSQL|MARIADB)_UR[LI]$")
#: ``os.environ.get("X") or "literal"``, ``os.environ.get("X", "literal")``, ``os.getenv("X",
#: "literal")``: a secret that silently falls back to a value written in the code.
LITERAL_DEFAULT = re.compile(
    r"(?:environ\.get|getenv)\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']\s*"
    r"(?:\)\s*or\s*|,\s*(?:default\s*=\s*)?)[rbuRBU]?[\"']")
SQLALCHEMY_PACKAGES = {"sqlalchemy", "flask-sqlalchemy"}
#: The size budget (MB) init writes when it cannot measure the dependencies, and what it adds to
#: their measured size: the local base (~43 MB) and room for the app and the bytecode.
SIZE_BUDGET = 80
BASE_MB = 45
DEV_REQUIREMENTS = re.compile(r"dev|test|lint|doc|ci|local|type|check", re.I)
#: ``os.environ["X"]``, ``os.environ.get("X"``, ``os.getenv("X"``, ``environ.get('X'``.
ENV_READ = re.compile(r"(?:environ(?:\.get)?|getenv)\s*[\(\[]\s*[\"']([A-Z][A-Z0-9_]*)[\"']")
PREFIXED_ENV = re.compile(r"from_prefixed_env\(\s*(?:prefix\s*=\s*)?(?:[\"']([A-Za-z0-9_]+)[\"'])?")
SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|(?:^|_)KEY$")
POSTGRES_URL = re.compile(r"postgres(?:ql)?(?:\+\w+)?://")
REDIS_URL = re.compile(r"rediss?://")

Echo = Callable[[str], None]


# -- what init found ------------------------------------------------------------------------------


@dataclass(frozen=True)
class App:
    """The Flask app as ``flask --app`` loads it, and how gunicorn reaches it."""

    path: str  # what ``flask --app`` is given: "flaskr", "app.py", "src/blog"
    import_name: str  # "flaskr"
    attr: str  # "app" or "create_app()"
    kind: str  # instance | factory | given
    import_root: str  # "" or "src": the sys.path entry, project-relative
    files: tuple[str, ...] = ()  # project-relative files of the local modules it imported
    folders: tuple[str, ...] = ()  # project-relative template/static folders it uses

    @property
    def wsgi(self) -> str:
        """gunicorn's ``module:attr`` (``flaskr:create_app()``)."""
        return f"{self.import_name}:{self.attr}"

    @property
    def flask_arg(self) -> str:
        """The ``flask --app`` argument that finds the same app."""
        return self.path if self.kind != "given" else f"{self.path}:{self.attr}"


@dataclass
class Deps:
    """Where the dependencies came from and the locks the image installs."""

    source: str  # "requirements.txt", "pyproject.toml [project].dependencies", …
    names: set[str]  # direct requirement names, normalized
    #: lock file name → text to write (None: an existing lock used as it is)
    locks: dict[str, str | None] = field(default_factory=dict)
    gunicorn_added: bool = False
    inputs: tuple[str, ...] = ()  # uv inputs (project-relative) when a lock is compiled
    constraints: str = ""  # pins to keep (an exported uv.lock), when compiling

    @property
    def lock(self) -> str:
        """The app's lock (the first)."""
        return next(iter(self.locks))


@dataclass
class Plan:
    """Everything init decided: the files to write (name → text) and what to tell the user."""

    root: Path
    files: dict[str, str] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: The app found and the project-relative entries its image holds (for callers: bench/).
    app: App | None = None
    entries: list[str] = field(default_factory=list)


# -- entry point ----------------------------------------------------------------------------------


def run(project_dir: str | os.PathLike[str], *, force: bool = False, dry_run: bool = False,
        echo: Echo = print, ci: str = "github") -> int:
    """Write (or with ``dry_run`` show as a diff) the Docker setup of the Flask project at
    ``project_dir``; return 0. Every refusal is a :class:`UsageError` raised before anything is
    written (the CLI prints its one line and exits 2)."""
    plan = make_plan(Path(project_dir), force=force, ci=ci)
    where = "" if Path(project_dir).resolve() == Path.cwd() else f" --project-dir {project_dir}"
    changed = [n for n, t in plan.files.items() if _read(plan.root / n) != t]
    if dry_run:
        for name in changed:
            echo(diff(plan.root, name, plan.files[name]))
    else:
        write(plan)
    echo(f"imagegate init: {plan.root}")
    for line in plan.lines:
        echo(f"  {line}")
    for note in plan.notes:
        echo(f"  note: {note}")
    verb = "would write" if dry_run else "wrote"
    echo(f"  {verb}: {', '.join(changed) or 'nothing (every file is up to date)'}")
    if dry_run:
        echo(f"dry run, nothing written: run `imagegate init{where}`, then `imagegate gate{where}`")
    else:
        echo(f"next: run `imagegate gate{where}`")
    return 0


def make_plan(project_dir: Path, *, force: bool = False, ci: str = "github") -> Plan:
    """Decide every file's text; raise :class:`UsageError` (one line) on bad input."""
    root = project_dir.resolve()
    if not root.is_dir():
        raise UsageError(f"--project-dir {project_dir}: not a directory")
    pyproject = _pyproject(root)
    python, python_from, base_image, local_python = python_version(root, pyproject)
    deps = find_deps(root, pyproject)
    compose_name = _check_conflicts(root, pyproject, deps, force, ci)

    plan = Plan(root)
    code_env = env_names(_code_files(root, None))
    probe = Prober(root, python)

    def lock_text() -> str:
        """The app's lock, compiled on first use (the probe's fallback venv installs it)."""
        compile_locks(root, deps, python)
        return deps.locks[deps.lock] or (root / deps.lock).read_text()

    probe.lock_text = lock_text
    app = find_app(root, probe, _probe_env(code_env))
    plan.lines.append(f"app: {app.wsgi} ({_kind(app)}; `flask --app {app.flask_arg}` finds it)")
    plan.lines.append(f"python: {python} ({python_from}) on {base_image}")
    if not local_python:
        plan.notes.append(f"no local base runs Python {python} ({FALLBACK_BASE[0]} runs "
                          f"{FALLBACK_BASE[1]}): PYTHON_IMAGE defaults to {base_image}, which "
                          "must be pulled, and its pip on PATH fails IG-RUN-NO-BUILD-TOOLS")

    compile_locks(root, deps, python)
    if probe.note:
        plan.notes.append(probe.note)
    plan.lines.append(f"dependencies: {deps.source} → {_lock_line(deps)}")
    if deps.gunicorn_added:
        plan.lines.append(f"gunicorn: not in {deps.source}; added to {deps.lock} (the image "
                          "serves the app with it)")

    entries = image_entries(app)
    env = env_names(_code_files(root, entries))
    facts = probe.inspect(app, entries, _probe_env(env))
    migrations = "/".join(p for p in (app.import_root, "migrations") if p)
    if "db" in facts.get("commands", []) and (root / migrations).is_dir():
        entries.append(migrations)  # Flask-Migrate's `flask db upgrade` reads them in the image
    plan.app, plan.entries = app, entries
    services = find_services(deps, facts, root, entries)
    plan.notes += services.notes
    health = _health(facts, services)
    plan.lines.append(health.line)
    instance = _instance(facts, root, entries)
    if instance:
        plan.lines.append(f"instance folder: {app.import_name} writes {instance} → "
                          f"{INSTANCE_DIR} (a volume; the code stays read-only)")
    for svc in services.lines:
        plan.lines.append(f"service: {svc}")
    if not services.lines:
        plan.lines.append("services: none (no dependency calls for one)")
    secrets_ = sorted(n for n in env if SECRET_NAME.search(n))
    if facts.get("secret_var") and facts["secret_var"] not in secrets_:
        secrets_.append(facts["secret_var"])
    if secrets_:
        plan.lines.append(f"secrets: {', '.join(secrets_)} (read from the environment) → "
                          "required by compose, \"@random\" in the gate's run_env")
    for rel, line, name in literal_defaults(root, _code_files(root, entries)):
        plan.lines.append(f"secret with a literal default: {name} at {rel}:{line} (the value is "
                          f"not shown) → required by compose (${{{name}:?…}}), \"@random\" in the "
                          "gate's run_env: the default can never ship")
    if services.db:
        password = db_password_var(services)
        plan.lines.append(f"database password: {password} → required by compose, \"@random\" in "
                          "the gate's run_env")
    catalogs = translations(root, entries) if "babel" in _lock_names(deps, root) else {}
    for folder, domains in catalogs.items():
        how = ("what `flask translate compile` runs" if "translate" in facts.get("commands", [])
               else "the catalogs are compiled at build time")
        plan.lines.append(f"translations: {folder} ({', '.join(domains)}) → `pybabel compile` "
                          f"in the Dockerfile's builder stage ({how}), the .mo files copied")
    if facts.get("secret_from") == "code":
        plan.notes.append("SECRET_KEY is set in the code, not read from the environment: read it "
                          "from the environment before deploying (e.g. app.config."
                          "from_prefixed_env() → FLASK_SECRET_KEY), then `imagegate init --force` "
                          "wires it into compose")
    setup, setup_once = _setup_command(facts.get("commands", []), app,
                                       migrations=(root / migrations).is_dir(),
                                       instance=bool(instance))
    if setup:
        shown = " ".join(setup)
        plan.lines.append(f"{_setup_name(setup)}: `{shown}` in a one-shot compose service "
                          f"`{_setup_name(setup)}` that web "
                          "waits for (service_completed_successfully)"
                          + (", once per instance volume (it is not idempotent)"
                             if setup_once else ", on every start (it is idempotent)"))
    for command in facts.get("commands", []):
        if re.search(r"init|migrate|create|seed|^db$", command) and \
                (not setup or command not in setup):
            run = f"{command} upgrade" if command == "db" else command
            plan.notes.append(f"the app has a CLI command `{command}`: run it once in the stack "
                              f"with `docker compose run --rm web flask --app {app.flask_arg} "
                              f"{run}`")

    meta = _metadata(root, pyproject)
    if not meta["source"]:
        plan.notes.append("no source URL (git remote origin or [project].urls): the image's "
                          "source label stays empty until you set ARG SOURCE in the Dockerfile "
                          "(the workflow passes the repository's URL)")
    if not _in_git(root):
        plan.notes.append("not a git checkout: the image's revision label needs a commit "
                          "(IG-LABELS); in CI the workflow's GITHUB_SHA is used")
    budget, measured = SIZE_BUDGET, probe.deps_mb()
    if measured is not None:
        # The image compiles the venv's bytecode (about a third more) on top of the base.
        budget = max(SIZE_BUDGET, -(-int(BASE_MB + 1.3 * measured + 10) // 10) * 10)
        plan.lines.append(f"size budget: {budget} MB (the dependencies take {measured:.0f} MB "
                          "installed; with their bytecode and the base)")
    ctx = Context(root=root, app=app, deps=deps, python=python, base_image=base_image,
                  local_python=local_python, entries=entries, instance=instance,
                  health=health, bare_import=not facts.get("bare_import"), env=env,
                  secrets=secrets_, services=services, meta=meta, setup=setup,
                  setup_once=setup_once, catalogs=catalogs, size_budget=budget)
    render_all(plan, ctx, compose_name, ci)
    return plan


def _setup_name(setup: list[str]) -> str:
    """The one-shot service's name: ``migrate`` for Flask-Migrate's upgrade, else ``setup``."""
    return "migrate" if setup[-2:] == ["db", "upgrade"] else "setup"


def _lock_names(deps: Deps, root: Path) -> set[str]:
    """Every name the app's lock pins (normalized), dependencies of dependencies included."""
    text = deps.locks.get(deps.lock) or _read(root / deps.lock) or ""
    return {_normalize(m) for m in re.findall(r"(?m)^([A-Za-z0-9][A-Za-z0-9._-]*)==", text)}


def _setup_command(commands: Iterable[str], app: App, *, migrations: bool,
                   instance: bool) -> tuple[list[str], bool]:
    """The command that makes the app's schema, for a one-shot ``setup`` service: Flask-Migrate's
    ``db upgrade`` (idempotent: every start) when the app has migrations; else an
    ``init-db``/``create-db``-like command, once per instance volume (such commands usually drop
    and recreate the tables, so they must never run against a database that has data). None
    without either (or a non-idempotent command with no instance volume to remember it in)."""
    names = list(commands)
    if "db" in names and migrations:
        return ["flask", "--app", app.flask_arg, "db", "upgrade"], False
    found = next((c for c in names if re.search(r"^(init|create)[-_]?(db|database|schema)?$|"
                                                r"^(init|create)[-_]", c)), "")
    if found and instance:
        return ["flask", "--app", app.flask_arg, found], True
    return [], False


def _check_conflicts(root: Path, pyproject: Mapping[str, Any], deps: Deps, force: bool,
                     ci: str = "github") -> str:
    """The compose file's name (the existing one, else compose.yaml); without ``force``, one
    line naming every file init would overwrite."""
    compose_name = next((n for n in COMPOSE_FILES if (root / n).is_file()), "compose.yaml")
    targets = ["Dockerfile", ".dockerignore", compose_name, GUNICORN_CONF,
               *[n for n, t in deps.locks.items() if t is not None], CI_FILES[ci]]
    conflicts = [n + (" (it lacks gunicorn: init re-locks it)" if n in deps.inputs else "")
                 for n in targets if (root / n).exists()]
    if "imagegate" in pyproject.get("tool", {}):
        conflicts.append("pyproject.toml [tool.imagegate]")
    if conflicts and not force:
        raise UsageError(f"{', '.join(conflicts)} already exist(s) in {root}: nothing written "
                         "(run with --force to overwrite)")
    return compose_name


def render_all(plan: Plan, ctx: Context, compose_name: str, ci: str = "github") -> None:
    """Every file's text into ``plan.files``, in the order they are reported."""
    root, deps = ctx.root, ctx.deps
    plan.files["Dockerfile"] = render_dockerfile(ctx)
    plan.files[".dockerignore"] = render_dockerignore(ctx)
    plan.files[compose_name] = render_compose(ctx)
    plan.files[GUNICORN_CONF] = (TEMPLATES / "gunicorn.conf.py").read_text()
    for name, text in deps.locks.items():
        if text is not None:
            plan.files[name] = text
    plan.files[CI_FILES[ci]] = render_workflow(
        ctx, "gitlab-ci.yml.tmpl" if ci == "gitlab" else "workflow.yml.tmpl")
    plan.files["pyproject.toml"] = render_pyproject(root, ctx)
    gitignore = _gitignore(root)
    if gitignore is not None:
        plan.files[".gitignore"] = gitignore


# -- the project's metadata -----------------------------------------------------------------------


def _pyproject(root: Path) -> dict[str, Any]:
    """pyproject.toml as data ({} when there is none); invalid TOML is a one-line error."""
    path = root / "pyproject.toml"
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text ({exc.reason})") from None


@functools.lru_cache(maxsize=1)
def local_base() -> tuple[str, str]:
    """The local Python base image and the minor Python it runs (``imagegate base`` makes it)."""
    try:
        from imagegate.build.base import recipes

        ref = recipes("python")[0].ref
        return ref, ref.split(":", 1)[1].split("-", 1)[0]
    except Exception:  # not a Debian host (no apt-cache): the name this repo's bases have
        return FALLBACK_BASE


def python_version(root: Path, pyproject: Mapping[str, Any]) -> tuple[str, str, str, bool]:
    """(minor Python, where it came from, the PYTHON_IMAGE default, whether it is the local base).

    ``.python-version`` wins; else the local base's Python when ``requires-python`` allows it,
    else the lowest minor it allows; else the local base's.
    """
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    base_ref, base_minor = local_base()
    chosen, where = "", ""
    pinned = root / ".python-version"
    if pinned.is_file():
        first = next((ln.strip() for ln in pinned.read_text().splitlines() if ln.strip()), "")
        found = re.search(r"(\d+)\.(\d+)", first)
        if not found:
            raise UsageError(f"{pinned}: cannot read a Python version from {first[:40]!r}")
        chosen, where = f"{found.group(1)}.{found.group(2)}", f".python-version {first}"
    requires = str(pyproject.get("project", {}).get("requires-python", "") or "")
    if requires:
        try:
            spec = SpecifierSet(requires)
        except InvalidSpecifier:
            raise UsageError(f"pyproject.toml: requires-python {requires!r} is not a version "
                             "specifier") from None

        def allows(minor: str) -> bool:
            """``requires-python`` admits some release of ``minor``."""
            return any(spec.contains(f"{minor}.{patch}") for patch in range(0, 30))

        if chosen and not allows(chosen):
            raise UsageError(f".python-version {chosen} is outside requires-python {requires!r}")
        if not chosen:
            allowed = [f"3.{m}" for m in range(8, 15) if allows(f"3.{m}")]
            if not allowed:
                raise UsageError(f"pyproject.toml: requires-python {requires!r} allows no "
                                 "Python 3.8-3.14")
            chosen = base_minor if base_minor in allowed else allowed[0]
            where = f"requires-python {requires}"
    if not chosen:
        chosen, where = base_minor, "the local base's; the project names none"
    local = chosen == base_minor
    return chosen, where, base_ref if local else f"python:{chosen}-slim", local


def _normalize(name: str) -> str:
    """A distribution name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(lines: Iterable[str], root: Path, seen: set[Path]) -> set[str]:
    """Direct requirement names of requirements-file lines (following ``-r`` inside root)."""
    from packaging.requirements import InvalidRequirement, Requirement

    names: set[str] = set()
    for raw in lines:
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r ", "--requirement ")):
            ref = (root / line.split(None, 1)[1].strip()).resolve()
            if ref.is_file() and ref not in seen and ref.is_relative_to(root):
                seen.add(ref)
                names |= _requirement_names(ref.read_text().splitlines(), ref.parent, seen)
            continue
        if line.startswith("-"):
            continue
        try:
            names.add(_normalize(Requirement(line.split("--hash")[0].strip().rstrip("\\").strip()
                                             ).name))
        except InvalidRequirement:
            continue
    return names


def _hashed_lock(path: Path) -> set[str] | None:
    """Names a hashed lock pins, or None when ``path`` is not one (no hashes, unpinned…)."""
    from imagegate.build.wheelhouse import parse_lock

    if not path.is_file() or "--hash=" not in path.read_text():
        return None
    try:
        return {_normalize(p.name) for p in parse_lock(path)}
    except WheelhouseError:
        return None


def _requirements_files(root: Path) -> list[str]:
    """The runtime requirements files: requirements.txt, else requirements*.txt that are not
    dev/test ones, else requirements/{prod,production,base,common}.txt."""
    if (root / "requirements.txt").is_file():
        return ["requirements.txt"]
    found = sorted(p.name for p in root.glob("requirements*.txt")
                   if not DEV_REQUIREMENTS.search(p.name.removeprefix("requirements")))
    if found:
        return found
    folder = root / "requirements"
    for name in ("prod.txt", "production.txt", "base.txt", "common.txt", "main.txt"):
        if (folder / name).is_file():
            return [f"requirements/{name}"]
    if (root / "requirements.in").is_file():
        return ["requirements.in"]
    return []


def find_deps(root: Path, pyproject: Mapping[str, Any]) -> Deps:
    """Where the dependencies are, and which locks will be written (texts filled by
    :func:`compile_locks`). No dependency source at all is a one-line error."""
    deps: Deps | None = None
    for name in (LOCK, "requirements.txt"):
        pinned = _hashed_lock(root / name)
        if pinned is not None:
            deps = Deps(f"{name} (hashed)", pinned, {name: None})
            if "gunicorn" not in pinned or name != LOCK:
                # Re-lock it (same pins, plus gunicorn when missing) into requirements.lock.
                deps.locks = {LOCK: ""}
                deps.inputs = (name,)
                deps.gunicorn_added = "gunicorn" not in pinned
                if name == LOCK:
                    deps.source = f"{name} (hashed, without gunicorn)"
            break
    if deps is None and (root / "uv.lock").is_file():
        names = _project_names(pyproject)
        deps = Deps("uv.lock", names, {LOCK: ""}, gunicorn_added="gunicorn" not in names,
                    inputs=("pyproject.toml",), constraints="uv.lock")
    if deps is None:
        files = _requirements_files(root)
        if files:
            names = _requirement_names(
                (ln for f in files for ln in (root / f).read_text().splitlines()), root, set())
            deps = Deps(", ".join(files), names, {LOCK: ""}, inputs=tuple(files),
                        gunicorn_added="gunicorn" not in names)
    if deps is None and pyproject.get("project", {}).get("dependencies"):
        names = _project_names(pyproject)
        deps = Deps("pyproject.toml [project].dependencies", names, {LOCK: ""},
                    inputs=("pyproject.toml",), gunicorn_added="gunicorn" not in names)
    if deps is None:
        raise UsageError(f"no dependencies found in {root}: add requirements.txt (or "
                         "[project].dependencies in pyproject.toml) naming flask")
    boot = _hashed_lock(root / BOOTSTRAP_LOCK)
    deps.locks[BOOTSTRAP_LOCK] = None if boot is not None and "pip" in boot else ""
    return deps


def _project_names(pyproject: Mapping[str, Any]) -> set[str]:
    """Direct dependency names of ``[project].dependencies``."""
    return _requirement_names(pyproject.get("project", {}).get("dependencies", []) or [],
                              Path("."), set())


def uv_binary() -> str:
    """The uv executable (imagegate's dev extras ship it), or a one-line error."""
    beside = Path(sys.executable).parent / "uv"
    if beside.is_file():
        return str(beside)
    found = shutil.which("uv")
    if not found:
        raise UsageError("uv not found: it writes the hashed lock (`pip install uv`, or "
                         "imagegate's dev extras)")
    return found


def compile_locks(root: Path, deps: Deps, python: str) -> None:
    """Fill the texts of the locks to write: ``uv pip compile --universal --generate-hashes``
    (as ``make lock``), gunicorn added when missing; pip alone for the bootstrap lock."""
    uv = uv_binary()
    base = ["pip", "compile", "-q", "--universal", "--generate-hashes", "--python-version",
            python]
    for name, text in list(deps.locks.items()):
        if text is None or text:  # used as it is, or compiled already
            continue
        if name == BOOTSTRAP_LOCK:
            deps.locks[name] = _uv(uv, root, [*base, "-"], "pip\n", name)
            continue
        inputs = list(deps.inputs)
        with tempfile.TemporaryDirectory(prefix="imagegate-init-") as tmp:
            extra: list[str] = []
            if deps.constraints == "uv.lock":
                exported = _run_uv(uv, root, ["export", "--frozen", "--no-dev", "--no-emit-project",
                                              "--no-header", "--no-hashes", "--format",
                                              "requirements-txt"])
                constraints = Path(tmp) / "uv-lock-pins.txt"
                constraints.write_text(exported)
                extra = ["-c", str(constraints)]
            stdin = "gunicorn\n" if deps.gunicorn_added else None
            args = [*base, *inputs, *(["-"] if stdin else [])]
            shown = (" -c <(uv export --frozen --no-dev --no-emit-project --no-hashes --format "
                     "requirements-txt)") if extra else ""
            deps.locks[name] = _uv(uv, root, args, stdin, name, extra=extra, shown_extra=shown)


def _uv(uv: str, root: Path, args: list[str], stdin: str | None, out: str, *,
        extra: Iterable[str] = (), shown_extra: str = "") -> str:
    """One ``uv pip compile`` printing the lock, its header the command that remakes it
    (``extra`` arguments are passed, and shown as ``shown_extra``)."""
    visible = " ".join(a for a in args if a != "-q")
    command = (f"echo {stdin.strip()} | " if stdin else "") + f"uv {visible}{shown_extra} -o {out}"
    return _run_uv(uv, root, [*args, *extra, "--custom-compile-command", command], stdin)


def _run_uv(uv: str, root: Path, args: list[str], stdin: str | None = None) -> str:
    """Run uv in ``root``; a failure is one line naming what uv said."""
    try:
        return run_cmd([uv, *args], cwd=root, timeout=300, input=stdin).stdout
    except CommandFailed as exc:
        last = next((ln for ln in reversed(exc.stderr.strip().splitlines())
                     if ln.strip()), "")
        raise UsageError(f"uv {args[0]} {args[1] if len(args) > 1 else ''} failed: "
                         f"{last.strip()[:200]}") from None


def _lock_line(deps: Deps) -> str:
    """How the app's lock was obtained, for the summary."""
    if deps.locks[deps.lock] is None:
        return f"{deps.lock} used as it is"
    pins = len(re.findall(r"^[A-Za-z0-9][^\s]*==", deps.locks[deps.lock] or "", re.M))
    return f"{deps.lock} (uv, universal, hashed: {pins} pins)"


# -- finding the app ------------------------------------------------------------------------------


def _skip(name: str, folder: Path | None = None, top: bool = True) -> bool:
    """Directories never searched or copied: hidden ones, venvs, caches, and at the ``top``
    of the project (or of src/) build outputs and the instance folder."""
    if name in SKIP_DIRS or name.startswith(".") or name.endswith(".egg-info"):
        return True
    if folder is not None and (folder / name / "pyvenv.cfg").is_file():
        return True
    return top and name in SKIP_TOP


def _mentions_flask(path: Path) -> bool:
    """The file names Flask or an app factory (a cheap filter before importing anything)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return False
    return bool(re.search(r"\bflask\b|\bcreate_app\b|\bmake_app\b", text, re.I))


def candidates(root: Path) -> list[dict[str, str | None]]:
    """What ``flask --app`` could be given: ``FLASK_APP`` from ``.flaskenv`` alone when set;
    else wsgi.py and app.py (Flask's defaults) first, then modules and packages at the top and
    under ``src/`` whose code names Flask (tests, docs, setup.py and the like excluded)."""
    flaskenv = root / ".flaskenv"
    if flaskenv.is_file():
        for line in flaskenv.read_text().splitlines():
            found = re.match(r"\s*(?:export\s+)?FLASK_APP\s*=\s*[\"']?([^\"'#\s]+)", line)
            if found:
                path, _, name = found.group(1).partition(":")
                return [{"path": path, "name": name or None}]
    out: list[dict[str, str | None]] = []
    for name in ("wsgi.py", "app.py"):
        if (root / name).is_file() or (root / name[:-3] / "__init__.py").is_file():
            out.append({"path": name, "name": None})
    for folder, prefix in ((root, ""), (root / "src", "src/")):
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            stem = entry.name[:-3] if entry.name.endswith(".py") else entry.name
            if _skip(entry.name) or stem in NOT_CANDIDATES or stem.startswith("test"):
                continue
            if prefix == "" and entry.name in ("wsgi.py", "app.py", "wsgi", "app"):
                continue
            module = entry if entry.suffix == ".py" else entry / "__init__.py"
            if module.is_file() and _mentions_flask(module):
                out.append({"path": prefix + entry.name, "name": None})
    return out


class Prober:
    """Runs ``probe.py`` under an interpreter that can import the project: this one first; when
    the project needs modules it lacks, a throwaway venv made by uv from the project's lock."""

    def __init__(self, root: Path, python: str) -> None:
        self.root = root
        self.python_version = python
        self.python = sys.executable
        #: Gives the app's lock text (compiling it on first use): the fallback venv's contents.
        self.lock_text: Callable[[], str] = str
        self._venv: tempfile.TemporaryDirectory[str] | None = None
        self.note = ""

    def ask(self, request: dict[str, Any], copy_of: Iterable[str] | None) -> dict[str, Any]:
        """Run the probe in a fresh copy of the project (``copy_of``: only those entries)."""
        with tempfile.TemporaryDirectory(prefix="imagegate-init-probe-") as tmp:
            work = Path(tmp) / "project"
            _copy(self.root, work, copy_of)
            req, res = Path(tmp) / "request.json", Path(tmp) / "result.json"
            req.write_text(json.dumps({**request, "root": str(work)}))
            # FLASK_RUN_FROM_CLI: as under `flask --app`, an app.run() at import returns at once.
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tmp,
                   "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1",
                   "FLASK_RUN_FROM_CLI": "true", **request.get("env", {})}
            try:
                proc = subprocess.run(
                    [self.python, str(TEMPLATES / "probe.py"), str(req), str(res)], cwd=work,
                    env=env, timeout=180, capture_output=True, text=True,
                    stdin=subprocess.DEVNULL, check=False)
            except subprocess.TimeoutExpired:
                raise UsageError("loading the app took over 180 s (does it connect somewhere "
                                 "at import?)") from None
            if not res.is_file():
                raise UsageError(f"the probe could not run under {self.python}")
            data: dict[str, Any] = json.loads(res.read_text())
            if "Ignoring a call to 'app.run()'" in proc.stderr:
                raise UsageError("the app calls app.run() when it is imported: under gunicorn "
                                 "that starts a second server and never returns; put it under "
                                 "`if __name__ == \"__main__\":`")
            return data

    def with_deps(self) -> bool:
        """Switch to a venv holding the project's lock; False when it cannot be made."""
        if self._venv is not None:
            return False
        text = self.lock_text()
        if not text:
            return False
        self._venv = tempfile.TemporaryDirectory(prefix="imagegate-init-venv-")
        venv = Path(self._venv.name) / "venv"
        lock = Path(self._venv.name) / "lock.txt"
        lock.write_text(text)
        try:
            uv = uv_binary()
            run_cmd([uv, "venv", "-q", "--python", self.python_version, str(venv)], timeout=300)
            run_cmd([uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"),
                     "-r", str(lock)], timeout=600)
        except (CommandFailed, UsageError):
            return False
        self.python = str(venv / "bin" / "python")
        self.note = ("this interpreter lacks the app's dependencies: the app was loaded in a "
                     "throwaway venv uv made from the lock")
        return True

    def deps_mb(self) -> float | None:
        """The installed size (MB) of the lock in the throwaway venv (None: none was made)."""
        if self._venv is None:
            return None
        site = Path(self._venv.name) / "venv" / "lib"
        return sum(f.stat().st_size for f in site.rglob("*") if f.is_file()) / 1e6

    def inspect(self, app: App, entries: list[str], env: dict[str, str]) -> dict[str, Any]:
        """Load ``app`` from a copy holding only ``entries`` (what the image holds) and read it."""
        request = {"mode": "inspect", "path": app.path, "name": app.attr if app.kind == "given"
                   else None, "health_paths": list(HEALTH_PATHS),
                   "secrets": {k: v for k, v in env.items() if SECRET_NAME.search(k)},
                   "env": {k: v for k, v in env.items() if not SECRET_NAME.search(k)}}
        facts = self.ask(request, entries)
        missing = re.search(r"No module named '([\w.]+)'", facts.get("error", ""))
        local = False
        if missing:  # a module of the project's own is not a dependency: no venv will help
            top, where = missing.group(1).split(".")[0], self.root / app.import_root
            local = (where / top).is_dir() or (where / f"{top}.py").is_file()
        if missing and not local and self.with_deps():
            facts = self.ask(request, entries)
        if "error" in facts:
            raise UsageError(f"{app.wsgi} would not load from the files the image gets "
                             f"({', '.join(entries)}): {facts['error']}")
        return facts


def _missing_module(text: str) -> bool:
    """The error says a module could not be imported."""
    return "ModuleNotFoundError" in text or "No module named" in text


def _copy(root: Path, dest: Path, only: Iterable[str] | None) -> None:
    """Copy the project (or only the ``only`` entries) to ``dest``, without VCS, venvs, caches
    and instance folders."""
    tops = {root, root / "src"}

    def ignore(folder: str, names: list[str]) -> set[str]:
        """What copytree leaves out of ``folder``."""
        here = Path(folder)
        return {n for n in names if _skip(n, here, here in tops) or n.endswith(".pyc")}

    if only is None:
        shutil.copytree(root, dest, ignore=ignore, symlinks=True)
        return
    dest.mkdir(parents=True)
    for entry in only:
        src = root / entry
        target = dest / entry
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=ignore, symlinks=True)
        elif src.is_file():
            shutil.copy2(src, target)


def find_app(root: Path, probe: Prober, env: dict[str, str]) -> App:
    """The one Flask app of the project, loaded as ``flask --app`` loads it."""
    found = candidates(root)
    if not found:
        raise UsageError(f"no Flask app found in {root}: no wsgi.py or app.py, and no module or "
                         "package (also under src/) that names Flask")
    request = {"mode": "find", "candidates": found, "env": env}
    result = probe.ask(request, None)
    missing = ("error" in result and _missing_module(result["error"])) or any(
        c["status"] == "error" and _missing_module(c.get("error", ""))
        for c in result.get("candidates", []))
    if missing and probe.with_deps():
        result = probe.ask(request, None)
    if "error" in result:
        raise UsageError(f"cannot load Flask in {probe.python}: {result['error']}")
    results = result["candidates"]
    multiple = [c for c in results if c["status"] == "multiple"]
    if multiple:
        c = multiple[0]
        raise UsageError(f"{c['path']}: {c['error']} (or set FLASK_APP=module:name in "
                         ".flaskenv, which `flask --app` reads too)")
    apps = [c for c in results if c["status"] == "app"]
    if not apps:
        failed = [c for c in results if c["status"] == "error"]
        if failed:
            c = failed[0]
            at = f" at {c['where']}" if c.get("where") else ""
            raise UsageError(f"no Flask app could be loaded: `flask --app {c['path']}` fails"
                             f"{at}: {c['error']}")
        raise UsageError(f"no Flask app found in {root}: {', '.join(str(c['path']) for c in found)}"
                         " define no Flask app and no create_app()/make_app() factory")
    default = [c for c in apps if c["path"] in ("wsgi.py", "app.py")]
    if default:
        chosen = default[0]
    else:
        groups: dict[str, list[dict[str, Any]]] = {}
        for c in apps:
            groups.setdefault(str(c["app_import_name"]).split(".")[0], []).append(c)
        if len(groups) > 1:
            shown = " and ".join(f"{g[0]['import_name']}:{g[0]['attr']}" for g in groups.values())
            raise UsageError(f"two Flask apps found, {shown}: say which in .flaskenv "
                             "(FLASK_APP=module:name, as `flask --app` reads it)")
        group = next(iter(groups.values()))
        chosen = next((c for c in group if c["import_name"] == c["app_import_name"]
                       .split(".")[0]), group[0])
    return App(path=str(chosen["path"]), import_name=chosen["import_name"],
               attr=chosen["attr"], kind=chosen["kind"],
               import_root="" if chosen["sys_path"] == "." else chosen["sys_path"],
               files=tuple(chosen.get("files", ())), folders=tuple(chosen.get("folders", ())))


def _kind(app: App) -> str:
    """How the app was found, in words."""
    return {"factory": "an app factory", "instance": "a module-level Flask instance",
            "given": "named by FLASK_APP in .flaskenv"}.get(app.kind, app.kind)


def image_entries(app: App) -> list[str]:
    """Project-relative top-level entries the image needs: the packages/modules the app loaded
    from the project and the template/static folders it uses (outside those)."""
    prefix = f"{app.import_root}/" if app.import_root else ""
    entries: list[str] = []
    for rel in [*app.files, *app.folders]:
        inside = rel.removeprefix(prefix) if rel.startswith(prefix) else rel
        top = inside.split("/", 1)[0]
        entry = prefix + top if rel.startswith(prefix) else top
        if entry not in entries:
            entries.append(entry)
    return entries


def _code_files(root: Path, entries: Iterable[str] | None) -> list[Path]:
    """The project's Python files: under ``entries``, or all of them (tests etc. excluded)."""
    tops = [root / e for e in entries] if entries is not None else [root]
    out: list[Path] = []
    for top in tops:
        if top.is_file() and top.suffix == ".py":
            out.append(top)
            continue
        for folder, dirs, files in os.walk(top):
            here = Path(folder)
            dirs[:] = [d for d in dirs if not _skip(d, here, here in (root, root / "src"))
                       and d not in ("tests", "test")]
            out += [Path(folder) / f for f in files if f.endswith(".py")
                    and not f.startswith("test_") and f != "conftest.py"]
    return out


def env_names(files: Iterable[Path]) -> list[str]:
    """Environment variables the code reads by name (``os.environ.get("X")``…), plus
    ``<PREFIX>_SECRET_KEY`` when it calls ``app.config.from_prefixed_env()``."""
    names: set[str] = set()
    for path in files:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        names |= set(ENV_READ.findall(text))
        for prefix in PREFIXED_ENV.findall(text):
            names.add(f"{prefix or 'FLASK'}_SECRET_KEY")
    return sorted(names)


def _probe_env(names: Iterable[str]) -> dict[str, str]:
    """The environment the app is loaded with: a random value for every secret it reads, a
    closed port for the services it would reach (the image stage runs it alone)."""
    env = {"SECRET_KEY": secrets.token_hex(32)}
    for name in names:
        if SECRET_NAME.search(name):
            env[name] = secrets.token_hex(32)
        elif "REDIS" in name:
            env[name] = _redis_value(name, "127.0.0.1", "1")
    return env


def _redis_value(name: str, host: str, port: str) -> str:
    """A value for a Redis variable: a URL, a host or a port, by its name."""
    if name.endswith("HOST"):
        return host
    if name.endswith("PORT"):
        return port
    return f"redis://{host}:{port}/0"


# -- what the app told us -------------------------------------------------------------------------


@dataclass
class Services:
    """The services the stack gets (only Redis can be made here), and what to tell the user."""

    redis: bool = False
    redis_vars: list[str] = field(default_factory=list)
    postgres: bool = False
    #: The generated ``db``: "postgres", "mariadb" or "" (none); the variable the app reads its
    #: URL from, the URL's scheme, and the variable holding the database's password.
    db: str = ""
    db_url_var: str = ""
    db_scheme: str = ""
    lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def find_services(deps: Deps, facts: Mapping[str, Any], root: Path,
                  entries: Iterable[str]) -> Services:
    """Redis when a dependency names it and the image's code uses it, or the app's config holds
    a redis:// URL; a ``db`` service (the stock postgres:16, or mariadb:11 for a MySQL driver)
    when a database driver is a dependency the code's database use justifies, or a postgres://
    URL. A dependency the code never mentions justifies nothing (it is said)."""
    out = Services()
    code = "\n".join(p.read_text(errors="replace") for p in _code_files(root, entries))
    env = env_names(_code_files(root, entries))
    urls = facts.get("config_urls", {})
    why_redis = sorted(REDIS_PACKAGES & deps.names)
    if why_redis and not re.search(r"redis", code, re.I):
        out.notes.append(f"{deps.source} names {', '.join(why_redis)} but the app's code never "
                         "mentions Redis: no Redis service (add one if a library needs it)")
        why_redis = []
    if why_redis:
        out.redis, reason = True, f"{deps.source} names {', '.join(why_redis)}"
    elif urls.get("redis"):
        out.redis, reason = True, f"the app's config {urls['redis'][0]} is a redis:// URL"
    elif REDIS_URL.search(code) and "redis" in deps.names | {"celery", "rq", "flask-caching",
                                                               "flask-limiter"}:
        out.redis, reason = True, "the code connects to a redis:// URL"
    if out.redis:
        out.redis_vars = [n for n in env if "REDIS" in n and not SECRET_NAME.search(n)]
        out.lines.append(f"redis ({reason}) → compose service `redis` on {REDIS_IMAGE}, "
                         + (", ".join(f"{v}={_redis_value(v, 'redis', '6379')}"
                                      for v in out.redis_vars) or "host `redis`"))
        if not out.redis_vars:
            out.notes.append("the code reads no REDIS_* variable: it must connect to host "
                             "`redis` (the compose service) to reach it in the stack")
    pg = sorted(POSTGRES_PACKAGES & deps.names)
    if pg and not re.search(r"postgres|psycopg|sqlalchemy|DATABASE_UR[LI]|\bpg8000|asyncpg",
                            code, re.I):
        out.notes.append(f"{deps.source} names {', '.join(pg)} but the app's code never "
                         "mentions a database: no Postgres service")
        pg = []
    pg_url = urls.get("postgres") or (SQLALCHEMY_PACKAGES & deps.names and
                                      POSTGRES_URL.search(code))
    mysql = sorted(MYSQL_PACKAGES & deps.names)
    if mysql and not re.search(r"mysql|mariadb|sqlalchemy|DATABASE_UR[LI]", code, re.I):
        out.notes.append(f"{deps.source} names {', '.join(mysql)} but the app's code never "
                         "mentions a database: no database service")
        mysql = []
    if pg or pg_url:
        out.postgres, out.db = True, "postgres"
        reason = f"{deps.source} names {', '.join(pg)}" if pg else "a postgres:// URL"
        # SQLAlchemy's default driver changed (psycopg2 → psycopg 3 in 2.1): name the one the
        # dependencies install. A plain libpq URL when SQLAlchemy is not used.
        driver = {"psycopg2": "+psycopg2", "psycopg2-binary": "+psycopg2", "psycopg": "+psycopg",
                  "psycopg-binary": "+psycopg", "pg8000": "+pg8000", "asyncpg": "+asyncpg"}
        sqlalchemy = bool(SQLALCHEMY_PACKAGES & deps.names) or "sqlalchemy" in code.lower()
        out.db_scheme = "postgresql" + (next((driver[d] for d in pg if d in driver), "")
                                        if sqlalchemy else "")
        image, password = POSTGRES_IMAGE, "POSTGRES_PASSWORD"
    elif mysql:
        out.db, reason = "mariadb", f"{deps.source} names {', '.join(mysql)}"
        out.db_scheme = "mysql+pymysql" if "pymysql" in mysql else \
            "mysql+mysqlconnector" if "mysql-connector-python" in mysql else "mysql"
        image, password = MARIADB_IMAGE, "MARIADB_ROOT_PASSWORD"
    if out.db:
        urls_read = [n for n in env if DB_URL_NAME.search(n)]
        out.db_url_var = urls_read[0] if urls_read else "DATABASE_URL"
        health = "pg_isready" if out.db == "postgres" else "healthcheck.sh"
        out.lines.append(f"{out.db} ({reason}) → compose service `db` on {image} (pulled like "
                         f"any stock image), a {health} healthcheck, a named volume, {password} "
                         f"from the environment; web gets {out.db_url_var}={db_url(out, '…')}")
        if not urls_read:
            out.notes.append("the code reads no DATABASE_URL-like variable: web gets "
                             "DATABASE_URL, which the app must read to reach the `db` service")
    return out


def db_password_var(services: Services) -> str:
    """The variable the ``db`` service takes its password from ("" without one)."""
    return {"postgres": "POSTGRES_PASSWORD", "mariadb": "MARIADB_ROOT_PASSWORD"}.get(
        services.db, "")


def db_url(services: Services, password: str | None = None) -> str:
    """The URL web reaches ``db`` at (``password``: shown instead of the interpolation)."""
    var = db_password_var(services)
    secret = password if password is not None else f"${{{var}:?{var} must be set}}"
    user, port = ("postgres", 5432) if services.db == "postgres" else ("root", 3306)
    return f"{services.db_scheme}://{user}:{secret}@db:{port}/{DB_NAME}"


def literal_defaults(root: Path, files: Iterable[Path]) -> list[tuple[str, int, str]]:
    """(project-relative file, line, variable) of every secret the code reads from the
    environment with a literal fallback (``os.environ.get('SECRET_KEY') or '…'``). The value
    itself is never returned: whoever prints this cannot leak it."""
    found: list[tuple[str, int, str]] = []
    for path in sorted(files):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for match in LITERAL_DEFAULT.finditer(text):
            if SECRET_NAME.search(match.group(1)):
                line = text.count("\n", 0, match.start()) + 1
                found.append((path.relative_to(root).as_posix(), line, match.group(1)))
    return found


def translations(root: Path, entries: Iterable[str]) -> dict[str, list[str]]:
    """Gettext catalogs the image's code holds: {catalog directory (project-relative): its
    domains}, from ``DIR/<lang>/LC_MESSAGES/<domain>.po`` (as ``pybabel init -d DIR`` lays
    them out)."""
    found: dict[str, set[str]] = {}
    for entry in entries:
        top = root / entry
        if not top.is_dir():
            continue
        for po in sorted(top.rglob("LC_MESSAGES/*.po")):
            catalog = po.parent.parent.parent
            found.setdefault(catalog.relative_to(root).as_posix(), set()).add(po.stem)
    return {k: sorted(v) for k, v in sorted(found.items())}


@dataclass(frozen=True)
class Health:
    """How the image and the stack are probed.

    ``path`` answers 200 with the app alone: the HEALTHCHECK, the compose healthcheck and
    ``health_path`` all use it. Without one, the HEALTHCHECK only checks that gunicorn answers
    ``live`` (any status); ``stack`` is a health route that failed only for want of the detected
    services: the compose healthcheck and ``http_checks`` want 200 from it in the stack.
    """

    path: str
    live: str
    stack: str
    line: str

    @property
    def compose(self) -> str:
        """The path the compose healthcheck wants 2xx from ("" → liveness on ``live``)."""
        return self.path or self.stack


def _health(facts: Mapping[str, Any], services: Services) -> Health:
    """Choose the probes from what the test client saw (see :class:`Health`)."""
    if facts.get("health"):
        path = facts["health"]
        return Health(path, "", "", f"health: GET {path} answers 200 in Flask's test client → "
                      "HEALTHCHECK, compose healthcheck, health_path")
    tried = facts.get("tried", [])
    shown = ", ".join(f"{t['path']} {t['status']}" for t in tried) or "no route"
    named = [t["path"] for t in tried if t["path"] in HEALTH_PATHS and t["path"] != "/"
             and t["status"] >= 500]
    if named and (services.redis or services.db):
        needs = " and ".join(n for n, on in (("Redis", services.redis),
                                             ("Postgres", services.db == "postgres"),
                                             ("MariaDB", services.db == "mariadb")) if on)
        return Health("", named[0], named[0], (
            f"health: no route answers 200 on its own ({shown}); {named[0]} needs {needs}: the "
            f"HEALTHCHECK checks that gunicorn answers it (liveness), the compose healthcheck "
            f"and the gate's stack check (http_checks) want 200 from it with {needs} up. For a "
            "real HEALTHCHECK add GET /healthz answering 200 without any service"))
    live = "/"
    return Health("", live, "", (
        f"health: no route answers 200 on its own ({shown}); add GET /healthz answering 200 "
        "without any service, then `imagegate init --force`. Until then the HEALTHCHECK only "
        f"checks that gunicorn answers HTTP on {live}"))


def _instance(facts: Mapping[str, Any], root: Path, entries: Iterable[str]) -> str:
    """The instance folder relative to the import root ("instance"), or "" when unused."""
    code = "\n".join(p.read_text(errors="replace") for p in _code_files(root, entries))
    used = facts.get("instance_exists") or re.search(
        r"instance_path|instance_relative_config\s*=\s*True", code)
    rel = str(facts.get("instance_rel", ""))
    if not used or rel.startswith("..") or rel.startswith("/"):
        return ""
    return rel


def _metadata(root: Path, pyproject: Mapping[str, Any]) -> dict[str, str]:
    """Title, description and source URL for the OCI labels."""
    project = pyproject.get("project", {})
    title = str(project.get("name") or root.name)
    description = str(project.get("description") or f"{title}: a Flask app")
    source = _git_remote(root)
    if not source:
        urls = {str(k).lower(): str(v) for k, v in (project.get("urls") or {}).items()}
        source = next((urls[k] for k in ("source", "source code", "repository", "homepage")
                       if k in urls), "")

    def clean(text: str) -> str:
        """One line, without what a Dockerfile LABEL would interpolate or end on."""
        return re.sub(r"[\"$\\`]", "", " ".join(text.split()))[:120]

    return {"title": clean(title), "description": clean(description), "source": clean(source)}


def _in_git(root: Path) -> bool:
    """``root`` is inside a git work tree."""
    return git(root, "rev-parse", "--is-inside-work-tree") == "true"


def _git_remote(root: Path) -> str:
    """``origin``'s URL as https, without credentials ("" when there is none)."""
    url = git(root, "remote", "get-url", "origin")
    scp = re.fullmatch(r"[\w.-]+@([\w.-]+):(.+)", url)
    if scp:
        url = f"https://{scp.group(1)}/{scp.group(2)}"
    url = re.sub(r"^(?:ssh|git)://(?:[^@/]+@)?", "https://", url)
    url = re.sub(r"^(https?://)[^@/]+@", r"\1", url)  # never a token in a label
    return url.removesuffix(".git") if url.startswith(("https://", "http://")) else ""


def image_repo(title: str) -> str:
    """The local repository the gate tags the image into."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "app"
    return f"imagegate/{slug}"


# -- rendering ------------------------------------------------------------------------------------


@dataclass
class Context:
    """What the templates are filled from."""

    root: Path
    app: App
    deps: Deps
    python: str
    base_image: str
    local_python: bool
    entries: list[str]
    instance: str
    health: Health
    bare_import: bool
    env: list[str]
    secrets: list[str]
    services: Services
    meta: dict[str, str]
    #: The schema command a one-shot ``setup`` service runs before web ([] when none), and
    #: whether it runs once per instance volume (a non-idempotent init-db) or every start.
    setup: list[str] = field(default_factory=list)
    setup_once: bool = False
    #: Gettext catalog directories (project-relative) → their domains, compiled in the builder.
    catalogs: dict[str, list[str]] = field(default_factory=dict)
    #: The image size budget (MB) written to [tool.imagegate].
    size_budget: int = SIZE_BUDGET

    @property
    def locks(self) -> list[str]:
        """The lock files, app lock first."""
        return list(self.deps.locks)

    @property
    def image(self) -> str:
        """The compose default for APP_IMAGE."""
        return f"{image_repo(self.meta['title'])}:local"


def fill(template: str, values: Mapping[str, str]) -> str:
    """``{{name}}`` placeholders filled; a placeholder alone on its line takes a block (its lines
    indented like it; the line goes when the block is empty). An unknown name is a bug."""
    def block(match: re.Match[str]) -> str:
        """The block for a placeholder alone on its line, indented like it."""
        indent, name = match.group(1), match.group(2)
        text = values[name]
        return "".join(f"{indent}{ln}\n" if ln else "\n" for ln in text.splitlines())

    text = re.sub(r"(?m)^([ \t]*)\{\{(\w+)\}\}[ \t]*\n", block, template)
    return re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], text)


def health_probe(path: str, live: str = "/") -> str:
    """The healthcheck's Python: GET ``path`` answers 2xx (urlopen raises otherwise), or with no
    path, any HTTP answer from ``live`` (liveness only)."""
    if path:
        return ("import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s"
                f"{path}' % os.environ.get('PORT', '{PORT}'), timeout=2)")
    return ("import http.client, os; c = http.client.HTTPConnection('127.0.0.1', "
            f"int(os.environ.get('PORT', '{PORT}')), timeout=2); c.request('GET', '{live}'); "
            "c.getresponse()")


def render_dockerfile(ctx: Context) -> str:
    """The multi-stage Dockerfile."""
    app = ctx.app
    dirs = [e for e in ctx.entries if (ctx.root / e).is_dir()]
    files = [e for e in ctx.entries if e not in dirs]
    prefix = f"{app.import_root}/" if app.import_root else ""
    copies = [f"COPY {d}/ {APP_ROOT}/{d.removeprefix(prefix)}/" for d in dirs]
    by_folder: dict[str, list[str]] = {}
    for f in files:  # files keep their place relative to the import root
        rel = f.removeprefix(prefix)
        by_folder.setdefault(rel.rpartition("/")[0], []).append(f)
    for folder, names in by_folder.items():
        copies.append(f"COPY {' '.join(names)} {APP_ROOT}/{folder + '/' if folder else ''}")
    copies.append(f"COPY {GUNICORN_CONF} {APP_ROOT}/")
    instance_run = ""
    instance_copy = ""
    if ctx.instance:
        instance_run = (f"mkdir -p {INSTANCE_DIR}; \\\n"
                        f"chown 10001:10001 {INSTANCE_DIR}; \\\n"
                        f"chmod 0700 {INSTANCE_DIR}; \\\n"
                        f"ln -s {INSTANCE_DIR} {APP_ROOT}/{ctx.instance}; \\")
        parent = str(Path(INSTANCE_DIR).parent)
        instance_copy = (f"# The Flask instance folder is data, not code: {APP_ROOT}/{ctx.instance} "
                         "links here, owned\n# by the app user (a volume in compose).\n"
                         f"COPY --from=builder {parent} {parent}")
    smoke = f"import {app.import_name}, gunicorn" if ctx.bare_import else "import flask, gunicorn"
    if ctx.local_python:
        base_note = (f"{ctx.base_image}, made by `imagegate base` from Debian\n"
                     "#                 packages; elsewhere `--build-arg PYTHON_IMAGE=python:"
                     f"{ctx.python}-slim` works too.")
    else:
        base_note = (f"{ctx.base_image} (no local base runs Python {ctx.python}):\n"
                     "#                 it is pulled where a registry is reachable.")
    health = ctx.health
    note = (f"Health: GET {health.path} answers 2xx (found with Flask's test client)."
            if health.path else f"Liveness only: gunicorn answers HTTP on {health.live} (no route "
            "answers 200 on its own: add /healthz).")
    return fill((TEMPLATES / "Dockerfile.tmpl").read_text(), {
        "title": ctx.meta["title"], "description": ctx.meta["description"],
        "source": ctx.meta["source"], "base_note": base_note, "python_image": ctx.base_image,
        "locks": " ".join(ctx.locks), "lock": ctx.locks[0],
        "locks_and": " and ".join(ctx.locks), "copy_code": "\n".join(copies),
        "instance_run": instance_run, "instance_copy": instance_copy, "smoke": smoke,
        "compile_catalogs": "\n".join(
            f"/opt/venv/bin/pybabel compile -d {APP_ROOT}/{folder.removeprefix(prefix)} "
            f"-D {domain}; \\" for folder, domains in ctx.catalogs.items() for domain in domains),
        "port": str(PORT), "health_note": note,
        "health_probe": health_probe(health.path, health.live),
        "wsgi": app.wsgi,
    })


def render_dockerignore(ctx: Context) -> str:
    """An allowlist: the app's code, the gunicorn config, the locks and the wheelhouse."""
    allow = [f"!{e}/" if (ctx.root / e).is_dir() else f"!{e}" for e in ctx.entries]
    return fill((TEMPLATES / "dockerignore.tmpl").read_text(), {
        "allow": "\n".join(allow), "allow_locks": "\n".join(f"!{n}" for n in ctx.locks),
        "deny": "**/.env\n**/.env.*",
    })


def render_compose(ctx: Context) -> str:
    """compose.yaml: web from the built image, hardened, plus the services found."""
    env_lines = [f"{n}: ${{{n}:?{n} must be set}}" for n in ctx.secrets]
    var_lines = [f"#   {n:<16} (required, no default)   a secret the app reads" for n in ctx.secrets]
    svc = ctx.services
    if svc.redis:
        env_lines += [f"{v}: {_redis_value(v, 'redis', '6379')}" for v in svc.redis_vars]
        var_lines.append(f"#   REDIS_IMAGE      {REDIS_IMAGE}   the Redis image")
    if svc.db:
        password = db_password_var(svc)
        env_lines.append(f"{svc.db_url_var}: {db_url(svc)}")
        var_lines.append(f"#   {password:<16} (required, no default)   the database's password "
                         "(URL-safe: web's URL holds it)")
        image = POSTGRES_IMAGE if svc.db == "postgres" else MARIADB_IMAGE
        var_lines.append(f"#   DB_IMAGE         {image}   the database image")
    web_env = ("environment:\n" + "\n".join(f"  {ln}" for ln in env_lines)) if env_lines else ""
    needs = [*(["  redis:\n    condition: service_healthy"] if svc.redis else []),
             *(["  db:\n    condition: service_healthy"] if svc.db else []),
             *([f"  {_setup_name(ctx.setup)}:\n    condition: service_completed_successfully"]
               if ctx.setup else [])]
    depends = ("depends_on:\n" + "\n".join(needs)) if needs else ""
    volumes_web = f"volumes:\n  - instance:{INSTANCE_DIR}" if ctx.instance else ""
    services = []
    if ctx.setup:
        services.append(_setup_service(ctx, env_lines))
    if svc.redis:
        services.append(REDIS_SERVICE.format(image=REDIS_IMAGE))
    if svc.db == "postgres":
        services.append(POSTGRES_SERVICE.format(image=POSTGRES_IMAGE, db=DB_NAME))
    elif svc.db == "mariadb":
        services.append(MARIADB_SERVICE.format(image=MARIADB_IMAGE, db=DB_NAME))
    named = [*(["redis-data:"] if svc.redis else []),
             *(["db-data:"] if svc.db else []),
             *(["instance:"] if ctx.instance else [])]
    volumes = ("\nvolumes:\n" + "\n".join(f"  {v}" for v in named)) if named else ""
    up_env = "".join(f"{n}=… " for n in [*ctx.secrets, *([db_password_var(svc)] if svc.db
                                                          else [])])
    return fill((TEMPLATES / "compose.yaml.tmpl").read_text(), {
        "title": ctx.meta["title"], "image": ctx.image, "port": str(PORT),
        "var_lines": "\n".join(var_lines), "web_env": web_env, "web_depends": depends,
        "web_volumes": volumes_web, "services": "\n".join(services), "volumes": volumes,
        "health_probe": health_probe(ctx.health.compose, ctx.health.live), "up_env": up_env,
    }).rstrip("\n") + "\n"


#: Runs ``argv[2:]`` unless ``argv[1]``/.imagegate-setup-done says it ran on this volume already.
SETUP_ONCE = ("import os, subprocess, sys; done = os.path.join(sys.argv[1], "
              "'.imagegate-setup-done'); os.path.exists(done) and sys.exit(0); "
              "subprocess.run(sys.argv[2:], check=True); open(done, 'w').close()")


def _setup_service(ctx: Context, env_lines: list[str]) -> str:
    """The one-shot schema service (``migrate`` for Flask-Migrate's upgrade, else ``setup``):
    the app's schema command with web's image, environment, services and instance volume,
    hardened like web; web waits for it to complete."""
    if ctx.setup_once:
        argv = ["python3", "-c", SETUP_ONCE, INSTANCE_DIR, *ctx.setup]
        why = "once per instance volume: the command recreates the tables"
    else:
        argv = ctx.setup
        why = "on every start: the upgrade is idempotent"
    name = _setup_name(ctx.setup)
    lines = ["", f"  # The app's schema, {why}; web waits for it to succeed.", f"  {name}:",
             f"    image: ${{APP_IMAGE:-{ctx.image}}}", "    pull_policy: never",
             f"    command: {json.dumps(argv)}"]
    if env_lines:
        lines += ["    environment:", *(f"      {ln}" for ln in env_lines)]
    needs = [n for n, on in (("redis", ctx.services.redis), ("db", ctx.services.db)) if on]
    if needs:
        lines += ["    depends_on:", *(f"      {n}:\n        condition: service_healthy"
                                        for n in needs)]
    if ctx.instance:
        lines += ["    volumes:", f"      - instance:{INSTANCE_DIR}"]
    lines += ["    read_only: true", "    tmpfs:", "      - /tmp", "    cap_drop: [ALL]",
              "    security_opt:", "      - no-new-privileges:true", '    restart: "no"']
    return "\n".join(lines)


REDIS_SERVICE = """
  redis:
    image: ${{REDIS_IMAGE:-{image}}}
    pull_policy: never
    command: ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--dir", "/data",
              "--appendonly", "yes"]
    volumes:
      - redis-data:/data
    healthcheck:
      test: ["CMD", "redis-cli", "ping"]
      interval: 1s
      timeout: 2s
      retries: 5
      start_period: 10s
    read_only: true
    cap_drop: [ALL]
    security_opt:
      - no-new-privileges:true
    restart: unless-stopped
    # Not published: only `web` talks to it, over the project network."""

#: The stock Postgres as its documentation has users write it: the password from the
#: environment, data on a named volume, ready when pg_isready says so. Its entrypoint starts as
#: root to own PGDATA and then drops to the postgres user: so no cap_drop (and the hardened
#: profile refuses a cap_add), but no-new-privileges (dropping privileges is not gaining any).
POSTGRES_SERVICE = """
  # PostgreSQL, the stock image (pulled where it is missing, as the gate's pull policy says).
  db:
    image: ${{DB_IMAGE:-{image}}}
    environment:
      POSTGRES_PASSWORD: ${{POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}}
      POSTGRES_DB: {db}
    volumes:
      - db-data:/var/lib/postgresql/data
    healthcheck:
      test: ["CMD", "pg_isready", "-U", "postgres", "-d", "{db}"]
      interval: 2s
      timeout: 2s
      retries: 10
      start_period: 30s
    security_opt:
      - no-new-privileges:true
    restart: unless-stopped
    # Not published: only the app talks to it, over the project network."""

#: The stock MariaDB likewise (its image ships healthcheck.sh).
MARIADB_SERVICE = """
  # MariaDB, the stock image (pulled where it is missing, as the gate's pull policy says).
  db:
    image: ${{DB_IMAGE:-{image}}}
    environment:
      MARIADB_ROOT_PASSWORD: ${{MARIADB_ROOT_PASSWORD:?MARIADB_ROOT_PASSWORD must be set}}
      MARIADB_DATABASE: {db}
    volumes:
      - db-data:/var/lib/mysql
    healthcheck:
      test: ["CMD", "healthcheck.sh", "--connect", "--innodb_initialized"]
      interval: 2s
      timeout: 2s
      retries: 10
      start_period: 30s
    security_opt:
      - no-new-privileges:true
    restart: unless-stopped
    # Not published: only the app talks to it, over the project network."""


def render_workflow(ctx: Context, template: str = "workflow.yml.tmpl") -> str:
    """The CI file: the GitHub workflow (imagegate's own gate.yml, installing imagegate instead
    of make), or with ``template`` GitLab's (the gate beside a docker:dind service)."""
    return fill((TEMPLATES / template).read_text(), {
        "python": ctx.python if ctx.local_python else FALLBACK_BASE[1],
        "imagegate_spec": f"imagegate=={__version__}",
    })


def render_pyproject(root: Path, ctx: Context) -> str:
    """pyproject.toml with a fresh [tool.imagegate] table appended (any old one removed)."""
    path = root / "pyproject.toml"
    text = path.read_text() if path.is_file() else ""
    text = _without_table(text, path)
    bases = ["python"] if ctx.local_python else []
    if ctx.services.redis:
        bases.append("redis")
    lines = [
        "[tool.imagegate]",
        "# Written by `imagegate init`: the strictest profile, and a hermetic build (no network)",
        "# whose wheels come from the hashed locks. `imagegate gate` reads this table.",
        'profile = "hardened"',
        "hermetic = true",
        f"locks = {_toml_list(ctx.locks)}",
        f"bases = {_toml_list(bases)}",
    ]
    if ctx.health.path:
        lines.append(f'health_path = "{ctx.health.path}"')
    else:
        lines.append("# health_path: no route answers 200 on its own yet (add /healthz, set it)")
    if ctx.health.stack:
        lines.append(f"# {ctx.health.stack} answers 200 once the services are up: the stack "
                     "checks it.")
        lines.append(f'http_checks = [{{ path = "{ctx.health.stack}", status = 200 }}]')
    lines += [f'image_repo = "{image_repo(ctx.meta["title"])}"',
              "# Raise it if the dependencies grow: the gate fails an image above it.",
              f"size_budget_mb = {ctx.size_budget}"]
    if not ctx.local_python:
        lines.append(f'python_image = "{ctx.base_image}"')
    run_secrets = [*ctx.secrets, *([db_password_var(ctx.services)] if ctx.services.db else [])]
    if run_secrets:
        lines += ["", "[tool.imagegate.run_env]",
                  '# The containers the gate runs get these; "@random" is a fresh secret per run.']
        lines += [f'{n} = "@random"' for n in run_secrets]
    sep = "" if not text or text.endswith("\n\n") else "\n" if text.endswith("\n") else "\n\n"
    return text + sep + "\n".join(lines) + "\n"


def _toml_list(items: Iterable[str]) -> str:
    """A TOML array of strings."""
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def _without_table(text: str, path: Path) -> str:
    """``text`` without its [tool.imagegate] tables (``--force``)."""
    if not text or "imagegate" not in tomllib.loads(text).get("tool", {}):
        return text
    out: list[str] = []
    skipping = False
    for line in text.splitlines(keepends=True):
        header = re.match(r"\s*\[\[?\s*([^\]]+?)\s*\]", line)
        if header:
            skipping = header.group(1) == "tool.imagegate" or \
                header.group(1).startswith("tool.imagegate.")
        if not skipping:
            out.append(line)
    kept = "".join(out).rstrip("\n") + "\n"
    if "imagegate" in tomllib.loads(kept).get("tool", {}):
        raise UsageError(f"{path}: [tool.imagegate] is not a table of its own; remove it by hand")
    return kept


def _gitignore(root: Path) -> str | None:
    """.gitignore with the gate's outputs (wheelhouse, reports) ignored; None when not a git
    checkout without one, or nothing to add."""
    path = root / ".gitignore"
    if not path.is_file() and not _in_git(root):
        return None
    text = path.read_text() if path.is_file() else ""
    have = {ln.strip().strip("/") for ln in text.splitlines()}
    missing = [n for n in (".wheels/", ".imagegate-out/") if n.strip("/") not in have]
    if not missing:
        return None
    sep = "" if not text or text.endswith("\n") else "\n"
    return text + sep + "# imagegate: the wheelhouse and the gate's reports\n" + \
        "\n".join(missing) + "\n"


# -- writing --------------------------------------------------------------------------------------


def _read(path: Path) -> str | None:
    """A file's text, or None when it does not exist."""
    return path.read_text() if path.is_file() else None


def diff(root: Path, name: str, text: str) -> str:
    """A unified diff from the file as it is (or /dev/null) to ``text``."""
    old = _read(root / name)
    lines = list(difflib.unified_diff(
        (old or "").splitlines(keepends=True), text.splitlines(keepends=True),
        fromfile="/dev/null" if old is None else f"a/{name}", tofile=f"b/{name}"))
    return "".join(ln if ln.endswith("\n") else ln + "\n\\ No newline at end of file\n"
                   for ln in lines).rstrip("\n")


def write(plan: Plan) -> None:
    """Write every file (each through a temporary file and a rename)."""
    for name, text in plan.files.items():
        path = plan.root / name
        if _read(path) == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.imagegate-init")
        tmp.write_text(text)
        tmp.replace(path)
