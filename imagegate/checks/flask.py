"""Flask's own foot-guns, proven on the running web service: the family that makes the gate
Flask's.

* IG-FLASK-DEBUGGER — the Werkzeug debugger's own resource request answers (remote code
  execution for anyone who reaches the port);
* IG-FLASK-DEV-SERVER — the server process is Werkzeug's development server;
* IG-FLASK-DEBUG-ENV — ``FLASK_DEBUG``/``FLASK_ENV=development`` in the environment, or the app's
  own ``DEBUG``/``TESTING`` on;
* IG-FLASK-SECRET-KEY — the running app's ``SECRET_KEY`` is empty, short or a well-known default;
* IG-FLASK-ROUTES — an argument-free GET route answers 500 in the stack;
* IG-LINT-FLASK-SOURCE — their static twins in the code the image ships (``app.run(debug=True)``,
  a literal ``SECRET_KEY``), advice, since only the running app proves them.

The app is read inside its own container, as its server loads it: :data:`INTROSPECT` is exec'd
with the server's interpreter, as the container's user, with the server process's own working
directory and environment, finds the app from the server's command line (gunicorn's
``module:app``, ``flask --app``, ``FLASK_APP``, ``python manage.py``) and loads it with Flask's
own ``ScriptInfo``/``locate_app``, bounded by an alarm. The key never leaves the container: it
is compared there with salted hashes of :data:`KNOWN_KEYS` and only the verdict comes back.
Each check here is one function declared with :func:`imagegate.checks.catalogue.check`; the pytest
tests in :mod:`imagegate.checks` hand it the facts.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagegate.checks.catalogue import check
from imagegate.model import servers
from imagegate.results.findings import Finding

#: Well-known secret keys: the defaults of Flask's docs, its tutorial and the most-copied
#: tutorials and books, and the placeholders people leave in. Compared as salted hashes.
KNOWN_KEYS: tuple[bytes, ...] = (
    b"dev", b"development", b"development key", b"secret", b"secret key", b"secret-key",
    b"secret_key", b"SECRET_KEY", b"secretkey", b"mysecret", b"mysecretkey", b"my-secret-key",
    b"my_secret_key", b"my secret key", b"supersecret", b"super-secret", b"super secret",
    b"super secret key", b"super-secret-key", b"changeme", b"change-me", b"change_me",
    b"changethis", b"change-this", b"your-secret-key", b"your_secret_key", b"your secret key",
    b"yoursecretkey", b"you-will-never-guess", b"hard to guess string", b"keyboard cat",
    b"default", b"default-secret-key", b"insecure", b"notsecret", b"not-so-secret", b"s3cr3t",
    b"test", b"testing", b"flask", b"flask-secret", b"flask-secret-key", b"password",
    b"123456", b"abc123", b"xxx", b"key", b"a", b"replace-me", b"replace_me", b"todo",
    b'_5#y2L"F4Q8z\n\xec]/', b"192b9bdd22ab9ed4d12e236c78afcb9a393ec15f71bbf5dc987d54727823bcbf",
)
#: Seconds loading the app in its container may take (it runs the project's code again).
LOAD_TIMEOUT = 20
#: The debugger's own resource: only Werkzeug's debugger middleware answers it with its script.
DEBUGGER_PATH = "/?__debugger__=yes&cmd=resource&f=debugger.js"
#: A line of debugger.js in every Werkzeug version since 0.x (its eval switch).
DEBUGGER_MARK = "EVALEX"
FALSE = ("", "0", "false", "no", "off", "n", "f")
MARK = "IMAGEGATE-FLASK "

#: Exec'd in the web container: argv timeout, salt (hex), salted SHA-256 hashes of the known
#: keys (comma-separated) [, the server's pid: else the first server process found]. Prints
#: one ``IMAGEGATE-FLASK {json}`` line; never the key.
INTROSPECT = r'''
import hashlib, json, os, re, signal, sys
signal.alarm(int(sys.argv[1]))
SALT = bytes.fromhex(sys.argv[2])
KNOWN = set(h for h in sys.argv[3].split(",") if h)
SERVERS = ("gunicorn", "uwsgi", "waitress-serve", "flask", "hypercorn", "uvicorn", "granian")
VALUED = set("-b --bind -w --workers -k --worker-class -c --config --chdir --pythonpath -t "
             "--timeout --threads --log-level --access-logfile --error-logfile -u --user -g "
             "--group -e --env -p --pid --max-requests --max-requests-jitter --keep-alive "
             "--graceful-timeout --worker-connections --log-config --forwarded-allow-ips -n "
             "--name --backlog --umask --worker-tmp-dir --access-logformat --certfile --keyfile "
             "-m --host -h --port --cert --key --extra-files --exclude-patterns --listen "
             "--threads --call --url-prefix --module --wsgi-file --http --http-socket --socket "
             "--processes --master-fifo --env-file -A --app".split())
out = {}


def say():
    sys.stdout.write("IMAGEGATE-FLASK " + json.dumps(out) + "\n")
    sys.stdout.flush()


def argv_of(pid):
    try:
        raw = open("/proc/%d/cmdline" % pid, "rb").read()
    except OSError:
        return []
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]


def words(argv):
    import shlex
    found = []
    for w in argv:
        if " " not in w.strip():
            found.append(w)
            continue
        try:
            found.extend(shlex.split(w))
        except ValueError:
            found.extend(w.split())
    return found


def kind_of(argv):
    for i, w in enumerate(argv):
        if w.rsplit("/", 1)[-1] in SERVERS:
            return w.rsplit("/", 1)[-1], i
    for i, w in enumerate(argv):
        n = w.rsplit("/", 1)[-1]
        if re.match(r"python[\d.]*$", n):
            rest = argv[i + 1:]
            if rest[:1] == ["-m"] and len(rest) > 1:
                return rest[1].split(".")[0], i + 2
            if rest and rest[0] != "-c" and not rest[0].startswith("-"):
                return "python", i
            return "", -1
    return "", -1


me = {os.getpid(), os.getppid()}
server = None
given = [int(sys.argv[4])] if len(sys.argv) > 4 else None
for pid in given or sorted(int(p) for p in os.listdir("/proc") if p.isdigit()):
    if pid in me:
        continue
    argv = words(argv_of(pid))
    kind, at = kind_of(argv)
    if kind:
        server = (pid, argv, kind, at)
        break
if server is None:
    out["why"] = "no web server process (gunicorn, flask, uwsgi, waitress, python …) found"
    say()
    sys.exit(0)
pid, argv, kind, at = server
out["server"] = argv
try:
    cwd = os.readlink("/proc/%d/cwd" % pid)
except OSError:
    cwd = os.getcwd()
try:
    raw = open("/proc/%d/environ" % pid, "rb").read().decode("utf-8", "replace")
    env = dict(kv.split("=", 1) for kv in raw.split("\0") if "=" in kv)
except OSError:
    env = dict(os.environ)
out["env"] = {k: env[k] for k in ("FLASK_DEBUG", "FLASK_ENV") if k in env}
spec, paths, positional, i = None, [], [], at + 1
while i < len(argv):
    w = argv[i]
    flag, eq, value = w.partition("=")
    if flag in VALUED:
        if not eq:
            i += 1
            value = argv[i] if i < len(argv) else ""
        if flag == "--chdir":
            cwd = os.path.join(cwd, value)
        elif flag == "--pythonpath":
            paths.extend(value.split(","))
        elif flag in ("--app", "-A", "--module", "--wsgi-file", "--call") or \
                (flag == "-w" and kind == "uwsgi"):
            spec = value
        elif flag in ("-c", "--config") and kind == "gunicorn" and spec is None:
            try:
                text = open(os.path.join(cwd, value)).read()
                found = re.search(r"^wsgi_app\s*=\s*['\"]([^'\"]+)['\"]", text, re.M)
                spec = found.group(1) if found else None
            except OSError:
                pass
    elif w == "--debug":
        out["debug_flag"] = True
    elif not w.startswith("-"):
        positional.append(w)
    i += 1
if kind in ("gunicorn", "waitress-serve", "hypercorn", "uvicorn", "granian") and positional:
    spec = positional[-1]
elif kind == "python" and positional:
    spec = positional[0]
spec = spec or env.get("FLASK_APP") or None
out["spec"] = spec or ""
os.chdir(cwd)
for p in [cwd, *paths][::-1]:
    sys.path.insert(0, p)
os.environ.clear()
os.environ.update(env)
try:
    from flask import Flask
    from flask.cli import ScriptInfo
except Exception as exc:
    out["why"] = "flask is not importable by %s (%s)" % (sys.executable, exc)
    say()
    sys.exit(0)


def unwrap(obj, depth=0):
    if isinstance(obj, Flask) or depth > 3:
        return obj
    for name in ("app", "application", "wsgi_app", "__self__"):
        inner = getattr(obj, name, None)
        if inner is not None and inner is not obj:
            found = unwrap(inner, depth + 1)
            if isinstance(found, Flask):
                return found
    return obj


try:
    app = ScriptInfo(app_import_path=spec, set_debug_flag=False).load_app()
except BaseException as exc:
    app = None
    first = exc
    if spec and ":" in spec and "(" not in spec:
        try:
            import importlib
            module, _, attr = spec.partition(":")
            app = unwrap(getattr(importlib.import_module(module), attr))
        except BaseException:
            app = None
    if not isinstance(app, Flask):
        lines = [ln for ln in str(first).splitlines() if ln.strip()]
        out["why"] = "loading %s failed: %s%s" % (spec or "the app (no app spec: FLASK_APP, "
                                                       "wsgi.py, app.py)", type(first).__name__,
                                                  ": " + lines[-1][:200] if lines else "")
        say()
        sys.exit(0)
out["loaded"] = True
out["debug"] = bool(app.debug)
out["testing"] = bool(app.testing)
key = app.secret_key
if key is None:
    out["secret"] = "none"
elif len(key) == 0:
    out["secret"] = "empty"
else:
    raw = key.encode("utf-8", "surrogateescape") if isinstance(key, str) else bytes(key)
    if hashlib.sha256(SALT + raw).hexdigest() in KNOWN:
        out["secret"] = "known"
    elif len(raw) < 16:
        out["secret"] = "short"
    else:
        out["secret"] = "ok"
routes = []
for rule in app.url_map.iter_rules():
    if "GET" not in (rule.methods or ()) or rule.arguments or rule.host or rule.subdomain:
        continue
    if rule.endpoint == "static" or rule.endpoint.endswith(".static"):
        continue
    routes.append(rule.rule)
out["routes"] = sorted(set(routes))
say()
'''


@dataclass(frozen=True)
class AppFacts:
    """The Flask app of a running web container, as :data:`INTROSPECT` found and loaded it."""

    loaded: bool
    #: Why the app could not be found or loaded (then the app-level checks are inconclusive).
    why: str = ""
    spec: str = ""
    server: tuple[str, ...] = ()
    debug: bool = False
    testing: bool = False
    #: ``flask run --debug`` on the server's command line (the running app's debug is on).
    debug_flag: bool = False
    #: none (never set) | empty | short | known | ok ("" when not loaded). Never the key.
    secret: str = ""
    routes: tuple[str, ...] = ()
    #: FLASK_DEBUG / FLASK_ENV of the server process, when set.
    env: Mapping[str, str] = field(default_factory=dict)


def salted(keys: Iterable[bytes], salt: bytes) -> list[str]:
    """SHA-256 of ``salt + key`` for each key (what the container compares against)."""
    return [hashlib.sha256(salt + key).hexdigest() for key in keys]


def parse_facts(output: str) -> AppFacts | None:
    """The :class:`AppFacts` in the introspection's output, None when it printed none."""
    line = next((ln for ln in reversed(output.splitlines()) if ln.startswith(MARK)), "")
    if not line:
        return None
    data = json.loads(line[len(MARK):])
    return AppFacts(bool(data.get("loaded")), str(data.get("why", "")), str(data.get("spec", "")),
                    tuple(data.get("server") or ()), bool(data.get("debug")),
                    bool(data.get("testing")), bool(data.get("debug_flag")),
                    str(data.get("secret", "")), tuple(data.get("routes") or ()),
                    dict(data.get("env") or {}))


