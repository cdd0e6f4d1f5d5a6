"""The Flask family on facts (no engine): each check fails on its defect with its message, passes
on the fix; and the in-container introspection run for real against a live server process."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from imagegate.checks import flask as fc
from imagegate.run.probe import Answer

WHERE = "compose.yaml:service web"
KEY = "k" * 20 + "-not-a-default-" + secrets.token_hex(8)


# -- IG-FLASK-DEBUGGER ----------------------------------------------------------------------------


@pytest.mark.shows_failing("IG-FLASK-DEBUGGER")
def test_IG_FLASK_DEBUGGER_fails_on_the_debuggers_script() -> None:
    """debugger.js coming back proves the debugger; gunicorn's 404 and an app page (which
    ignores the query) pass; no answer is a skip of that way."""
    script = Answer(200, "http://web:5000" + fc.DEBUGGER_PATH, {}, "docReady(() => {\n  if "
                    "(!EVALEX_TRUSTED) {")
    found = fc.debugger_check([("from inside the network", script),
                               ("through 127.0.0.1:5001", Answer(404, "u", {}, "Not Found")),
                               ("through nginx", Answer(200, "u", {}, "<html>Hello</html>")),
                               ("through x", OSError("refused"))], WHERE)
    assert [(f.ok, bool(f.skipped)) for f in found] == [(False, False), (True, False),
                                                         (True, False), (True, True)]
    assert found[0].message.startswith("the Werkzeug debugger answers from inside the network "
                                       f"(GET {fc.DEBUGGER_PATH} gave its debugger.js)")


# -- IG-FLASK-DEV-SERVER --------------------------------------------------------------------------


@pytest.mark.parametrize(("argv", "header", "says"), [
    (["flask", "run", "--host", "0.0.0.0", "--debug"], "", "development server (flask run: "),
    (["/usr/local/bin/python", "-m", "flask", "--app", "x", "run"], "",
     "development server (flask run: "),
    (["python", "manage.py", "run", "-h", "0.0.0.0"], "", "a FlaskGroup run command"),
    (["python3", "app.py"], "Werkzeug/3.1.3 Python/3.11.2", "answers as Werkzeug/3.1.3"),
])
@pytest.mark.shows_failing("IG-FLASK-DEV-SERVER")
def test_IG_FLASK_DEV_SERVER_fails_on_werkzeug(argv: list[str], header: str, says: str) -> None:
    """The command line proves it; a ``python app.py`` needs the Server header to tell."""
    found = fc.dev_server_check([["/bin/sh", "/entrypoint.sh"], argv], header, WHERE)
    assert not found.ok and says in found.message, found.message


@pytest.mark.parametrize(("argv", "header"), [
    (["/venv/bin/gunicorn", "--bind", "0.0.0.0:5000", "manage:app"], ""),
    (["python3", "app.py"], ""),  # waitress.serve() inside, or anything: no proof
    (["uwsgi", "--http", ":8000"], "Werkzeug/3.1"),  # a header alone proves nothing
])
def test_IG_FLASK_DEV_SERVER_passes_a_wsgi_server(argv: list[str], header: str) -> None:
    """No development server on the command line, and no Werkzeug answer from a bare script."""
    assert fc.dev_server_check([argv], header).ok


# -- IG-FLASK-DEBUG-ENV ---------------------------------------------------------------------------


@pytest.mark.shows_failing("IG-FLASK-DEBUG-ENV")
def test_IG_FLASK_DEBUG_ENV_names_each_source() -> None:
    """FLASK_DEBUG from the image's ENV, FLASK_ENV from compose, the app's TESTING and a
    --debug server: one finding each, naming where it came from."""
    app = fc.AppFacts(True, testing=True, debug_flag=True)
    found = fc.debug_env_check({"FLASK_DEBUG": "1", "FLASK_ENV": "development"},
                               {"FLASK_DEBUG": "1"}, app, service="web", where=WHERE)
    assert [f.message for f in found] == [
        "FLASK_DEBUG=1 in the image's ENV turns Flask's debug mode on (expected it unset or 0)",
        "FLASK_ENV=development in compose service web's environment/env_file turns Flask's "
        "debug mode on (expected it unset or 0)",
        "the running app's config has TESTING = True (expected False in production)",
        "the server runs with --debug: the running app's debug is on (expected no --debug)"]
    assert not any(f.ok for f in found)


def test_IG_FLASK_DEBUG_ENV_passes_when_off() -> None:
    """FLASK_DEBUG=0 / false, FLASK_ENV=production and an app with debug off pass."""
    for value in ("0", "false", "False", ""):
        found = fc.debug_env_check({"FLASK_DEBUG": value, "FLASK_ENV": "production"}, {},
                                   fc.AppFacts(True))
        assert [f.ok for f in found] == [True], found


# -- IG-FLASK-SECRET-KEY --------------------------------------------------------------------------


@pytest.mark.parametrize(("secret", "says"), [
    ("known", "SECRET_KEY is a well-known default from docs and tutorials"),
    ("short", "SECRET_KEY is shorter than 16 bytes"),
    ("empty", "SECRET_KEY is set but empty"),
])
@pytest.mark.shows_failing("IG-FLASK-SECRET-KEY")
def test_IG_FLASK_SECRET_KEY_fails_on_a_weak_key(secret: str, says: str) -> None:
    """Each verdict the container can give fails with its reason."""
    found = fc.secret_key_check(fc.AppFacts(True, spec="wsgi:app", secret=secret), WHERE)
    assert not found.ok and says in found.message and "wsgi:app" in found.message


def test_IG_FLASK_SECRET_KEY_inconclusive_is_a_skip() -> None:
    """An app that could not be loaded is inconclusive, said as a skip with the reason."""
    found = fc.secret_key_check(fc.AppFacts(False, "loading x failed: ImportError: y"))
    assert found.skipped == "inconclusive: loading x failed: ImportError: y"
    assert fc.secret_key_check(fc.AppFacts(True, secret="ok")).ok
    assert fc.secret_key_check(fc.AppFacts(True, secret="none")).ok  # an API with no sessions


# -- IG-FLASK-ROUTES ------------------------------------------------------------------------------


@pytest.mark.shows_failing("IG-FLASK-ROUTES")
def test_IG_FLASK_ROUTES_fails_naming_the_route_and_its_log_line() -> None:
    """A 500 names the route, the status and the server's line; an ignored route is not
    judged; a route that got no answer fails too."""
    app = fc.AppFacts(True, routes=("/", "/boom", "/admin/stats", "/gone"))
    answers = {"/": (200, ""), "/boom": (500, "RuntimeError: the database is not there"),
               "/admin/stats": (500, "x"), "/gone": (None, "ConnectionRefused")}
    found = fc.routes_check(app, answers, ("/admin/*",), WHERE)
    assert [f.message for f in found] == [
        "GET /boom answered 500: RuntimeError: the database is not there (expected below 500)",
        "GET /gone: no HTTP answer (ConnectionRefused)"]
    ok = fc.routes_check(app, answers | {"/boom": (404, ""), "/gone": (302, "")}, ("/admin/*",))
    assert [f.ok for f in ok] == [True] and ok[0].message.startswith("3 GET routes answered")
    skipped = fc.routes_check(fc.AppFacts(False, "no flask"), {})
    assert skipped[0].skipped.startswith("inconclusive")


# -- IG-LINT-FLASK-SOURCE -------------------------------------------------------------------------


#: (a line of source, whether IG-LINT-FLASK-SOURCE flags it)
SOURCE_LINES = [
    ('app.run(host="0.0.0.0", debug=True)', True),
    ("app.run(debug = True)", True),
    ("app.run(debug=False)", False),
    ('SECRET_KEY = "dev"', True),
    ("    SECRET_KEY = os.environ.get('SECRET_KEY') or 'you-will-never-guess'", True),
    ('SECRET_KEY = os.getenv("SECRET_KEY", "changeme")', True),
    ('app.config["SECRET_KEY"] = "hunter2hunter2"', True),
    ('app.secret_key = "abc"', True),
    ("    SECRET_KEY=\"dev\",", True),
    ('SECRET_KEY = os.environ["SECRET_KEY"]', False),
    ("SECRET_KEY = os.environ.get('SECRET_KEY')", False),
    ('# app.run(debug=True)  -- a comment', False),
]


@pytest.mark.parametrize(("line", "flagged"), [
    pytest.param(line, flagged, marks=[pytest.mark.shows_failing("IG-LINT-FLASK-SOURCE")] * flagged)
    for line, flagged in SOURCE_LINES])
def test_IG_LINT_FLASK_SOURCE_finds_the_static_twins(tmp_path: Path, line: str,
                                                     flagged: bool) -> None:
    """app.run(debug=True) and literal keys (also as a default behind the environment) are
    found with file and line; the key's value is never in the message."""
    (tmp_path / "app").mkdir()
    (tmp_path / "app/config.py").write_text(f"import os\n\n{line}\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests/test_x.py").write_text('SECRET_KEY = "test"\n')
    files = fc.source_files(tmp_path, lambda rel: False)
    assert files == [tmp_path / "app/config.py"]
    found = fc.source_check(files, tmp_path)
    failed = [f for f in found if not f.ok]
    assert bool(failed) is flagged, found
    for f in failed:
        assert f.where == "app/config.py:3"
        assert not any(secret in f.message for secret in ("dev", "hunter2", "never-guess",
                                                          "changeme", "abc"))


