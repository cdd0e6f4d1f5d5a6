"""Every IG-STACK-* check shown failing, each on a stack that breaks exactly its rule.

Two kinds of evidence, as the checks have:

* the compose-file checks (IG-STACK-LOOPBACK-ONLY, -NOT-PRIVILEGED, -SOURCE-MOUNT) judge the
  project's compose model as the user wrote it: this repo's compose.yml with one edit, resolved
  by ``compose config`` (:class:`~imagegate.model.compose.Model`) and judged by the generic checks'
  own code — no container needed;
* the running-stack checks (IG-STACK-HEALTHY, -WEB-NONROOT, -HTTP) need a stack: a variant
  project (``variants/negative_*.yml``, copied to tmp_path with a pyproject) runs the generic
  stack checks in a subprocess exactly as the gate runs them, on the image this session tested,
  and the test reads the findings file. Each variant comes up healthy (but the never-healthy
  one) and fails exactly its check.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from imagegate.checks import compose as compose_checks
from imagegate.checks.catalogue import stage_ids
from imagegate.checks.compose import ComposeFacts
from imagegate.config.settings import Settings
from imagegate.model.compose import Model
from imagegate.results.findings import Finding
from testsupport.generic import run_generic

pytestmark = [pytest.mark.stack, pytest.mark.xdist_group("negative_stack")]

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = Path(__file__).parent / "variants"
COMPOSE_CHECKS = ("IG-STACK-SOURCE-MOUNT", "IG-STACK-LOOPBACK-ONLY", "IG-STACK-NOT-PRIVILEGED")
WEB_PORT = '- "127.0.0.1:${WEB_PORT:-}:8000"'
CAP_DROP = "    cap_drop: [ALL]\n    security_opt:\n      - no-new-privileges:true\n    # No `init`"


# -- the compose-file checks, on this repo's compose.yml with one edit ----------------------------


def judge_compose(project: Path) -> list[Finding]:
    """What the generic compose-file checks record on ``project``'s compose.yml."""
    model = Model.load([project / "compose.yml"], project_dir=project,
                       env={"SECRET_KEY": "x" * 32, "APP_IMAGE": "imagegate/app:local"})
    # web runs ${APP_IMAGE} (no build:): it is judged as the web service, as the gate resolves it
    return compose_checks.judge(ComposeFacts(model, Settings(project_dir=project,
                                                             web_service="web")))


def edited(old: str, new: str) -> Callable[[str], str]:
    """An edit of compose.yml replacing ``old`` (which must be there once) with ``new``."""
    def edit(text: str) -> str:
        assert text.count(old) == 1, f"{old!r} is not in compose.yml once"
        return text.replace(old, new)
    return edit


COMPOSE_EDITS = [
    pytest.param("IG-STACK-LOOPBACK-ONLY", edited(WEB_PORT, '- "8000:8000"'),
                 'web: port 8000:8000 is published on every interface (no host_ip); publish it '
                 'on loopback: "127.0.0.1:8000:8000"', id="IG-STACK-LOOPBACK-ONLY-no-host-ip"),
    pytest.param("IG-STACK-LOOPBACK-ONLY", edited(WEB_PORT, '- "0.0.0.0::8000"'),
                 "web: port 0.0.0.0::8000 is published on every interface (host_ip 0.0.0.0)",
                 id="IG-STACK-LOOPBACK-ONLY-all-interfaces"),
    pytest.param("IG-STACK-NOT-PRIVILEGED", edited(CAP_DROP, "    privileged: true\n" + CAP_DROP),
                 "web runs privileged (expected no privileged: true)",
                 id="IG-STACK-NOT-PRIVILEGED-privileged"),
    pytest.param("IG-STACK-NOT-PRIVILEGED",
                 edited(CAP_DROP, "    cap_add: [NET_ADMIN, SYS_PTRACE]\n" + CAP_DROP),
                 "web adds capabilities ['NET_ADMIN', 'SYS_PTRACE'] (expected no cap_add)",
                 id="IG-STACK-NOT-PRIVILEGED-cap-add"),
    pytest.param("IG-STACK-SOURCE-MOUNT",
                 edited(CAP_DROP, "    volumes:\n      - ./app:/srv/app/app:ro\n" + CAP_DROP),
                 "web: bind mount ./app:/srv/app/app:ro lays the project's files over the image",
                 id="IG-STACK-SOURCE-MOUNT-app-dir"),
    pytest.param("IG-STACK-SOURCE-MOUNT",
                 edited(CAP_DROP, "    volumes:\n      - .:/srv/app\n" + CAP_DROP),
                 "web: bind mount .:/srv/app lays the project's files over the image",
                 id="IG-STACK-SOURCE-MOUNT-project-dir"),
]


