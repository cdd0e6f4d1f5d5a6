"""`imagegate init` without Docker: finding the app as `flask --app` does, dependencies, Python,
services, health, conflicts, --dry-run, and the one-line refusals that leave the tree unchanged.

Projects are written to tmp_path. Their locks are written by the tests (hashed, fake digests: only
their shape is read here), or uv is replaced by a recorder, so nothing here needs the network;
the apps are loaded by the real probe in a subprocess, under this venv's Flask.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import textwrap
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from imagegate import cli
from imagegate import scaffold as init
from imagegate.config import settings as settings_mod
from imagegate.model.dockerfile import parse

Files = dict[str, str]


def lock(*names: str) -> str:
    """A hashed lock pinning ``names`` (fake versions and digests: parse_lock reads the shape)."""
    return "".join(f"{n}==1.0 \\\n    --hash=sha256:{hashlib.sha256(n.encode()).hexdigest()}\n"
                   for n in names)


LOCKS: Files = {"requirements.lock": lock("flask", "gunicorn", "werkzeug"),
                "requirements-bootstrap.lock": lock("pip")}

SEED_APP = '''
    import os

    from flask import Flask, jsonify

    app = Flask(__name__)


    @app.route("/")
    def index():
        return f"{os.environ.get('GREETING', 'Hello')} from seed\\n"


    @app.route("/healthz")
    def healthz():
        return jsonify(status="ok")
'''

FACTORY = '''
    import os

    from flask import Flask


    def create_app(test_config=None):
        app = Flask(__name__, instance_relative_config=True)
        app.config.from_mapping(SECRET_KEY="dev",
                                DATABASE=os.path.join(app.instance_path, "blog.sqlite"))
        os.makedirs(app.instance_path, exist_ok=True)

        @app.route("/hello")
        def hello():
            return "Hello, World!"

        return app
'''


@pytest.fixture
def project(tmp_path: Path) -> Callable[[Files], Path]:
    """``project(files)``: a project in tmp_path/<n> holding ``files`` (dedented)."""
    made: list[Path] = []

    def make(files: Files) -> Path:
        root = tmp_path / f"proj{len(made)}"
        for name, text in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text).lstrip("\n"))
        root.mkdir(exist_ok=True)
        made.append(root)
        return root

    return make


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file's bytes (None for a directory), by path: the tree, to compare before/after."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


def main(*argv: str) -> int:
    """The CLI as a user runs it."""
    return cli.main(["init", *argv])


def refused(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> str:
    """Run init on ``root``; assert exit 2, one line on stderr, the tree byte-identical."""
    before = snapshot(root)
    code = main("--project-dir", str(root), *args)
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert snapshot(root) == before, "the tree changed"
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in out + err
    return lines[0]


@pytest.fixture
def fake_uv(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], str | None]]:
    """uv replaced by a recorder that answers each `pip compile` with a lock of the names it
    was given (from its input files and stdin)."""
    calls: list[tuple[list[str], str | None]] = []

    def run_uv(uv: str, root: Path, args: list[str], stdin: str | None = None) -> str:
        calls.append((args, stdin))
        names = set((stdin or "").split())
        for arg in args:
            path = root / arg
            if arg.endswith(".txt") and path.is_file():
                names |= {re.split(r"[=<>~!\[ ;]", ln.strip())[0].lower()
                          for ln in path.read_text().splitlines() if ln.strip()
                          and not ln.startswith(("#", "-"))}
            elif arg == "pyproject.toml":
                deps = tomllib.loads(path.read_text())["project"]["dependencies"]
                names |= {re.split(r"[=<>~!\[ ;]", d)[0].lower() for d in deps}
        header = f"#    {args[args.index('--custom-compile-command') + 1]}\n"
        return header + lock(*sorted(names))

    monkeypatch.setattr(init, "_run_uv", run_uv)
    return calls


def run_init(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run init; assert it succeeded and ended by telling the user to run the gate."""
    code = main("--project-dir", str(root), *args)
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert re.search(r"`imagegate gate[^`]*`$", out.strip().splitlines()[-1]), out
    return out


# -- finding the app ------------------------------------------------------------------------------