#: Facts already read, by (container id, interpreter): the image and the stack checks ask the
#: same container when they share a session, and loading the app in it is its heaviest exec.
_READ: dict[tuple[str, str], AppFacts] = {}


def app_facts(container: Any, interpreter: str, *, timeout: int = LOAD_TIMEOUT) -> AppFacts:
    """Load the container's Flask app in the container (see the module doc): its facts, or an
    :class:`AppFacts` whose ``why`` says why it could not (never an exception). Read once per
    container and interpreter; a failure to read is asked again next time."""
    key = (str(container.id), interpreter)
    if key not in _READ:
        found = _load_app_facts(container, interpreter, timeout)
        if found.why:
            return found
        _READ[key] = found
    return _READ[key]


def _load_app_facts(container: Any, interpreter: str, timeout: int) -> AppFacts:
    """:func:`app_facts`, not remembered."""
    from imagegate.facts import runtime

    salt = secrets.token_bytes(16)
    result = runtime.run_python(container, interpreter, "-c", INTROSPECT, str(timeout), salt.hex(),
                                ",".join(salted(KNOWN_KEYS, salt)))
    if isinstance(result, runtime.Skip):
        return AppFacts(False, result.reason)
    code, output = result
    found = parse_facts(output)
    if found is not None:
        return found
    if code in (-14, 142):
        return AppFacts(False, f"loading the app took over {timeout}s (stopped)")
    last = next((ln for ln in reversed(output.splitlines()) if ln.strip()), "(no output)")
    return AppFacts(False, f"the app could not be read (exit {code}): {last[:200]}")


