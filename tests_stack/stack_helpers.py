"""Helpers for the stack suite: bounded HTTP calls (for wait_until), and the gate run as CI runs
it with its reports read back."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import requests

IMAGEGATE = str(Path(sys.executable).parent / "imagegate")


def get(url: str, timeout: float = 10) -> requests.Response:
    """GET with a bounded timeout."""
    return requests.get(url, timeout=timeout)


def status_of(url: str) -> int | None:
    """The HTTP status of GET ``url``, or None when nothing answers (for wait_until)."""
    try:
        return get(url, timeout=3).status_code
    except requests.RequestException:
        return None


def gate(project: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run the gate CLI on ``project`` as CI would (a subprocess, no stdin)."""
    return subprocess.run([IMAGEGATE, "gate", "--project-dir", str(project), *args],
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def junit_cases(out: Path) -> dict[str, str]:
    """{suite::classname::name: outcome} from the gate's junit.xml in report dir ``out``."""
    root = ET.parse(out / "junit.xml").getroot()
    cases = {}
    for suite in root.iter("testsuite"):
        for case in suite.iter("testcase"):
            outcome = next((t for t in ("failure", "error", "skipped")
                            if case.find(t) is not None), "passed")
            cases[f"{suite.get('name')}::{case.get('classname')}::{case.get('name')}"] = outcome
    return cases


def result(out: Path) -> dict[str, Any]:
    """The gate's result.json in report dir ``out``."""
    data: dict[str, Any] = json.loads((out / "result.json").read_text())
    return data


def findings(out: Path, *, outcome: str = "", severity: str = "") -> list[dict[str, Any]]:
    """The findings in result.json, filtered by outcome (passed/failed/skipped) and severity."""
    found = result(out)["findings"]
    if outcome:
        found = [f for f in found if (("skipped" if f["skipped"] else
                                       "passed" if f["ok"] else "failed") == outcome)]
    if severity:
        found = [f for f in found if f["severity"] == severity]
    return found


def in_private_mount_ns(blocker: Path, socket_path: str, *argv: str) -> list[str]:
    """``argv`` run in a private mount namespace where ``socket_path`` is covered by the empty
    file ``blocker``: anything that opens the default socket there fails."""
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
            'mount --bind "$0" "$1" && shift && exec "$@"', str(blocker), socket_path, *argv]