@pytest.mark.parametrize(("files", "wsgi", "flask_arg"), [
    ({"app.py": SEED_APP}, "app:app", "app.py"),
    ({"blog/__init__.py": FACTORY}, "blog:create_app()", "blog"),
    ({"src/blog/__init__.py": FACTORY}, "blog:create_app()", "src/blog"),
    ({"service.py": "from flask import Flask\nserver = Flask(__name__)\n"}, "service:server",
     "service.py"),
    ({"wsgi.py": "from blog import create_app\napp = create_app()\n", "blog/__init__.py": FACTORY},
     "wsgi:app", "wsgi.py"),
    ({"run.py": "from blog import create_app\nmy_app = create_app()\n",
      "blog/__init__.py": FACTORY}, "blog:create_app()", "blog"),
    ({".flaskenv": "FLASK_APP=hello:application\n",
      "hello.py": "from flask import Flask\napplication = Flask(__name__)\nother = Flask('x')\n"},
     "hello:application", "hello:application"),
])
def test_finds_the_app_as_flask_does(project: Callable[[Files], Path], files: Files, wsgi: str,
                                     flask_arg: str) -> None:
    """Flask's defaults (wsgi.py, app.py), a factory package (also under src/), a lone Flask
    instance under any name, one app reached through two modules, FLASK_APP in .flaskenv."""
    root = project({**files, "tests/test_x.py": "import flask\n",
                    "setup.py": "raise SystemExit('setup.py must never be imported')\n"})
    app = init.find_app(root, init.Prober(root, "3.11"), {})
    assert (app.wsgi, app.flask_arg) == (wsgi, flask_arg)