# -- the checks ---------------------------------------------------------------------------------


@check("IG-FLASK-DEBUGGER", title="the Werkzeug interactive debugger does not answer on the web "
       "service", stage="run", evidence="runtime", baseline="error", category="security")
def debugger_check(answers: Sequence[tuple[str, Any]], where: str = "") -> list[Finding]:
    """IG-FLASK-DEBUGGER on ``answers``: (how it was asked, the answer to
    :data:`DEBUGGER_PATH` or the exception that stopped it). The debugger's script coming
    back proves it; any other answer (gunicorn's 404, the app's own page) passes."""
    found = []
    for how, answer in answers:
        if isinstance(answer, BaseException):
            found.append(Finding("IG-FLASK-DEBUGGER", True, f"not asked {how}", where,
                                 skipped=f"no HTTP answer {how}: {answer}"))
            continue
        if answer.status_code == 200 and DEBUGGER_MARK in answer.text:
            found.append(Finding(
                "IG-FLASK-DEBUGGER", False, f"the Werkzeug debugger answers {how} (GET "
                f"{DEBUGGER_PATH} gave its debugger.js): anyone reaching the port can run code "
                "in the container; serve with gunicorn and drop --debug / FLASK_DEBUG "
                "(expected no debugger)", where))
        else:
            found.append(Finding("IG-FLASK-DEBUGGER", True, f"no debugger {how} (GET "
                                 f"{DEBUGGER_PATH}: {answer.status_code})", where))
    return found


