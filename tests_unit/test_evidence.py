"""The negative-evidence table (imagegate/evidence.py) against the catalogue and the suites.

Fails when a catalogue id has no test that makes it fail, when the table names an id the
catalogue does not know, or when a test it names does not exist (collected by pytest itself, so a
renamed test or parameter id is caught).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from imagegate.checks.catalogue import CATALOGUE, HADOLINT_ID
from imagegate.checks.evidence import EVIDENCE, HADOLINT_RULES, files
from imagegate.facts.policy import BUILD_TOOLS

ROOT = Path(__file__).resolve().parents[1]
RULE = re.compile(r"\b(?:DL|SC)\d{4}\b")


def test_every_catalogue_id_has_a_negative_test() -> None:
    """Each check of the catalogue, and hadolint's rules, is shown failing by some test."""
    missing = [cid for cid in [*CATALOGUE, HADOLINT_RULES] if not EVIDENCE.get(cid)]
    assert not missing, f"no test makes these checks fail: {missing}"


def test_every_mapped_id_is_a_catalogue_id() -> None:
    """The table names no id the catalogue does not know (a renamed or removed check)."""
    unknown = sorted(set(EVIDENCE) - set(CATALOGUE) - {HADOLINT_RULES})
    assert not unknown, f"not in the catalogue: {unknown}"


def test_hadolint_rules_show_a_dl_and_an_sc_rule() -> None:
    """hadolint's row is shown with one of its own DL rules and one ShellCheck SC rule."""
    rules = {m.group(0)[:2] for node in EVIDENCE[HADOLINT_RULES] for m in RULE.finditer(node)
             if HADOLINT_ID.match(m.group(0))}
    assert rules == {"DL", "SC"}, EVIDENCE[HADOLINT_RULES]


def test_every_build_tool_is_shown_failing() -> None:
    """IG-RUN-NO-BUILD-TOOLS is shown failing for each tool it looks for, one by one."""
    nodes = EVIDENCE["IG-RUN-NO-BUILD-TOOLS"]
    missing = [tool for tool in BUILD_TOOLS
               if not any(node.endswith(f"[IG-RUN-NO-BUILD-TOOLS-{tool}]") for node in nodes)]
    assert not missing, missing


@pytest.mark.parametrize("check_id", sorted(EVIDENCE))
def test_each_mapped_test_names_its_check(check_id: str) -> None:
    """A reader finds a check's evidence by its id: the node id names it (with hyphens or
    underscores), or else its test file does."""
    for node in EVIDENCE[check_id]:
        if check_id == HADOLINT_RULES:
            assert RULE.search(node), node
            continue
        if check_id in node or check_id.replace("-", "_") in node:
            continue
        path = ROOT / node.split("::", 1)[0]
        assert path.is_file() and check_id in path.read_text(), (
            f"{node} names neither {check_id} nor does its file")


@pytest.fixture(scope="module")
def collected() -> set[str]:
    """The node ids pytest collects from the files the table names (no test is run; the
    Docker suites are only collected, which needs no engine)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:randomly",
         "-p", "no:cacheprovider", "--rootdir", str(ROOT), *files()],
        capture_output=True, text=True, timeout=300, cwd=ROOT, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return {line.strip() for line in proc.stdout.splitlines() if "::" in line}


def test_every_mapped_test_exists(collected: set[str]) -> None:
    """Every node id in the table is a test pytest collects (not renamed, not a typo)."""
    missing = sorted(node for nodes in EVIDENCE.values() for node in nodes
                     if node not in collected)
    assert not missing, "not collected:\n" + "\n".join(missing)