def test_app_code_runs_in_a_copy_not_in_the_tree(project: Callable[[Files], Path],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """An app that writes at import (and one that creates its instance folder) writes into the
    probe's throwaway copy: init leaves only the files it reports."""
    root = project({"app.py": SEED_APP + "\nopen('imported.txt', 'w').write('x')\n",
                    "blog/__init__.py": FACTORY, **LOCKS})
    run_init(root, capsys)
    assert not (root / "imported.txt").exists() and not (root / "instance").exists()


def test_image_holds_only_what_the_app_loads(project: Callable[[Files], Path],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """The module app's sibling module and templates go in; tests, scripts and notes do not."""
    root = project({
        "app.py": "import json\nfrom flask import Flask, render_template\nimport models\n"
                  "app = Flask(__name__)\napp.config.update(json.load(open('settings.json')))\n"
                  "\n@app.route('/')\ndef index():\n"
                  "    return render_template('index.html', n=models.N)\n",
        "settings.json": '{"GREETING": "hi"}\n', ".env": "SECRET_KEY=leaked\n",
        "models.py": "N = 3\n", "templates/index.html": "{{ n }}\n",
        "scripts/dump.py": "print('x')\n", "notes.txt": "x\n", "tests/test_app.py": "x = 1\n",
        **LOCKS})
    run_init(root, capsys)
    dockerfile = (root / "Dockerfile").read_text()
    assert "COPY templates/ /srv/app/templates/" in dockerfile
    assert "COPY app.py models.py settings.json /srv/app/" in dockerfile
    ignore = (root / ".dockerignore").read_text().splitlines()
    assert {"*", "!app.py", "!models.py", "!settings.json", "!templates/", "!.wheels/",
            "**/tests", "**/.env"} <= set(ignore)
    assert not [ln for ln in dockerfile.splitlines() if ln.startswith("COPY") and ".env" in ln]
    assert not [ln for ln in ignore if "scripts" in ln or "notes" in ln]


# -- dependencies, Python ------------------------------------------------------------------------


def test_requirements_compiled_with_uv_and_gunicorn_added(
        project: Callable[[Files], Path], fake_uv: list[tuple[list[str], str | None]],
        capsys: pytest.CaptureFixture[str]) -> None:
    """requirements.txt without gunicorn: `uv pip compile --universal --generate-hashes` (as
    `make lock`) with gunicorn on stdin, the lock's header saying how to remake it; pip alone
    for the bootstrap lock; the summary says gunicorn was added."""
    root = project({"app.py": SEED_APP, "requirements.txt": "flask>=3\n",
                    "requirements-dev.txt": "pytest\n"})
    out = run_init(root, capsys)
    app_call = next(c for c in fake_uv if "requirements.txt" in c[0])
    args, stdin = app_call
    assert args[:7] == ["pip", "compile", "-q", "--universal", "--generate-hashes",
                        "--python-version", "3.11"]
    assert stdin == "gunicorn\n" and "requirements-dev.txt" not in args
    lock_text = (root / "requirements.lock").read_text()
    assert "echo gunicorn | uv pip compile --universal --generate-hashes --python-version 3.11 " \
           "requirements.txt - -o requirements.lock" in lock_text
    assert "gunicorn==" in lock_text and "flask==" in lock_text
    assert "pip==" in (root / "requirements-bootstrap.lock").read_text()
    assert "gunicorn: not in requirements.txt; added to requirements.lock" in out


def test_pyproject_dependencies_and_requires_python(
        project: Callable[[Files], Path], fake_uv: list[tuple[list[str], str | None]],
        capsys: pytest.CaptureFixture[str]) -> None:
    """[project].dependencies (with gunicorn) is compiled as it is; requires-python >=3.10 picks
    the local base's 3.11."""
    root = project({"blog/__init__.py": FACTORY, "pyproject.toml": """
        [project]
        name = "blog"
        version = "1.0"
        requires-python = ">=3.10"
        dependencies = ["flask", "gunicorn>=23"]
    """})
    out = run_init(root, capsys)
    args, stdin = next(c for c in fake_uv if "pyproject.toml" in c[0])
    assert stdin is None and "-" not in args
    assert "python: 3.11 (requires-python >=3.10)" in out
    assert "gunicorn: not in" not in out


def test_hashed_lock_with_gunicorn_is_used_as_it_is(project: Callable[[Files], Path],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A hashed requirements.lock naming gunicorn is the image's lock: not rewritten, no uv."""
    root = project({"app.py": SEED_APP, **LOCKS})
    out = run_init(root, capsys)
    assert "requirements.lock used as it is" in out
    assert (root / "requirements.lock").read_text() == LOCKS["requirements.lock"]
    table = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["imagegate"]
    assert table["locks"] == ["requirements.lock", "requirements-bootstrap.lock"]


@pytest.mark.parametrize(("files", "minor", "image"), [
    ({".python-version": "3.11.7\n"}, "3.11", "imagegate/python:3.11-bookworm"),
    ({".python-version": "3.12\n"}, "3.12", "python:3.12-slim"),
    ({"pyproject.toml": "[project]\nname='x'\nversion='1'\nrequires-python='>=3.12'\n"}, "3.12",
     "python:3.12-slim"),
    ({"pyproject.toml": "[project]\nname='x'\nversion='1'\nrequires-python='>=3.9,<3.13'\n"},
     "3.11", "imagegate/python:3.11-bookworm"),
    ({}, "3.11", "imagegate/python:3.11-bookworm"),
])
def test_python_version(project: Callable[[Files], Path], files: Files, minor: str,
                        image: str) -> None:
    """.python-version wins; else the local base's Python when requires-python allows it, else
    the lowest it allows (on python:X.Y-slim: no local base runs it)."""
    root = project(files)
    chosen, _, base, local = init.python_version(root, init._pyproject(root))
    assert (chosen, base, local) == (minor, image, image.startswith("imagegate/"))


def test_python_version_outside_requires_python(project: Callable[[Files], Path],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    root = project({"app.py": SEED_APP, **LOCKS, ".python-version": "3.9\n",
                    "pyproject.toml": "[project]\nname='x'\nversion='1'\n"
                                      "requires-python='>=3.10'\n"})
    assert ".python-version 3.9 is outside requires-python" in refused(capsys, root)


# -- services, secrets, health, instance ----------------------------------------------------------

REDIS_FACTORY = '''
    import os

    from flask import Flask, jsonify
    from redis import Redis
    from redis.exceptions import RedisError


    def create_app():
        app = Flask(__name__)
        app.config["SECRET_KEY"] = os.environ["SECRET_KEY"]
        store = Redis.from_url(os.environ.get("REDIS_URL", "redis://localhost:6379/0"),
                               socket_connect_timeout=1)

        @app.route("/")
        def index():
            return str(store.incr("hits"))

        @app.route("/health")
        def health():
            try:
                store.ping()
            except RedisError:
                return jsonify(status="down"), 503
            return jsonify(status="ok")

        return app
'''


def test_redis_service_secret_and_health_that_needs_redis(
        project: Callable[[Files], Path], capsys: pytest.CaptureFixture[str]) -> None:
    """redis in the lock → a Redis service on the local image, REDIS_URL pointing at it; a
    SECRET_KEY the code needs from the environment → required in compose, @random for the
    gate; /health answering 503 without Redis → liveness in the image, 200 wanted in the stack."""
    root = project({"counter/__init__.py": REDIS_FACTORY,
                    "requirements.lock": lock("flask", "gunicorn", "redis"),
                    "requirements-bootstrap.lock": lock("pip")})
    out = run_init(root, capsys)
    assert "service: redis (requirements.lock (hashed) names redis) → compose service `redis` " \
           "on imagegate/redis:7-bookworm" in out
    compose = yaml.safe_load((root / "compose.yaml").read_text())
    web, redis = compose["services"]["web"], compose["services"]["redis"]
    assert redis["image"] == "${REDIS_IMAGE:-imagegate/redis:7-bookworm}"
    assert web["environment"] == {"SECRET_KEY": "${SECRET_KEY:?SECRET_KEY must be set}",
                                  "REDIS_URL": "redis://redis:6379/0"}
    assert web["depends_on"] == {"redis": {"condition": "service_healthy"}}
    assert "/health'" in web["healthcheck"]["test"][-1]
    table = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["imagegate"]
    assert table["bases"] == ["python", "redis"] and "health_path" not in table
    assert table["http_checks"] == [{"path": "/health", "status": 200}]
    assert table["run_env"] == {"SECRET_KEY": "@random"}
    healthcheck = next(i for i in parse((root / "Dockerfile").read_text()).instructions
                       if i.keyword == "HEALTHCHECK")
    assert "c.request('GET', '/health')" in healthcheck.rest


def test_a_dependency_the_code_never_uses_justifies_no_service(
        project: Callable[[Files], Path], capsys: pytest.CaptureFixture[str]) -> None:
    root = project({"app.py": SEED_APP, "requirements.lock": lock("flask", "gunicorn", "redis"),
                    "requirements-bootstrap.lock": lock("pip")})
    out = run_init(root, capsys)
    assert "services: none" in out and "never mentions Redis: no Redis service" in out
    assert set(yaml.safe_load((root / "compose.yaml").read_text())["services"]) == {"web"}


MIGRATING = '''
    import os

    import click
    from flask import Flask


    def create_app():
        app = Flask(__name__)
        app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get("DATABASE_URL") or "sqlite://"
        app.config["SECRET_KEY"] = os.environ.get("SECRET_KEY") or "%s"

        @app.cli.group("db")
        def db():
            """Flask-Migrate's group, as the app's CLI shows it."""

        @db.command("upgrade")
        def upgrade():
            click.echo("upgraded")

        @app.route("/healthz")
        def healthz():
            return "ok"

        return app
'''
#: The literal default of MIGRATING's SECRET_KEY: it must never be printed.
LITERAL = "you-will-never-guess-0f3a"


@pytest.mark.parametrize(("driver", "image", "url", "password", "healthcheck"), [
    ("psycopg2-binary", "postgres:16", "postgresql+psycopg2://postgres:${POSTGRES_PASSWORD:?"
     "POSTGRES_PASSWORD must be set}@db:5432/app", "POSTGRES_PASSWORD",
     ["CMD", "pg_isready", "-U", "postgres", "-d", "app"]),
    ("pymysql", "mariadb:11", "mysql+pymysql://root:${MARIADB_ROOT_PASSWORD:?"
     "MARIADB_ROOT_PASSWORD must be set}@db:3306/app", "MARIADB_ROOT_PASSWORD",
     ["CMD", "healthcheck.sh", "--connect", "--innodb_initialized"]),
])
def test_a_database_driver_gets_a_db_service_and_migrations_a_migrate_service(
        project: Callable[[Files], Path], capsys: pytest.CaptureFixture[str], driver: str,
        image: str, url: str, password: str, healthcheck: list[str]) -> None:
    """A driver in the lock and SQLAlchemy reading DATABASE_URL: `db` on the stock image as users
    write it (healthcheck, named volume, password required from the environment, no pull_policy:
    the gate's pull policy applies), DATABASE_URL on web, web waits for it healthy; Flask-Migrate
    (`db upgrade`, a migrations folder) → a one-shot `migrate` running the upgrade with web's
    image and environment once db is healthy; web waits for it to complete. The gate's run_env
    gives the password "@random"."""
    root = project({"blog/__init__.py": MIGRATING % LITERAL, "migrations/env.py": "# alembic\n",
                    "requirements.lock": lock("flask", "gunicorn", "flask-sqlalchemy",
                                              "flask-migrate", driver),
                    "requirements-bootstrap.lock": lock("pip")})
    out = run_init(root, capsys)
    assert f"service: {image.split(':')[0]} (requirements.lock (hashed) names {driver}) → " \
           f"compose service `db` on {image}" in out
    assert "migrate: `flask --app blog db upgrade` in a one-shot compose service `migrate`" in out
    services = yaml.safe_load((root / "compose.yaml").read_text())["services"]
    web, db, migrate = services["web"], services["db"], services["migrate"]
    assert set(services) == {"web", "db", "migrate"}
    assert db["image"] == f"${{DB_IMAGE:-{image}}}" and "pull_policy" not in db
    assert db["healthcheck"]["test"] == healthcheck
    assert db["environment"][password] == f"${{{password}:?{password} must be set}}"
    assert db["volumes"][0].startswith("db-data:")
    assert web["environment"]["DATABASE_URL"] == url
    assert web["depends_on"] == {"db": {"condition": "service_healthy"},
                                 "migrate": {"condition": "service_completed_successfully"}}
    assert migrate["command"] == ["flask", "--app", "blog", "db", "upgrade"]
    assert migrate["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert migrate["environment"] == web["environment"] and migrate["image"] == web["image"]
    assert "db-data" in yaml.safe_load((root / "compose.yaml").read_text())["volumes"]
    table = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["imagegate"]
    assert table["run_env"] == {"SECRET_KEY": "@random", password: "@random"}
    assert "COPY migrations/ /srv/app/migrations/" in (root / "Dockerfile").read_text()


def test_a_secret_with_a_literal_default_is_named_by_line_never_by_value(
        project: Callable[[Files], Path], capsys: pytest.CaptureFixture[str]) -> None:
    """`os.environ.get('SECRET_KEY') or '…'`: init names the file and line and makes the variable
    required (compose, run_env); the default's value appears in nothing it prints or writes."""
    root = project({"blog/__init__.py": MIGRATING % LITERAL, **LOCKS})
    code = main("--project-dir", str(root))
    out, err = capsys.readouterr()
    assert code == 0, out + err
    line = next(n for n, text in enumerate((root / "blog/__init__.py").read_text().splitlines(), 1)
                if LITERAL in text)
    assert f"secret with a literal default: SECRET_KEY at blog/__init__.py:{line} (the value " \
           "is not shown) → required by compose (${SECRET_KEY:?…})" in out
    written = "".join((root / n).read_text() for n in ("Dockerfile", "compose.yaml",
                                                       "pyproject.toml"))
    assert LITERAL not in out + err + written
    web = yaml.safe_load((root / "compose.yaml").read_text())["services"]["web"]
    assert web["environment"]["SECRET_KEY"] == "${SECRET_KEY:?SECRET_KEY must be set}"


@pytest.mark.parametrize(("code", "found"), [
    ("K = os.environ.get('SECRET_KEY') or 'x'", ["SECRET_KEY"]),
    ('K = os.getenv("API_TOKEN", "x")', ["API_TOKEN"]),
    ("K = environ.get('DB_PASSWORD', default=b'x')", ["DB_PASSWORD"]),
    ("K = os.environ.get('SECRET_KEY')", []),  # no default: nothing to hide
    ("K = os.environ.get('GREETING') or 'hello'", []),  # not a secret
    ("K = os.environ.get('SECRET_KEY') or os.urandom(16)", []),  # not a literal
])
def test_literal_defaults(tmp_path: Path, code: str, found: list[str]) -> None:
    """Only secrets (by name) that fall back to a string literal are reported, with their line."""
    (tmp_path / "config.py").write_text(f"import os\n\n{code}\n")
    assert init.literal_defaults(tmp_path, [tmp_path / "config.py"]) == [
        ("config.py", 3, name) for name in found]


def test_translations_are_compiled_in_the_builder_and_built_wheels_installed_first(
        project: Callable[[Files], Path], capsys: pytest.CaptureFixture[str]) -> None:
    """Gettext catalogs in the app's package and Babel in the lock: the Dockerfile's builder
    stage runs `pybabel compile` on them (the .mo files reach the final stage with the code);
    and it installs the wheelhouse's built.lock (wheels built from sdists, their own hashes)
    before the app's lock."""
    root = project({"blog/__init__.py": FACTORY,
                    "blog/translations/es/LC_MESSAGES/messages.po": 'msgid ""\nmsgstr ""\n',
                    "requirements.lock": lock("flask", "gunicorn", "flask-babel", "babel"),
                    "requirements-bootstrap.lock": lock("pip")})
    out = run_init(root, capsys)
    assert "translations: blog/translations (messages) → `pybabel compile` in the Dockerfile's " \
           "builder stage" in out
    dockerfile = (root / "Dockerfile").read_text()
    builder, final = dockerfile.split("\nFROM ${PYTHON_IMAGE}\n")
    assert "/opt/venv/bin/pybabel compile -d /srv/app/blog/translations -D messages" in builder
    assert "COPY --from=builder /srv/app /srv/app" in final
    built = builder.index("--no-deps --no-cache-dir --disable-pip-version-check -r "
                          "/wheels/built.lock")
    assert built < builder.index("-r requirements.lock")
    assert "pybabel" not in (root / "blog" / "__init__.py").read_text()


def test_instance_folder_and_health_route(project: Callable[[Files], Path],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A factory writing its instance folder: the folder is a volume outside the read-only code
    (a symlink from where Flask looks); the first route answering 200 becomes the health path;
    a SECRET_KEY set in code is called out."""
    root = project({"blog/__init__.py": FACTORY, **LOCKS})
    out = run_init(root, capsys)
    assert "instance folder: blog writes instance → /var/lib/app/instance" in out
    assert "health: GET /hello answers 200" in out
    assert "note: SECRET_KEY is set in the code" in out
    dockerfile = (root / "Dockerfile").read_text()
    assert "ln -s /var/lib/app/instance /srv/app/instance" in dockerfile
    assert "chown 10001:10001 /var/lib/app/instance" in dockerfile
    assert 'CMD ["gunicorn", "--config", "/srv/app/gunicorn.conf.py", "blog:create_app()"]' \
        in dockerfile
    web = yaml.safe_load((root / "compose.yaml").read_text())["services"]["web"]
    assert web["volumes"] == ["instance:/var/lib/app/instance"] and web["read_only"] is True
    assert tomllib.loads((root / "pyproject.toml").read_text())["tool"]["imagegate"][
        "health_path"] == "/hello"


def test_no_route_answers_so_says_which_to_add(project: Callable[[Files], Path],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    root = project({"app.py": "from flask import Flask\napp = Flask(__name__)\n\n"
                              "@app.route('/')\ndef index():\n    raise RuntimeError('db')\n",
                    **LOCKS})
    out = run_init(root, capsys)
    assert "no route answers 200 on its own (/ 500); add GET /healthz" in out
    assert "c.request('GET', '/')" in (root / "Dockerfile").read_text()


# -- what is written ------------------------------------------------------------------------------


def test_hardened_files(project: Callable[[Files], Path], capsys: pytest.CaptureFixture[str]) -> None:
    """The Dockerfile has what `hardened` asks of it; the [tool.imagegate] table loads; compose
    hardens the web service and publishes on 127.0.0.1 only; pyproject keeps what it had."""
    root = project({"app.py": SEED_APP, **LOCKS,
                    "pyproject.toml": '[project]\nname = "seed"\nversion = "1"\n'
                                      'urls = {Source = "https://example.com/seed"}\n'})
    run_init(root, capsys)
    df = parse((root / "Dockerfile").read_text())
    froms = [i.rest for i in df.instructions if i.keyword == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE}"]
    assert "ARG PYTHON_IMAGE=imagegate/python:3.11-bookworm" in (root / "Dockerfile").read_text()
    last = {i.keyword: i for i in df.instructions}
    assert last["USER"].rest == "10001:10001"
    assert last["CMD"].exec_form and last["HEALTHCHECK"].rest.split("CMD", 1)[1].strip()[0] == "["
    assert 'org.opencontainers.image.source="${SOURCE}"' in last["LABEL"].rest
    assert "ARG SOURCE=https://example.com/seed" in (root / "Dockerfile").read_text()
    text = (root / "pyproject.toml").read_text()
    assert text.startswith('[project]\nname = "seed"\n')
    loaded = settings_mod.load(root, environ={})
    assert (loaded.profile, loaded.hermetic, loaded.health_path) == ("hardened", True, "/healthz")
    assert loaded.bases == ("python",) and loaded.locks == ("requirements.lock",
                                                            "requirements-bootstrap.lock")
    web = yaml.safe_load((root / "compose.yaml").read_text())["services"]["web"]
    assert web["image"] == "${APP_IMAGE:-imagegate/seed:local}" and "build" not in web
    assert web["ports"] == ["127.0.0.1:${WEB_PORT:-}:8000"]
    assert web["cap_drop"] == ["ALL"] and web["security_opt"] == ["no-new-privileges:true"]
    assert web["pull_policy"] == "never"
    workflow = yaml.safe_load((root / ".github/workflows/imagegate.yml").read_text())
    run = next(s["run"] for s in workflow["jobs"]["gate"]["steps"] if "gate --quiet" in
               s.get("run", ""))
    assert '"$(command -v imagegate)" gate' in run and "SOURCE=${GITHUB_SERVER_URL}" in run


def test_force_overwrites_and_replaces_the_table(project: Callable[[Files], Path],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """--force rewrites existing files (the compose file under its existing name) and replaces
    [tool.imagegate] with a fresh table, keeping the rest of pyproject.toml."""
    root = project({"app.py": SEED_APP, **LOCKS, "Dockerfile": "FROM python:3.11-slim\n",
                    "docker-compose.yml": "services:\n  web:\n    build: .\n",
                    "pyproject.toml": '[project]\nname = "seed"\nversion = "1"\n\n'
                                      '[tool.imagegate]\nprofile = "baseline"\n\n'
                                      '[tool.imagegate.run_env]\nX = "1"\n\n'
                                      '[tool.other]\nkeep = true\n'})
    run_init(root, capsys, "--force")
    assert "HEALTHCHECK" in (root / "Dockerfile").read_text()
    assert not (root / "compose.yaml").exists()
    assert "image: ${APP_IMAGE:-" in (root / "docker-compose.yml").read_text()
    data = tomllib.loads((root / "pyproject.toml").read_text())
    assert data["tool"]["imagegate"]["profile"] == "hardened"
    assert "run_env" not in data["tool"]["imagegate"] and data["tool"]["other"] == {"keep": True}


def test_dry_run_prints_a_diff_and_writes_nothing(project: Callable[[Files], Path],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    root = project({"app.py": SEED_APP, **LOCKS, "pyproject.toml": '[project]\nname = "s"\n'})
    before = snapshot(root)
    out = run_init(root, capsys, "--dry-run")
    assert snapshot(root) == before
    assert "--- /dev/null\n+++ b/Dockerfile\n@@ " in out
    assert "--- a/pyproject.toml\n+++ b/pyproject.toml\n" in out and "+[tool.imagegate]" in out
    assert "+!app.py" in out and "+    image: ${APP_IMAGE:-" in out
    assert "requirements.lock" not in re.findall(r"\+\+\+ b/(\S+)", out)
    assert out.strip().splitlines()[-1].startswith("dry run, nothing written")


# -- bad input: one line, exit 2, the tree unchanged ----------------------------------------------


def test_no_flask_app(project: Callable[[Files], Path], capsys: pytest.CaptureFixture[str]) -> None:
    root = project({"main.py": "print('hello')\n", "tool.py": "import flask\nX = 1\n", **LOCKS})
    line = refused(capsys, root)
    assert line.startswith("imagegate init: no Flask app found in ") and "tool.py" in line


def test_app_that_fails_to_import(project: Callable[[Files], Path],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    root = project({"app.py": "from flask import Flask\nimport no_such_module_here\n"
                              "app = Flask(__name__)\n", **LOCKS})
    line = refused(capsys, root)
    assert "`flask --app app.py` fails" in line and "no_such_module_here" in line


def test_two_candidates(project: Callable[[Files], Path], capsys: pytest.CaptureFixture[str]) -> None:
    root = project({"blog/__init__.py": FACTORY, "shop/__init__.py": FACTORY, **LOCKS})
    line = refused(capsys, root)
    assert "two Flask apps found, blog:create_app() and shop:create_app()" in line
    assert ".flaskenv" in line


def test_two_apps_in_one_module(project: Callable[[Files], Path],
                                capsys: pytest.CaptureFixture[str]) -> None:
    root = project({"portal.py": "from flask import Flask\na = Flask('a')\nb = Flask('b')\n",
                    **LOCKS})
    assert "Detected multiple Flask applications in module 'portal'" in refused(capsys, root)


def test_app_run_at_import(project: Callable[[Files], Path],
                           capsys: pytest.CaptureFixture[str]) -> None:
    """`app.run()` outside `if __name__ == "__main__"` would hang gunicorn: refused, not hung."""
    root = project({"app.py": textwrap.dedent(SEED_APP) + "\napp.run(debug=True)\n", **LOCKS})
    assert "calls app.run() when it is imported" in refused(capsys, root)


def test_unparsable_pyproject(project: Callable[[Files], Path],
                              capsys: pytest.CaptureFixture[str]) -> None:
    root = project({"app.py": SEED_APP, **LOCKS, "pyproject.toml": "[project\nname = 1\n"})
    line = refused(capsys, root)
    assert "pyproject.toml: invalid TOML" in line


@pytest.mark.parametrize("existing", [
    {"Dockerfile": "FROM python:3.11-slim\n"},
    {"compose.yaml": "services: {}\n", ".dockerignore": "*\n"},
    {"pyproject.toml": '[tool.imagegate]\nprofile = "baseline"\n'},
    {"gunicorn.conf.py": "bind = '0.0.0.0:80'\n"},
])
def test_existing_files(project: Callable[[Files], Path], capsys: pytest.CaptureFixture[str],
                        existing: Files) -> None:
    """Each existing file is named in the one line; nothing is written."""
    root = project({"app.py": SEED_APP, **LOCKS, **existing})
    line = refused(capsys, root)
    for name in existing:
        assert name in line
    assert "--force" in line


def test_no_dependencies(project: Callable[[Files], Path], capsys: pytest.CaptureFixture[str]) -> None:
    root = project({"app.py": SEED_APP})
    assert "no dependencies found" in refused(capsys, root)


# -- the generated files pass the tools that judge them (external programs) ----------------------


@pytest.mark.slow
def test_generated_files_pass_lint_compose_and_workflow_schema(
        project: Callable[[Files], Path], capsys: pytest.CaptureFixture[str]) -> None:
    """hadolint + imagegate's own Dockerfile checks at hardened, `docker compose config` and the
    GitHub workflow schema, on the output for an app with Redis and an instance folder."""
    import subprocess
    import sys

    from imagegate.gate import lint_only
    from imagegate.model.compose import Model

    root = project({"counter/__init__.py": REDIS_FACTORY.replace(
                        "app = Flask(__name__)", "app = Flask(__name__, instance_relative_config"
                                                 "=True)"),
                    "requirements.lock": lock("flask", "gunicorn", "redis"),
                    "requirements-bootstrap.lock": lock("pip")})
    run_init(root, capsys)
    loaded = settings_mod.load(root, environ={})
    assert lint_only(loaded) == []
    model = Model.load([root / "compose.yaml"], project_dir=root,
                       env={"SECRET_KEY": "x" * 32, "APP_IMAGE": "imagegate/x:local"})
    assert set(model.services) == {"web", "redis"}
    proc = subprocess.run([str(Path(sys.executable).parent / "check-jsonschema"),
                           "--builtin-schema", "vendor.github-workflows",
                           str(root / ".github/workflows/imagegate.yml")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_fill_blocks_and_unknown_placeholders() -> None:
    """A placeholder alone on its line takes an indented block, or goes when empty."""
    text = "a:\n  {{block}}\n  {{empty}}\nb: {{x}}\n"
    assert init.fill(text, {"block": "k: 1\nj: 2", "empty": "", "x": "y"}) == \
        "a:\n  k: 1\n  j: 2\nb: y\n"
    with pytest.raises(KeyError):
        init.fill("{{nope}}", {})


def test_a_schema_command_becomes_a_one_shot_service_web_waits_for(
        project: Callable[[Files], Path], capsys: pytest.CaptureFixture[str]) -> None:
    """An `init-db` command (it drops and recreates tables) with an instance volume: a one-shot
    `setup` service runs it once per volume, with web's image, secrets and volume, and web waits
    for it (service_completed_successfully); the stack comes up with its schema."""
    factory = FACTORY.replace('''        return app''', '''        import click

        @app.cli.command("init-db")
        def init_db():
            click.echo("made the schema")

        return app''')
    root = project({"blog/__init__.py": factory, **LOCKS})
    out = run_init(root, capsys)
    assert ("setup: `flask --app blog init-db` in a one-shot compose service `setup` that web "
            "waits for (service_completed_successfully), once per instance volume (it is not "
            "idempotent)") in out
    assert "run it once in the stack" not in out  # wired, so no manual step is left
    services = yaml.safe_load((root / "compose.yaml").read_text())["services"]
    setup, web = services["setup"], services["web"]
    assert web["depends_on"] == {"setup": {"condition": "service_completed_successfully"}}
    assert setup["command"][:2] == ["python3", "-c"] and \
        setup["command"][3:] == ["/var/lib/app/instance", "flask", "--app", "blog", "init-db"]
    assert (setup["image"], setup["volumes"], setup["restart"], setup["read_only"]) == (
        web["image"], web["volumes"], "no", True)
    ran = subprocess.run([sys.executable, "-c", setup["command"][2], str(root), sys.executable,
                          "-c", "open('ran', 'a').write('x')"], cwd=root, check=True)
    again = subprocess.run([sys.executable, "-c", setup["command"][2], str(root), sys.executable,
                            "-c", "open('ran', 'a').write('x')"], cwd=root, check=True)
    assert ran.returncode == again.returncode == 0
    assert (root / "ran").read_text() == "x", "the second start must not run it again"


def test_ci_gitlab_writes_gitlab_ci_instead_of_the_workflow(
        project: Callable[[Files], Path], capsys: pytest.CaptureFixture[str]) -> None:
    """`--ci gitlab`: .gitlab-ci.yml (the gate beside docker:dind), and no GitHub workflow."""
    root = project({"app.py": SEED_APP, **LOCKS})
    out = run_init(root, capsys, "--ci", "gitlab")
    assert ".gitlab-ci.yml" in out and ".github/workflows/imagegate.yml" not in out
    assert not (root / ".github").exists()
    job = yaml.safe_load((root / ".gitlab-ci.yml").read_text())["imagegate"]
    assert job["services"][0]["name"] == "docker:27-dind"
    assert 'imagegate==' in " ".join(job["before_script"])