def dev_server_argv(argv: Sequence[str]) -> str:
    """What in ``argv`` proves Werkzeug's development server ("" when nothing does)."""
    tokens = servers.words(argv)
    kind = servers.server(tokens)
    joined = " ".join(tokens)
    if kind == "flask run":
        return "flask run"
    if "werkzeug.serving" in joined or "run_simple" in joined:
        return "werkzeug.serving"
    if kind == "python" and "run" in tokens[2:]:
        return "a FlaskGroup run command"
    return ""


@check("IG-FLASK-DEV-SERVER", title="the web service is not served by Werkzeug's development "
       "server", stage="run", evidence="runtime", baseline="error", category="security")
def dev_server_check(commands: Sequence[Sequence[str]], server_header: str = "",
                     where: str = "") -> Finding:
    """IG-FLASK-DEV-SERVER from the container's process command lines; the ``Server:
    Werkzeug/…`` header (asked directly, not through a proxy) only corroborates a ``python
    app.py`` whose ``app.run()`` the command line cannot show."""
    for argv in commands:
        proof = dev_server_argv(argv)
        if proof:
            seen = f"; it answers as {server_header}" if server_header else ""
            return Finding("IG-FLASK-DEV-SERVER", False, f"the web service runs Werkzeug's "
                           f"development server ({proof}: {servers.shown(argv, 80)}){seen}; "
                           "it is not for production: serve with gunicorn (expected a WSGI "
                           "server)", where)
    python = next((argv for argv in commands if servers.server(argv) == "python"), None)
    if python is not None and server_header.startswith("Werkzeug/"):
        return Finding("IG-FLASK-DEV-SERVER", False, f"the web service ({servers.shown(python, 60)}"
                       f") answers as {server_header}: app.run() serves it with Werkzeug's "
                       "development server; serve with gunicorn (expected a WSGI server)", where)
    shown = next((servers.shown(a, 60) for a in commands if servers.server(a)), "")
    return Finding("IG-FLASK-DEV-SERVER", True,
                   f"served by {shown or 'no development server'}", where)


