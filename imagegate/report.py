"""Gate reports: one JUnit XML of every check, a JSON result, and a Markdown CI step summary."""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class CheckOutcome:
    """One test/check from a stage's JUnit file."""

    id: str
    outcome: str  # passed | failed | error | skipped
    message: str = ""


@dataclass
class StageResult:
    """One gate stage: its status, time, counts and failed checks."""

    name: str
    status: str = "pending"  # passed | failed | error | skipped | pending
    seconds: float = 0.0
    message: str = ""
    detail: str = ""
    checks: list[CheckOutcome] = field(default_factory=list)
    junit: str = ""

    def counts(self) -> dict[str, int]:
        """How many checks ended each way."""
        out: dict[str, int] = {}
        for check in self.checks:
            out[check.outcome] = out.get(check.outcome, 0) + 1
        return out


@dataclass
class GateResult:
    """Everything a CI step shows about one gate run."""

    project: str
    status: str = "running"
    exit_code: int = 0
    stages: list[StageResult] = field(default_factory=list)
    image: dict[str, Any] = field(default_factory=dict)
    pushed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def read_junit(path: Path) -> list[CheckOutcome]:
    """The test cases of a pytest JUnit file as check outcomes (stable ids: the test node id)."""
    if not path.is_file():
        return []
    root = ET.parse(path).getroot()
    out = []
    for case in root.iter("testcase"):
        classname = case.get("classname", "")
        name = case.get("name", "")
        check_id = f"{classname}::{name}" if classname else name
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = {"failure": "failed"}.get(tag, tag)
                message = _one_line(node.get("message") or node.text or "")
                break
        out.append(CheckOutcome(check_id, outcome, message))
    return out


def merge_junit(stages: list[StageResult], dest: Path) -> None:
    """One ``<testsuites>`` file with every stage's suites (CI test tabs read one file)."""
    merged = ET.Element("testsuites", name="imagegate")
    for stage in stages:
        if stage.junit and Path(stage.junit).is_file():
            root = ET.parse(stage.junit).getroot()
            suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
            for suite in suites:
                suite.set("name", f"{stage.name}")
                merged.append(suite)
        elif stage.status in ("failed", "error"):  # a stage that failed outside pytest
            suite = ET.SubElement(merged, "testsuite", name=stage.name, tests="1", failures="1")
            case = ET.SubElement(suite, "testcase", classname=stage.name, name=stage.name,
                                 time=f"{stage.seconds:.3f}")
            failure = ET.SubElement(case, "failure", message=stage.message)
            failure.text = stage.detail
    ET.ElementTree(merged).write(dest, encoding="utf-8", xml_declaration=True)


def write_all(result: GateResult, out_dir: Path) -> dict[str, Path]:
    """Write junit.xml, result.json and summary.md into ``out_dir``; also the CI step summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"junit": out_dir / "junit.xml", "json": out_dir / "result.json",
             "markdown": out_dir / "summary.md"}
    merge_junit(result.stages, paths["junit"])
    paths["json"].write_text(json.dumps(asdict(result), indent=2, default=str) + "\n")
    summary = markdown(result)
    paths["markdown"].write_text(summary)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a") as fh:
            fh.write(summary + "\n")
    return paths


def markdown(result: GateResult) -> str:
    """A summary fit for a CI step: verdict, image size vs budget, layers, stages, failures."""
    icon = {"passed": "✅", "failed": "❌", "error": "⛔", "skipped": "⏭️", "pending": "⏸️"}
    lines = [f"## imagegate: {icon.get(result.status, '')} {result.status.upper()} — "
             f"`{result.project}` ({result.seconds:.1f}s)", ""]
    img = result.image
    if img:
        size = img.get("size", 0) / 1e6
        budget = img.get("budget_mb", 0)
        lines += [f"**Image** `{img.get('id', '')[7:19]}` {img.get('tags', '')} — "
                  f"**{size:.1f} MB** of {budget:g} MB budget, {img.get('layers', '?')} layers "
                  f"(budget {img.get('layer_budget', '?')})", ""]
        if img.get("top_layers"):
            lines += ["| layer size | created by |", "|---:|---|"]
            lines += [f"| {lay['size'] / 1e6:.1f} MB | `{_cell(lay['created_by'])}` |"
                      for lay in img["top_layers"]]
            lines.append("")
    if result.pushed:
        lines += [f"**Pushed** `{result.pushed.get('ref')}` digest "
                  f"`{result.pushed.get('digest', '')}`", ""]
    lines += ["| stage | status | time | checks |", "|---|---|---:|---|"]
    for stage in result.stages:
        counts = ", ".join(f"{n} {k}" for k, n in sorted(stage.counts().items())) or "—"
        lines.append(f"| {stage.name} | {icon.get(stage.status, '')} {stage.status} | "
                     f"{stage.seconds:.1f}s | {counts} |")
    failed = [(s.name, c) for s in result.stages for c in s.checks
              if c.outcome in ("failed", "error")]
    broken = [s for s in result.stages if s.status in ("failed", "error") and not s.checks]
    if failed or broken:
        lines += ["", "### Failed checks", ""]
        lines += [f"- **{name}** `{c.id}`: {_cell(c.message)}" for name, c in failed]
        lines += [f"- **{s.name}**: {_cell(s.message)}" for s in broken]
    return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    """The first meaningful line of a failure message, trimmed."""
    for line in text.strip().splitlines():
        line = line.strip()
        if line and not line.startswith(("Traceback", "___")):
            return re.sub(r"\s+", " ", line)[:300]
    return ""


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell or list item."""
    return text.replace("|", "\\|").replace("\n", " ")[:200]
