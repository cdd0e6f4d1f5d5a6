"""The Flask family on the Flask tutorial's app (`projects/flaskr`), gated as its owner would:
as written, run by `flask run --debug`, with a GET route that raises, and with the key taken
from the environment. Each variant fails exactly by its Flask check, with its message; the
fixed one passes. See the sample's README."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from stack_helpers import IMAGEGATE, findings, result

from testsupport.samples import flaskr_project, secret_key_from_environment

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("flaskr")]

FLASK_IDS = ("IG-FLASK-DEBUGGER", "IG-FLASK-DEV-SERVER", "IG-FLASK-DEBUG-ENV",
             "IG-FLASK-SECRET-KEY", "IG-FLASK-ROUTES", "IG-LINT-FLASK-SOURCE")


def debug_server(project: Path) -> None:
    """compose runs the development server with the debugger, as a dev compose does."""
    compose = project / "compose.yaml"
    compose.write_text(compose.read_text() + '    command: ["flask", "--app", "flaskr", "run", '
                       '"--debug", "--host", "0.0.0.0", "--port", "8000"]\n')


def raising_route(project: Path) -> None:
    """One more GET route, which raises."""
    init = project / "flaskr/__init__.py"
    text = init.read_text()
    anchor = '        return "Hello, World!"\n'
    assert anchor in text
    init.write_text(text.replace(anchor, anchor + '\n    @app.route("/stats")\n    def stats():\n'
                                 '        return str(1 / 0)\n', 1))


def key_from_environment(project: Path) -> None:
    """The fix: no default key in the code; FLASK_SECRET_KEY from the environment
    (from_prefixed_env), which compose requires (CI sets it)."""
    secret_key_from_environment(project / "flaskr")
    compose = project / "compose.yaml"
    compose.write_text(compose.read_text() + "    environment:\n      FLASK_SECRET_KEY: "
                       "${FLASK_SECRET_KEY:?set FLASK_SECRET_KEY}\n")


@pytest.fixture
def flaskr(tmp_path: Path, python_slim_image: str) -> Callable[..., Path]:
    """``flaskr(edit, ...)``: a fresh copy of the sample with each edit applied."""
    def make(*edits: Callable[[Path], None]) -> Path:
        dest = flaskr_project(tmp_path / "flaskr")
        for edit in edits:
            edit(dest)
        return dest
    return make


def gate_flask(project: Path, env: dict[str, str] | None = None) -> tuple[int, str, Path]:
    """The gate CLI on ``project`` (a subprocess, as CI runs it): exit code, output, reports."""
    import subprocess

    proc = subprocess.run([IMAGEGATE, "gate", "--project-dir", str(project), "--quiet"],
                          capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL,
                          env={**os.environ, **(env or {})})
    return proc.returncode, proc.stdout + proc.stderr, project / ".imagegate-out"


def failed_flask(out: Path) -> dict[str, list[str]]:
    """{Flask check id: messages} of the failing (error) Flask findings."""
    found: dict[str, list[str]] = {}
    for f in findings(out, outcome="failed", severity="error"):
        if f["check_id"] in FLASK_IDS:
            found.setdefault(f["check_id"], []).append(f["message"])
    return found


@pytest.mark.shows_failing("IG-FLASK-SECRET-KEY", "IG-LINT-FLASK-SOURCE")
def test_tutorial_app_as_written_fails_naming_SECRET_KEY(flaskr: Callable[..., Path]) -> None:
    """SECRET_KEY="dev", the factory's default, is what the running app uses: proven in the
    container (the key never printed); its static twin is advice in the lint stage."""
    code, said, out = gate_flask(flaskr())
    assert code == 1, said[-3000:]
    assert failed_flask(out) == {"IG-FLASK-SECRET-KEY": [
        "the running app (flaskr:create_app())'s SECRET_KEY is a well-known default from docs "
        "and tutorials: anyone can forge its session cookies; set it from the environment "
        "(app.config.from_prefixed_env(), FLASK_SECRET_KEY)"]}, said[-3000:]
    twin = [f for f in findings(out, outcome="failed") if f["check_id"] == "IG-LINT-FLASK-SOURCE"]
    assert [(f["severity"], f["where"]) for f in twin] == [("warning", "flaskr/__init__.py:11")]
    assert '"dev"' not in said and "'dev'" not in said


@pytest.mark.shows_failing("IG-FLASK-DEBUGGER", "IG-FLASK-DEV-SERVER", "IG-FLASK-DEBUG-ENV")
def test_flask_run_debug_fails_naming_the_debugger_and_the_dev_server(
        flaskr: Callable[..., Path]) -> None:
    """compose runs `flask run --debug`: the debugger answers (run stage and stack, inside the
    network and through the published port), the process is Werkzeug's dev server."""
    code, said, out = gate_flask(flaskr(debug_server))
    assert code == 1, said[-3000:]
    failed = failed_flask(out)
    assert {"IG-FLASK-DEBUGGER", "IG-FLASK-DEV-SERVER"} <= set(failed), failed
    ways = sorted(m.split(" (GET")[0] for m in failed["IG-FLASK-DEBUGGER"])
    assert len(ways) == 4 and ways[0] == "the Werkzeug debugger answers from inside the network"
    assert failed["IG-FLASK-DEV-SERVER"][0].startswith(
        "the web service runs Werkzeug's development server (flask run: ")
    assert "answers as Werkzeug/" in failed["IG-FLASK-DEV-SERVER"][0]
    debug = [f["message"] for f in findings(out, outcome="failed")
             if f["check_id"] == "IG-FLASK-DEBUG-ENV"]
    assert debug == ["the server runs with --debug: the running app's debug is on (expected no "
                     "--debug)"], debug


@pytest.mark.shows_failing("IG-FLASK-ROUTES")
def test_a_raising_route_fails_naming_the_route(flaskr: Callable[..., Path]) -> None:
    """GET /stats raises: IG-FLASK-ROUTES names it, its status and the server's exception
    line; the tutorial's other GET routes answer below 500."""
    code, said, out = gate_flask(flaskr(key_from_environment, raising_route),
                                 {"FLASK_SECRET_KEY": secrets.token_hex(32)})
    assert code == 1, said[-3000:]
    assert failed_flask(out) == {"IG-FLASK-ROUTES": [
        "GET /stats answered 500: ZeroDivisionError: division by zero (expected below 500)"]}


def test_key_from_the_environment_passes(flaskr: Callable[..., Path], docker_client: Any) -> None:
    """The fix: the key from CI's environment through compose and from_prefixed_env, no
    literal default left in the code: every Flask check passes, its static twin too."""
    code, said, out = gate_flask(flaskr(key_from_environment),
                                 {"FLASK_SECRET_KEY": secrets.token_hex(32)})
    assert code == 0, said[-3000:]
    assert "interpolation: FLASK_SECRET_KEY [environment]" in said
    passed = {f["check_id"] for f in findings(out, outcome="passed")}
    assert set(FLASK_IDS) <= passed, passed
    assert not {f["check_id"] for f in findings(out, outcome="failed")} & set(FLASK_IDS)
    assert result(out)["status"] == "passed"
