"""Negative evidence, checked both ways: every check is shown failing by a test marked
``@pytest.mark.shows_failing("IG-…")`` (testsupport/evidence.py), every marked id is a check, and
every marked unit test fails when the check it names is stubbed to pass.

The marks are read from the suites themselves (all three collected: collection needs no engine);
the stub run executes the unit suite's marked tests once per id they name, with that check's
function (the registry's, and every name it is imported under) replaced by one that reports a
pass. A test that still passes then does not prove its check. The Docker suites' marked tests
(real images, containers, stacks) assert the exact set of ids each variant breaks instead.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from imagegate.checks.catalogue import CATALOGUE, known
from imagegate.facts.policy import BUILD_TOOLS
from testsupport.evidence import collect, documented, suite_argv, table

ROOT = Path(__file__).resolve().parents[1]
RULE = re.compile(r"^(?:DL|SC)\d{4}$")


def _pytest(*args: str, timeout: int) -> subprocess.CompletedProcess[str]:
    """pytest in a subprocess at the repo root (testsupport.evidence.suite_argv)."""
    return subprocess.run(suite_argv(*args), capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def marked() -> dict[str, list[str]]:
    """{node id: the check ids it is marked as showing failing}, over all three suites."""
    return collect()


def _shown(marked: dict[str, list[str]]) -> set[str]:
    return {cid for ids in marked.values() for cid in ids}


def test_every_check_is_shown_failing(marked: dict[str, list[str]]) -> None:
    """Each check of the catalogue, and one DL and one SC rule of hadolint's, has a test marked
    as showing it failing."""
    missing = sorted(set(CATALOGUE) - _shown(marked))
    assert not missing, f"no test is marked shows_failing for: {missing}"
    rules = {cid[:2] for cid in _shown(marked) if RULE.match(cid)}
    assert rules == {"DL", "SC"}, rules


def test_every_marked_id_is_a_check(marked: dict[str, list[str]]) -> None:
    """No mark names an id the catalogue (or hadolint) does not know: a renamed or removed
    check leaves no stale evidence."""
    unknown = sorted(cid for cid in _shown(marked) if not known(cid))
    assert not unknown, unknown


def test_each_marked_test_names_its_check(marked: dict[str, list[str]]) -> None:
    """A reader finds a check's evidence by grepping its id: the node id or the test's file
    names it."""
    unnamed = [(node, cid) for node, ids in marked.items() for cid in ids
               if cid not in node and cid.replace("-", "_") not in node
               and cid not in (ROOT / node.split("::", 1)[0]).read_text()]
    assert not unnamed, unnamed


def test_the_development_page_says_where_the_evidence_runs(marked: dict[str, list[str]]) -> None:
    """docs/development.md's table of negative tests per check and suite is the marks' own
    (`make docs` writes it)."""
    want = table(marked, sorted(CATALOGUE))
    assert documented() == want, f"docs/development.md is stale (make docs); the table is:\n{want}"


def test_every_build_tool_is_shown_failing(marked: dict[str, list[str]]) -> None:
    """IG-RUN-NO-BUILD-TOOLS is shown failing for each tool it looks for, one by one."""
    nodes = [node for node, ids in marked.items() if "IG-RUN-NO-BUILD-TOOLS" in ids]
    missing = [tool for tool in BUILD_TOOLS
               if not any(node.endswith(f"[IG-RUN-NO-BUILD-TOOLS-{tool}]") for node in nodes)]
    assert not missing, missing


@pytest.mark.slow
def test_unit_evidence_fails_when_its_check_is_stubbed(
        marked: dict[str, list[str]], tmp_path: Path) -> None:
    """Every marked unit test, run with each check it names stubbed to pass, fails — by its own
    assertion, not by an error of the stub — and each ran."""
    out = tmp_path / "stubbed.json"
    proc = _pytest("-q", "-m", "shows_failing", f"--evidence-stub={out}", "tests_unit",
                   timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    outcomes: dict[str, dict[str, str]] = json.loads(out.read_text())
    expected = {node: {cid for cid in ids if cid in CATALOGUE} for node, ids in marked.items()
                if node.startswith("tests_unit/")}
    ran = {node: set(found) for node, found in outcomes.items()}
    assert ran == {node: ids for node, ids in expected.items() if ids}, "not run with a stub"
    proved_nothing = {f"{node} [{cid} stubbed]": said for node, found in outcomes.items()
                      for cid, said in found.items() if said != "failed"}
    assert not proved_nothing, json.dumps(proved_nothing, indent=1)