@check("IG-FLASK-DEBUG-ENV", title="no FLASK_DEBUG / FLASK_ENV=development in the environment, "
       "and the app's DEBUG and TESTING are off", stage="run", evidence="runtime",
       baseline="warning", category="security")
def debug_env_check(container_env: Mapping[str, str], image_env: Mapping[str, str],
                    app: AppFacts | None, *, service: str = "", where: str = "") -> list[Finding]:
    """IG-FLASK-DEBUG-ENV: each source that turns debugging on, named (the image's ENV, the
    service's environment/env_file, the running app's config or ``--debug``)."""
    found = []
    origin = (f"compose service {service}'s environment/env_file" if service
              else "the container's environment")
    for name, bad in (("FLASK_DEBUG", lambda v: v.strip().lower() not in FALSE),
                      ("FLASK_ENV", lambda v: v.strip().lower() == "development")):
        value = container_env.get(name)
        if value is None or not bad(value):
            continue
        source = "the image's ENV" if image_env.get(name) == value else origin
        found.append(Finding("IG-FLASK-DEBUG-ENV", False, f"{name}={value} in {source} turns "
                             "Flask's debug mode on (expected it unset or 0)", where))
    if app is not None and app.loaded:
        for name, on in (("DEBUG", app.debug), ("TESTING", app.testing)):
            if on:
                found.append(Finding("IG-FLASK-DEBUG-ENV", False, f"the running app's config has "
                                     f"{name} = True (expected False in production)", where))
    if app is not None and app.debug_flag:
        found.append(Finding("IG-FLASK-DEBUG-ENV", False, "the server runs with --debug: the "
                             "running app's debug is on (expected no --debug)", where))
    return found or [Finding("IG-FLASK-DEBUG-ENV", True, "debug and testing are off", where)]


@check("IG-FLASK-SECRET-KEY", title="the running app's SECRET_KEY is set, 16 bytes or more, and "
       "not a well-known default", stage="run", evidence="runtime", baseline="error",
       category="security")
