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


class ContainerStarts:
    """The engine's container ``start`` events while the ``with`` block runs (read in a thread),
    each as its labels: which containers a gate started, whatever removed them after."""

    def __init__(self, cli: Any) -> None:
        import threading
        import time

        self.labels: list[dict[str, str]] = []
        self._stream = cli.events(decode=True, since=int(time.time()) - 1,
                                  filters={"type": "container", "event": "start"})
        self._thread = threading.Thread(target=self._read, daemon=True)

    def _read(self) -> None:
        import contextlib

        with contextlib.suppress(Exception):  # the stream is closed under it at the end
            for event in self._stream:
                self.labels.append(dict((event.get("Actor") or {}).get("Attributes") or {}))

    def __enter__(self) -> ContainerStarts:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # a start is read as it happens; the gate has ended (and removed them) by now
        self._stream.close()
        self._thread.join(timeout=10)

    def of(self, session_prefix: str, service: str) -> list[dict[str, str]]:
        """The starts of compose service ``service`` in sessions ``session_prefix*``."""
        from imagegate.engine import SESSION_LABEL

        return [a for a in self.labels
                if a.get(SESSION_LABEL, "").startswith(session_prefix)
                and a.get("com.docker.compose.service") == service]