def test_source_files_honour_dockerignore(tmp_path: Path) -> None:
    """What .dockerignore leaves out of the context is not the image's code."""
    from imagegate.build.builders import dockerignored

    for rel in ("app/a.py", "scripts/dev.py", "local/b.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x = 1\n")
    (tmp_path / ".dockerignore").write_text("scripts\n**/local\n!app\n")
    assert fc.source_files(tmp_path, dockerignored(tmp_path)) == [tmp_path / "app/a.py"]


# -- the in-container introspection, run for real against a live server ----------------------------

APP = '''
import os
from flask import Flask

def create_app():
    app = Flask(__name__)
    app.config.from_mapping(SECRET_KEY={key!r})
    app.config.from_prefixed_env()

    @app.get("/")
    def index():
        return "hi"

    @app.get("/user/<int:n>")
    def user(n):
        return str(n)

    @app.post("/form")
    def form():
        return "ok"
    return app
'''


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Callable[..., fc.AppFacts]]:
    """``server(argv, key=..., env=...)``: start ``argv`` (gunicorn or flask run on 127.0.0.1)
    in a project holding the app, run the introspection on its pid, stop it; the facts."""
    started: list[subprocess.Popen[bytes]] = []
    bindir = Path(sys.executable).parent

    def run(argv: list[str], key: str | None = "dev", env: dict[str, str] | None = None
            ) -> fc.AppFacts:
        (tmp_path / "myapp.py").write_text(textwrap.dedent(APP.format(key=key)))
        proc = subprocess.Popen([str(bindir / argv[0]), *argv[1:]], cwd=tmp_path,
                                env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        started.append(proc)
        salt = secrets.token_bytes(16)
        out = subprocess.run([sys.executable, "-c", fc.INTROSPECT, "20", salt.hex(),
                              ",".join(fc.salted(fc.KNOWN_KEYS, salt)), str(proc.pid)],
                             capture_output=True, text=True, timeout=60, cwd="/")
        assert key is None or len(key) < 3 or key not in out.stdout + out.stderr
        found = fc.parse_facts(out.stdout)
        assert found is not None, out.stdout + out.stderr
        return found

    yield run
    for proc in started:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.shows_failing("IG-FLASK-SECRET-KEY")
def test_introspection_reads_the_app_as_gunicorn_loads_it(server: Any) -> None:
    """gunicorn's ``module:create_app()``: loaded from the server's cwd, the known key proven
    known (never printed), the GET routes without arguments listed."""
    found = server(["gunicorn", "-b", "127.0.0.1:0", "--workers", "1", "myapp:create_app()"])
    assert (found.loaded, found.spec, found.secret) == (True, "myapp:create_app()", "known")
    assert found.routes == ("/",)
    assert not fc.secret_key_check(found).ok


@pytest.mark.slow
def test_introspection_takes_the_servers_environment(server: Any) -> None:
    """The key from the server process's own environment (FLASK_SECRET_KEY through
    from_prefixed_env): ok; a short one from there: short."""
    argv = ["gunicorn", "-b", "127.0.0.1:0", "myapp:create_app()"]
    assert server(argv, env={"FLASK_SECRET_KEY": KEY}).secret == "ok"
    assert server(argv, env={"FLASK_SECRET_KEY": "tiny-key-9"}).secret == "short"


@pytest.mark.slow
def test_introspection_of_flask_run_debug(server: Any) -> None:
    """``flask --app myapp run --debug``: the --debug flag seen, the app found by --app."""
    found = server(["flask", "--app", "myapp", "run", "--port", "0", "--debug"], key=KEY)
    assert (found.loaded, found.spec, found.debug_flag, found.secret) == (True, "myapp", True,
                                                                          "ok")
    assert not fc.debug_env_check({}, {}, found)[0].ok


@pytest.mark.slow
def test_introspection_failure_is_a_reason(server: Any) -> None:
    """An app spec that does not load: the reason with the exception's last line, no crash."""
    found = server(["gunicorn", "-b", "127.0.0.1:0", "nosuchmodule:app"])
    assert not found.loaded and found.why.startswith("loading nosuchmodule:app failed: ")
    assert fc.secret_key_check(found).skipped.startswith("inconclusive: loading nosuchmodule")


def test_IG_FLASK_SECRET_KEY_proven_from_a_session_cookie() -> None:
    """A session cookie a route set, signed with a well-known key, proves the key from
    outside (as flask-unsign does); one signed with a strong key proves nothing."""
    from flask import Flask, session

    def cookie_of(key: str) -> str:
        app = Flask("cookies")
        app.secret_key = key

        @app.get("/visit")
        def visit() -> str:
            session["seen"] = True
            return "ok"

        return fc.session_cookie(dict(app.test_client().get("/visit").headers))

    weak = cookie_of("you-will-never-guess")
    assert weak and fc.cookie_key(weak)
    found = fc.session_cookies_check({"/visit": weak}, WHERE)
    assert [f.message for f in found] == [
        "the session cookie GET /visit sets is signed with a well-known key (verified as "
        "flask-unsign does): anyone can forge sessions; set SECRET_KEY from the environment"]
    strong = cookie_of(KEY)
    assert strong and not fc.cookie_key(strong)
    assert fc.session_cookies_check({"/visit": strong}) == []
    assert fc.session_cookie({"Content-Type": "text/html"}) == ""