def secret_key_check(app: AppFacts, where: str = "") -> Finding:
    """IG-FLASK-SECRET-KEY on the loaded app's verdict (the key itself never left the
    container); inconclusive (a skip) when the app could not be loaded."""
    advice = ("anyone can forge its session cookies; set it from the environment "
              "(app.config.from_prefixed_env(), FLASK_SECRET_KEY)")
    if not app.loaded:
        return Finding("IG-FLASK-SECRET-KEY", True, "inconclusive", where,
                       skipped=f"inconclusive: {app.why}")
    if app.secret == "empty":
        return Finding("IG-FLASK-SECRET-KEY", False, f"the running app ({app.spec or 'default'})'s "
                       "SECRET_KEY is set but empty (an unset variable?): sessions are refused "
                       "(expected a long random key from the environment)", where)
    if app.secret == "none":
        return Finding("IG-FLASK-SECRET-KEY", True, "no SECRET_KEY set: the app signs no "
                       "sessions (Flask refuses to use one without a key)", where)
    if app.secret == "known":
        return Finding("IG-FLASK-SECRET-KEY", False, f"the running app ({app.spec or 'default'})'s "
                       f"SECRET_KEY is a well-known default from docs and tutorials: {advice}",
                       where)
    if app.secret == "short":
        return Finding("IG-FLASK-SECRET-KEY", False, f"the running app ({app.spec or 'default'})'s "
                       f"SECRET_KEY is shorter than 16 bytes: {advice}", where)
    return Finding("IG-FLASK-SECRET-KEY", True, "SECRET_KEY is set, 16+ bytes, not a well-known "
                   "default (compared as salted hashes in the container)", where)


def cookie_key(cookie: str, keys: Iterable[bytes] = KNOWN_KEYS) -> bool:
    """True when a Flask session cookie's signature verifies with one of ``keys``: Flask's own
    signing (itsdangerous' timestamp signer, salt ``cookie-session``, HMAC-SHA1 key
    derivation), as flask-unsign proves a weak key. False without itsdangerous here."""
    try:
        from itsdangerous import BadSignature, TimestampSigner
    except ImportError:  # the harness runs without Flask installed: no proof this way
        return False
    for key in keys:
        signer = TimestampSigner(key, salt="cookie-session", key_derivation="hmac",
                                 digest_method=hashlib.sha1)
        try:
            signer.unsign(cookie)
        except BadSignature:
            continue
        return True
    return False


def session_cookies_check(cookies: Mapping[str, str], where: str = "") -> list[Finding]:
    """IG-FLASK-SECRET-KEY from outside: a ``session`` cookie some GET route set (route →
    cookie value) that verifies with a well-known key proves the key, without the app's code."""
    return [Finding("IG-FLASK-SECRET-KEY", False, f"the session cookie GET {rule} sets is signed "
                    "with a well-known key (verified as flask-unsign does): anyone can forge "
                    "sessions; set SECRET_KEY from the environment", where)
            for rule, cookie in cookies.items() if cookie_key(cookie)]


def session_cookie(headers: Mapping[str, str]) -> str:
    """The value of a ``session=`` cookie in a response's Set-Cookie ("" when none)."""
    raw = next((v for k, v in headers.items() if k.lower() == "set-cookie"), "")
    found = re.search(r"(?:^|[;,]\s*)session=([^;,\s]+)", raw)
    return found.group(1) if found else ""


def routes_to_ask(app: AppFacts, ignored: Sequence[str] = ()) -> list[str]:
    """The app's argument-free GET routes but those ``flask_routes_ignore`` leaves out."""
    return [r for r in app.routes if not any(fnmatch.fnmatchcase(r, p) for p in ignored)]


@check("IG-FLASK-ROUTES", title="every argument-free GET route answers below 500 in the stack",
       stage="stack", evidence="runtime", baseline="error", category="reliability")