def compose_project(tmp_path: Path, edit: Callable[[str], str] | None = None) -> Path:
    """A copy of this repo's compose.yml (``edit`` applied) in tmp_path, with an app/ dir."""
    text = (ROOT / "compose.yml").read_text()
    (tmp_path / "compose.yml").write_text(edit(text) if edit else text)
    (tmp_path / "app").mkdir()
    return tmp_path


def test_the_real_compose_file_passes_the_compose_checks(tmp_path: Path) -> None:
    """compose.yml as it is: every compose-file check passes (the edits below each break one)."""
    found = judge_compose(compose_project(tmp_path))
    assert [(f.check_id, f.ok) for f in found] == [(cid, True) for cid in COMPOSE_CHECKS]


@pytest.mark.parametrize(("check_id", "edit", "says"), COMPOSE_EDITS)
def test_compose_check_fails_on_an_edited_compose_file(tmp_path: Path, check_id: str,
                                                       edit: Callable[[str], str],
                                                       says: str) -> None:
    """One edit of compose.yml fails exactly its check, at the service, saying why."""
    found = judge_compose(compose_project(tmp_path, edit))
    failed = [f for f in found if not f.ok]
    assert {f.check_id for f in failed} == {check_id}, [str(f) for f in found]
    assert all(f.where == "compose.yml:service web" for f in failed), [str(f) for f in failed]
    assert any(says in f.message for f in failed), [f.message for f in failed]


# -- the running-stack checks, on variant stacks brought up by the generic checks -----------------


@dataclass(frozen=True)
class StackVariant:
    """A variant project: its compose file, extra ``[tool.imagegate]`` lines, what must fail."""

    compose: str
    fails: dict[str, str]  # check id -> text of its failing finding's message
    settings: str = ""


STACK_VARIANTS = {
    "web-root": StackVariant("negative_web_root.yml", {
        "IG-STACK-WEB-NONROOT": "web runs processes as uid 0: pid "}),
    "cap-add": StackVariant("negative_cap_add.yml", {
        "IG-STACK-NOT-PRIVILEGED": "web adds capabilities ['NET_BIND_SERVICE'] (expected no "
                                   "cap_add)"}),
    "http-answers-differ": StackVariant("negative_http.yml", {
        "IG-STACK-HTTP": "GET / (web:8000 from inside the network): 'Hello, World!' not in "
                         "'Howdy from a variant'"},
        'http_checks = [{ path = "/", contains = "Hello, World!" }, '
        '{ path = "/readyz", status = 200 }]\n'),
    "never-healthy": StackVariant("negative_never_healthy.yml", {
        "IG-STACK-HEALTHY": "service web (running, unhealthy"}),
}
STACK_CASES = [pytest.param(check_id, name, says, id=f"{check_id}-{name}",
                            marks=[pytest.mark.slow])
               for name, variant in STACK_VARIANTS.items()
               for check_id, says in variant.fails.items()]


