"""Every IG-STACK-* check shown failing, each on a stack that breaks exactly its rule.

The compose-file checks need no container: tests_unit/test_compose_checks.py shows them failing.
Here, the running-stack checks (IG-STACK-HEALTHY, -WEB-NONROOT, -HTTP) need a stack: a variant
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

from imagegate.checks.catalogue import stage_ids
from testsupport.generic import run_generic

pytestmark = [pytest.mark.stack, pytest.mark.xdist_group("negative_stack")]

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = Path(__file__).parent / "variants"
CAP_DROP = "    cap_drop: [ALL]\n    security_opt:\n      - no-new-privileges:true\n    # No `init`"


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
                            marks=[pytest.mark.slow, pytest.mark.shows_failing(check_id)])
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