def routes_check(app: AppFacts, answers: Mapping[str, tuple[int | None, str]],
                 ignored: Sequence[str] = (), where: str = "") -> list[Finding]:
    """IG-FLASK-ROUTES: ``answers`` maps each route asked to (status or None, the server's log
    line for it); a 5xx fails naming the route, status and line."""
    if not app.loaded:
        return [Finding("IG-FLASK-ROUTES", True, "inconclusive", where,
                        skipped=f"inconclusive: the app's routes could not be read: {app.why}")]
    found = []
    judged = routes_to_ask(app, ignored)
    for rule in judged:
        status, line = answers.get(rule, (None, "not asked"))
        if status is None:
            found.append(Finding("IG-FLASK-ROUTES", False, f"GET {rule}: no HTTP answer ({line})",
                                 where))
        elif status >= 500:
            found.append(Finding("IG-FLASK-ROUTES", False, f"GET {rule} answered {status}"
                                 + (f": {line}" if line else "") + " (expected below 500)", where))
    asked = [r for r in judged if r in answers]
    return found or [Finding("IG-FLASK-ROUTES", True, f"{len(asked)} GET routes answered below "
                             f"500: {', '.join(asked[:12])}" + (" …" if len(asked) > 12 else ""),
                             where)]


# -- the static twin ----------------------------------------------------------------------------

#: ``app.run(..., debug=True ...)`` (bandit B201's pattern).
RUN_DEBUG = re.compile(r"\.run\([^)]*\bdebug\s*=\s*True")
#: A literal secret key, or a literal default behind the environment (bandit B105's idea).
LITERAL_KEY = re.compile(
    r"""(?:\bSECRET_KEY["']?\]?|\bsecret_key)\s*[:=,]\s*"""
    r"""(?:os\.(?:environ\.get|getenv)\([^)]*\)\s+or\s+"""
    r"""|os\.(?:environ\.get|getenv)\(\s*["']\w+["']\s*,\s*)?["']([^"'\n]+)["']""")
SKIP_DIRS = {"tests", "test", ".venv", "venv", "env", "node_modules", "site-packages", "migrations",
             "__pycache__", ".git", ".tox", ".imagegate-out", "build", "dist"}


def source_files(context: Path, ignore: Callable[[str], bool]) -> list[Path]:
    """The ``*.py`` files the build context ships: not tests, virtualenvs or ignored paths."""
    found = []
    for path in sorted(context.rglob("*.py")):
        rel = path.relative_to(context)
        if any(part in SKIP_DIRS or part.startswith(".") for part in rel.parts[:-1]):
            continue
        if rel.name.startswith("test_") or rel.name.endswith("_test.py") or \
                rel.name == "conftest.py" or ignore(rel.as_posix()):
            continue
        found.append(path)
    return found


@check("IG-LINT-FLASK-SOURCE", title="the code the image ships has no app.run(debug=True) and no "
       "literal SECRET_KEY (advice: the running app is the proof)", stage="lint",
       evidence="dockerfile", baseline="warning", hardened="warning", category="security")
def source_check(files: Iterable[Path], root: Path) -> list[Finding]:
    """IG-LINT-FLASK-SOURCE: the static twins of IG-FLASK-DEBUGGER and IG-FLASK-SECRET-KEY, found
    in the source (file and line; never the value). Advice at every profile: only the running
    app proves them (a literal default that the environment overrides is no defect there)."""
    found = []
    for path in files:
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        for number, line in enumerate(lines, start=1):
            code = line.split("#", 1)[0]
            if RUN_DEBUG.search(code):
                found.append(Finding("IG-LINT-FLASK-SOURCE", False, "app.run(debug=True): the "
                                     "Werkzeug debugger if this line runs in the image (expected "
                                     "debug off; serve with gunicorn)", f"{rel}:{number}"))
            literal = LITERAL_KEY.search(code)
            if literal and not literal.group(1).startswith("$"):
                found.append(Finding("IG-LINT-FLASK-SOURCE", False, "a literal SECRET_KEY "
                                     "(value not shown) is in the code: it ships in the image "
                                     "and can sign sessions (expected it from the environment, "
                                     "with no default)", f"{rel}:{number}"))
    return found or [Finding("IG-LINT-FLASK-SOURCE", True,
                             "no app.run(debug=True), no literal SECRET_KEY")]