def run_generic_stack(variant: StackVariant, project: Path, image: str,
                      session: str) -> tuple[list[dict[str, Any]], str, float]:
    """The generic stack checks on ``variant`` (copied into ``project``), as the gate runs
    them, on ``image``: (findings, output tail, seconds)."""
    shutil.copy(VARIANTS / variant.compose, project / "compose.yml")
    (project / "pyproject.toml").write_text(
        '[tool.imagegate]\ncompose_file = "compose.yml"\nweb_service = "web"\nweb_port = 8000\n'
        'health_path = "/healthz"\nprofile = "hardened"\npull = "never"\nwait_timeout = 60\n'
        # these variant stacks run web alone: the routes that need Redis answer 503 by design
        'flask_routes_ignore = ["/hits", "/readyz"]\n'
        + variant.settings + '[tool.imagegate.run_env]\nSECRET_KEY = "@random"\n')
    return run_generic("stack", image=image, session=session, project_dir=project,
                       rootdir=project)


@pytest.fixture(scope="module")
def stack_runs(app_image: str, imagegate_session: str,
               tmp_path_factory: pytest.TempPathFactory,
               ) -> Callable[[str], tuple[list[dict[str, Any]], str]]:
    """``run(variant)``: the generic stack checks' findings on that variant, run once."""
    done: dict[str, tuple[list[dict[str, Any]], str]] = {}

    def run(name: str) -> tuple[list[dict[str, Any]], str]:
        if name not in done:
            found, output, seconds = run_generic_stack(
                STACK_VARIANTS[name], tmp_path_factory.mktemp(name), app_image,
                f"{imagegate_session}-{name}")
            print(f"\nIG-STACK-* variant {name}: generic stack checks in {seconds:.1f}s")
            done[name] = (found, output)
        return done[name]

    return run


@pytest.mark.parametrize(("check_id", "variant", "says"), STACK_CASES)
def test_stack_check_fails_on_a_variant_stack(
        check_id: str, variant: str, says: str,
        stack_runs: Callable[[str], tuple[list[dict[str, Any]], str]]) -> None:
    """The variant fails exactly its check, with the check's own message; every other stack
    check passes (or, when the stack never came up, skips naming IG-STACK-HEALTHY)."""
    found, output = stack_runs(variant)
    # IG-FLASK-DEBUGGER is a run-stage check asked in the stack too (through every way in)
    assert {f["check_id"] for f in found} == {*stage_ids("stack"), "IG-FLASK-DEBUGGER"}, output
    broken = [f for f in found if f["message"].startswith(("could not run", "check crashed"))]
    assert not broken, output
    failed = [f for f in found if not f["ok"] and not f["skipped"]]
    assert {f["check_id"] for f in failed} == {check_id}, output
    assert any(says in f["message"] for f in failed), [f["message"] for f in failed]
    if check_id == "IG-STACK-HEALTHY":
        running = [f for f in found if f["check_id"] in ("IG-STACK-WEB-NONROOT", "IG-STACK-HTTP")]
        assert running and all(f["skipped"] and "see IG-STACK-HEALTHY" in f["message"]
                               for f in running), running
    if check_id == "IG-STACK-HTTP":
        # each path asked twice: from inside the network, and through web's published port
        messages = sorted(f["message"].split(" ", 2)[1] + " " + f["message"].split(": ", 1)[1]
                          for f in failed)
        assert messages == ["/ 'Hello, World!' not in 'Howdy from a variant'"] * 2 + [
            "/readyz expected 200, got 503: " + messages[2].split(": ", 1)[1]] * 2, messages
        ways = sorted(f["message"].split(")")[0].split("(")[1] for f in failed)
        assert ways[:2] == ["through web's published port " + ways[0].rsplit(" ", 1)[1]] * 2 \
            and ways[2:] == ["web:8000 from inside the network"] * 2, ways


def test_every_stack_check_is_shown_failing_here() -> None:
    """No IG-STACK-* id goes without a stack that makes it fail in this module (IG-FLASK-ROUTES
    fails on the Flask tutorial's app: tests_stack/test_flask_gate.py)."""
    shown = {p.values[0] for p in COMPOSE_EDITS} | {p.values[0] for p in STACK_CASES}
    assert shown == {i for i in stage_ids("stack") if i.startswith("IG-STACK-")}
