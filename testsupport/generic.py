"""The generic checks of one gate stage, run as the gate runs them, for tests that judge an image
or a stack variant by its findings."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from imagegate.gate import generic_args, stage_env


def run_generic(stage: str, *, image: str, session: str, project_dir: Path, rootdir: Path,
                args: tuple[str, ...] = (), timeout: float = 600,
                ) -> tuple[list[dict[str, Any]], str, float]:
    """``stage``'s generic checks on ``image`` (settings from ``project_dir``): (findings as
    dicts, output tail, seconds). The findings file must exist: no file means pytest did not run."""
    findings = rootdir / f"findings-{stage}.jsonl"
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *generic_args(stage), "--rootdir", str(rootdir),
         "--imagegate-project-dir", str(project_dir), "--imagegate-image", image,
         "--imagegate-session", session, "--imagegate-findings", str(findings), "-q", "-rs",
         *args],
        capture_output=True, text=True, timeout=timeout, cwd=rootdir, stdin=subprocess.DEVNULL,
        env=stage_env(generic=True))
    output = proc.stdout[-4000:] + proc.stderr[-2000:]
    assert findings.is_file(), output
    return ([json.loads(line) for line in findings.read_text().splitlines()], output,
            time.monotonic() - started)
