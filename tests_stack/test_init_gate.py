"""`imagegate init` then `imagegate gate`, on three Flask projects nobody shaped for imagegate.

`init_samples/blog` is the Flask tutorial's flaskr (a factory, SQLite in the instance folder,
`[project].dependencies` without gunicorn); `init_samples/seed` is the seed's one-module `app.py`
with a module-level `app`; `init_samples/hitcount` is a factory counting hits in Redis;
`init_samples/microblog` is in the Flask Mega-Tutorial's shape (sdist-only pins, one of them a C
extension, Flask-Migrate, Babel catalogs, Postgres and Redis, a secret with a literal default). Each is
copied to tmp_path and made a git checkout with a remote (as a user's project is: the image's
revision and source labels come from it), then `imagegate init` and `imagegate gate` run as a user
runs them, with no edit in between. The gate's profile is `hardened` (written by init); the lock
is compiled by uv from PyPI (through the proxy); builds have no network.
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from stack_helpers import IMAGEGATE, findings, gate, result

from imagegate.engine import session_labels
from imagegate.proc import wait_until
from imagegate.run.container import running
from testsupport.samples import secret_key_from_environment

pytestmark = pytest.mark.slow

SAMPLES = Path(__file__).parent / "init_samples"


def git(project: Path, *args: str) -> None:
    """A git command in ``project`` (a throwaway identity: nothing is pushed)."""
    subprocess.run(["git", "-C", str(project), "-c", "user.name=sample", "-c",
                    "user.email=sample@example.com", *args], check=True, capture_output=True,
                   timeout=60)


@pytest.fixture
def checkout(tmp_path: Path) -> Callable[[str], Path]:
    """``checkout(name)``: a fresh copy of a sample as a git checkout with one commit."""
    def make(name: str) -> Path:
        project = tmp_path / name
        shutil.copytree(SAMPLES / name, project)
        git(project, "init", "-q", "-b", "main")
        git(project, "remote", "add", "origin", f"git@github.com:example/{name}.git")
        git(project, "add", "-A")
        git(project, "commit", "-q", "-m", "the app, before Docker")
        return project
    return make


def init(project: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """``imagegate init`` in ``project`` as a user runs it (cwd: the project); its seconds."""
    started = time.monotonic()
    proc = subprocess.run([IMAGEGATE, "init", *args], cwd=project, capture_output=True,
                          text=True, timeout=600, stdin=subprocess.DEVNULL)
    return proc, time.monotonic() - started


def init_then_gate(project: Path, *args: str,
                   advice: tuple[str, ...] = ()) -> tuple[str, dict[str, Any]]:
    """init, then the gate with no edit between; both must pass, with no failed finding but
    warnings of the ``advice`` ids. Returns init's output and the gate's result.json (with the
    gate's own output under ``"output"``)."""
    proc, took = init(project, *args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "next: run `imagegate gate`"
    print(f"init {project.name}: {took:.1f}s")
    started = time.monotonic()
    gated = gate(project)
    print(f"gate {project.name}: {time.monotonic() - started:.1f}s")
    out = project / ".imagegate-out"
    assert gated.returncode == 0, gated.stdout[-5000:] + gated.stderr[-2000:]
    data = result(out)
    assert data["profile"] == "hardened" and data["status"] == "passed"
    stages = {s["name"]: s["status"] for s in data["stages"]}
    assert stages == {"preflight": "passed", "lint": "passed", "bases": "passed",
                      "build": "passed", "image": "passed", "stack": "passed"}, stages
    failed = [f for f in findings(out, outcome="failed")
              if f["check_id"] not in advice or f["severity"] == "error"]
    assert not failed, failed
    passed = {f["check_id"] for f in findings(out, outcome="passed")}
    assert {"IG-USER-NUMERIC", "IG-HEALTHCHECK", "IG-LABELS", "IG-CMD-EXEC", "IG-APP-NOT-WRITABLE",
            "IG-RUN-HEALTHY", "IG-RUN-APP-NOT-WRITABLE", "IG-RUN-NO-BUILD-TOOLS",
            "IG-RUN-NO-PIP-MODULE", "IG-STACK-HEALTHY", "IG-STACK-HTTP",
            "IG-STACK-LOOPBACK-ONLY"} <= passed, passed
    data["output"] = gated.stdout + gated.stderr
    return proc.stdout, data


def test_blog_tutorial_factory_with_sqlite(checkout: Callable[[str], Path], docker_client: Any,
                                           imagegate_session: str,
                                           leftovers: Callable[[], list[str]]) -> None:
    """The tutorial's flaskr as written: init's setup builds and runs, and the gate fails it on
    the one defect init's note names, the factory's SECRET_KEY = "dev" that the running app
    uses. With that note followed (the key read from the environment) and `init --force`, it
    passes at hardened; then its image, run read-only as compose runs it, writes its SQLite
    database in the instance folder (a volume) and cannot write its own code."""
    project = checkout("blog")
    first_init, _ = init(project)
    assert "note: SECRET_KEY is set in the code, not read from the environment" in \
        first_init.stdout
    gated = gate(project, "--quiet")
    assert gated.returncode == 1, gated.stdout[-4000:]
    errors = {f["check_id"] for f in findings(project / ".imagegate-out", outcome="failed",
                                              severity="error")}
    assert errors == {"IG-FLASK-SECRET-KEY"}, gated.stdout[-4000:]

    secret_key_from_environment(project / "flaskr")
    git(project, "commit", "-qam", "the secret key from the environment, as init advised")
    said, _ = init_then_gate(project, "--force")
    assert "secrets: FLASK_SECRET_KEY (read from the environment) → required by compose" in said
    first = first_init.stdout
    assert "app: flaskr:create_app() (an app factory; `flask --app flaskr` finds it)" in first
    assert "gunicorn: not in pyproject.toml [project].dependencies; added" in first
    assert "health: GET /hello answers 200" in first
    assert "instance folder: flaskr writes instance → /var/lib/app/instance" in first
    for out in (first, said):  # init-db runs in the stack, once per instance volume
        assert "setup: `flask --app flaskr init-db` in a one-shot compose service `setup`" in out
    assert leftovers() == []

    labels = session_labels(imagegate_session)
    volume = docker_client.volumes.create(labels=labels)
    try:
        with running(docker_client, "imagegate/flaskr:local", imagegate_session,
                     env={"FLASK_SECRET_KEY": secrets.token_hex(32)}, port=8000,
                     read_only=True, tmpfs={"/tmp": ""},
                     cap_drop=["ALL"], security_opt=["no-new-privileges:true"],
                     volumes={volume.name: {"bind": "/var/lib/app/instance", "mode": "rw"}},
                     ) as web:
            wait_until(lambda: requests.get(f"{web.url}/hello", timeout=2).ok, timeout=60,
                       what="GET /hello answering 200")
            code, out = web.container.exec_run(["flask", "--app", "flaskr", "init-db"])
            assert code == 0, out
            register = requests.post(f"{web.url}/auth/register", timeout=10,
                                     data={"username": "ada", "password": "pw"},
                                     allow_redirects=False)
            assert register.status_code == 302, register.text[:500]
            assert requests.get(f"{web.url}/", timeout=10).status_code == 200
            code, out = web.container.exec_run(["ls", "/var/lib/app/instance"])
            assert code == 0 and b"flaskr.sqlite" in out, out
            code, out = web.container.exec_run(
                ["python3", "-c", "open('/srv/app/flaskr/hacked.py', 'w')"])
            assert code != 0 and b"Read-only file system" in out, out
    finally:
        volume.remove(force=True)


def test_seed_single_module(checkout: Callable[[str], Path],
                            leftovers: Callable[[], list[str]]) -> None:
    """The seed's app.py (module-level `app`, /healthz) passes."""
    said, data = init_then_gate(checkout("seed"))
    assert "app: app:app (a module-level Flask instance; `flask --app app.py` finds it)" in said
    assert "health: GET /healthz answers 200" in said
    assert "services: none" in said
    assert data["image"]["size"] < 80e6
    assert leftovers() == []


def test_factory_with_redis(checkout: Callable[[str], Path],
                            leftovers: Callable[[], list[str]]) -> None:
    """The Redis counter passes with the Redis service init added; its /health (200 only with
    Redis up) is what the gate's stack check asked for."""
    project = checkout("hitcount")
    said, _ = init_then_gate(project)
    assert "service: redis (requirements.txt names redis) → compose service `redis` on " \
           "imagegate/redis:7-bookworm, REDIS_URL=redis://redis:6379/0" in said
    assert "python: 3.11 (.python-version 3.11)" in said
    http = [f for f in findings(project / ".imagegate-out", outcome="passed")
            if f["check_id"] == "IG-STACK-HTTP"]
    assert http and "/health" in str(http), http
    assert leftovers() == []


def test_megatutorial_shape(checkout: Callable[[str], Path], postgres_image: str,
                            docker_client: Any, imagegate_session: str,
                            leftovers: Callable[[], list[str]]) -> None:
    """The Mega-Tutorial-shaped microblog goes init → gate green at hardened with no edit.

    Its two sdist-only pins are built by the wheelhouse (Flask-Mail on the host, crcmod's C
    extension on the build base with no network) and the gate says so; built.lock pins each
    built wheel to its own hash. `db` (the postgres:16 stand-in) and Redis come up, the one-shot
    `migrate` runs `flask db upgrade` before web starts, so every GET route answers below 500:
    `/` reads the `post` table only the migration makes, `/stats` counts in Redis, `/checksum`
    calls crcmod's C extension. The image holds the catalogs `pybabel compile` made in the
    builder (Spanish answers "Hola"). The SECRET_KEY fallback is named by file and line and its
    value is never printed."""
    project = checkout("microblog")
    literal = "you-will-never-guess"
    assert literal in (project / "config.py").read_text()
    said, data = init_then_gate(project, advice=("IG-LINT-FLASK-SOURCE",))
    line = next(n for n, text in enumerate((project / "config.py").read_text().splitlines(), 1)
                if literal in text)
    assert f"secret with a literal default: SECRET_KEY at config.py:{line} (the value is not " \
           "shown)" in said
    assert literal not in said + data["output"]
    static = [f["where"] for f in findings(project / ".imagegate-out", outcome="failed")]
    assert static == [f"config.py:{line}"], static  # the lint's advice names the same line
    assert "service: postgres (requirements.txt names psycopg2-binary) → compose service `db` " \
           "on postgres:16" in said
    assert "migrate: `flask --app microblog.py db upgrade` in a one-shot compose service " \
           "`migrate`" in said
    assert "translations: app/translations (messages) → `pybabel compile`" in said
    out = data["output"]
    assert "wheelhouse: built crcmod==1.7 from source (C extension, built on the target's " \
           "build base with no network)" in out, out[-3000:]
    assert "wheelhouse: built flask-mail==0.9.1 from source (pure Python, built on the host)" \
        in out, out[-3000:]
    built = (project / ".wheels" / "built.lock").read_text()
    for wheel in sorted((project / ".wheels").glob("*.whl")):
        if wheel.name.startswith(("crcmod-", "flask_mail-")):
            digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
            assert f"--hash=sha256:{digest}" in built, (wheel.name, built)
            assert digest not in (project / "requirements.lock").read_text()
    routes = next(f for f in findings(project / ".imagegate-out", outcome="passed")
                  if f["check_id"] == "IG-FLASK-ROUTES")
    assert routes["message"] == ("6 GET routes answered below 500: /, /checksum, /healthz, "
                                 "/index, /stats, /welcome-mail"), routes
    assert not list(project.rglob("*.mo")), "the catalogs are compiled in the image only"
    probe = ("import crcmod._crcfunext as ext; from flask_babel import force_locale, gettext; "
             "from microblog import app\n"
             "with app.test_request_context(), force_locale('es'): "
             "print(ext.__file__.endswith('.so'), gettext('Hello'))")
    said_image = docker_client.containers.run(
        "imagegate/microblog:local", ["python3", "-c", probe], remove=True, network_mode="none",
        labels=session_labels(imagegate_session), environment={"SECRET_KEY": "x" * 32})
    assert said_image.decode().split() == ["True", "Hola"]
    print(f"microblog image: {data['image']['size'] / 1e6:.1f} MB")
    assert leftovers() == []
