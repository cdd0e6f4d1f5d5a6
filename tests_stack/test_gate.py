"""`imagegate gate --project-dir` on a second Flask project made by the tests, with a real registry.

The sample project (its own Dockerfile, compose file, port, service name and pyproject settings)
is copied to tmp_path; the gate runs as a subprocess exactly as CI would run it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from stack_helpers import findings, gate, junit_cases, result

pytestmark = pytest.mark.slow



# The green gate with a push (and a pull-back of the digest) is test_push_registry's
# test_gate_pushes_with_env_credentials: one gate of the sample proves both.


def test_gate_violation_pushes_nothing(sample: Path, registry: str,
                                       leftovers: Callable[[], list[str]]) -> None:
    """An image over its size budget fails the image stage: exit 1, reported, nothing pushed."""
    proc = gate(sample, "--size-budget-mb", "5", "--push", f"{registry}/imagegate/sample:bad")
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "IG-SIZE-BUDGET" in proc.stdout
    cases = junit_cases(sample / "out")
    failed = [c for c, o in cases.items() if o == "failure"]
    assert failed and all("IG-SIZE-BUDGET" in c for c in failed), failed
    result = json.loads((sample / "out" / "result.json").read_text())
    statuses = {s["name"]: s["status"] for s in result["stages"]}
    # the stack stage runs beside the image stage (both need only the image); push never runs
    assert statuses["image"] == "failed" and statuses["stack"] in ("passed", "skipped")
    assert statuses["push"] == "skipped" and not result["pushed"]
    summary = (sample / "out" / "summary.md").read_text()
    assert "FAILED" in summary and "IG-SIZE-BUDGET" in summary
    tags = requests.get(f"http://{registry}/v2/imagegate/sample/tags/list", timeout=5)
    assert "bad" not in (tags.json().get("tags") or []) if tags.ok else tags.status_code == 404
    assert leftovers() == []


def _edit(path: Path, old: str, new: str) -> None:
    """Replace ``old`` (which must be there) in a sample file."""
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new))


BAD_INPUTS: list[tuple[str, Callable[[Path], None], int, str]] = [
    ("missing-dockerfile", lambda p: (p / "Dockerfile").unlink(), 2, "Dockerfile not found"),
    ("invalid-compose-yaml", lambda p: (p / "compose.yml").write_text("services: [web\n"), 2,
     "compose.yml"),
    ("unknown-config-key", lambda p: _edit(p / "pyproject.toml", "web_port = 5000",
                                           "web_port = 5000\nweb_prot = 1"), 2, "web_prot"),
    ("does-not-build", lambda p: _edit(p / "Dockerfile", "COPY sample/",
                                       "RUN exit 3\nCOPY sample/"), 1, "build failed"),
]


@pytest.mark.parametrize(("mutate", "rc", "says"), [b[1:] for b in BAD_INPUTS],
                         ids=[b[0] for b in BAD_INPUTS])
def test_gate_bad_input(sample: Path, mutate: Callable[[Path], None], rc: int, says: str,
                        leftovers: Callable[[], list[str]]) -> None:
    """Each bad input is a clear error naming what is wrong, the right exit code, nothing left."""
    mutate(sample)
    proc = gate(sample, "--quiet")
    out = proc.stdout + proc.stderr
    assert proc.returncode == rc, out[-3000:]
    assert says in out, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    assert leftovers() == []


@pytest.mark.shows_failing("IG-STACK-HEALTHY", "IG-RUN-HEALTHY")
def test_gate_never_healthy_fails_IG_STACK_HEALTHY(sample: Path,
                                                  leftovers: Callable[[], list[str]]) -> None:
    """A service that runs but is never healthy (its compose healthcheck probes a missing path)
    fails the gate through IG-STACK-HEALTHY itself (not a fixture error, not any stack
    failure): exit 1, that finding failed naming the service and its health, the checks that
    need the running stack skipped naming it. The run checks judge the service as compose runs
    it, healthcheck included: IG-RUN-HEALTHY fails alike in the image stage."""
    _edit(sample / "compose.yml", "5000/health', timeout=2)", "5000/nope', timeout=2)")
    # failures in the start period do not count: 15 s of it would only be waited out
    _edit(sample / "compose.yml", "start_period: 15s", "start_period: 2s")
    proc = gate(sample, "--quiet")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    failed = {f["check_id"]: f for f in findings(sample / "out", outcome="failed")}
    assert sorted(failed) == ["IG-RUN-HEALTHY", "IG-STACK-HEALTHY"], failed
    for check_id, stage in (("IG-STACK-HEALTHY", "stack"), ("IG-RUN-HEALTHY", "image")):
        assert failed[check_id]["stage"] == stage and failed[check_id]["severity"] == "error"
        assert failed[check_id]["message"].startswith(
            "compose.yml: service app (running, unhealthy) did not come up"), failed[check_id]
    needs_stack = [f for f in findings(sample / "out")
                   if f["check_id"] in ("IG-STACK-WEB-NONROOT", "IG-STACK-HTTP")]
    assert needs_stack and all(f["skipped"] and "see IG-STACK-HEALTHY" in f["message"]
                               for f in needs_stack), needs_stack
    stages = {s["name"]: s["status"] for s in result(sample / "out")["stages"]}
    assert (stages["image"], stages["stack"]) == ("failed", "failed"), stages
    assert "IG-STACK-HEALTHY" in proc.stdout
    assert leftovers() == []
