"""Gate reports, all rendered from the same findings: JUnit XML, a JSON result, a Markdown CI
step summary, and SARIF 2.1.0 for code scanning."""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from imagegate import __version__
from imagegate.results import verdict
from imagegate.results.findings import Finding


@dataclass
class StageResult:
    """One gate stage: its status, time, message and the findings it produced."""

    name: str
    status: str = "pending"  # passed | failed | error | skipped | pending
    seconds: float = 0.0
    message: str = ""
    detail: str = ""
    findings: list[Finding] = field(default_factory=list)

    def counts(self, fail_on: str = "error") -> dict[str, int]:
        """How many findings ended each way (failed = at or above ``fail_on``)."""
        return verdict.tally(self.findings, fail_on)


@dataclass
class GateResult:
    """Everything a CI step shows about one gate run."""

    project: str
    status: str = "running"
    exit_code: int = 0
    fail_on: str = "error"
    profile: str = "baseline"
    stages: list[StageResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    image: dict[str, Any] = field(default_factory=dict)
    pushed: dict[str, str] = field(default_factory=dict)
    settings: list[str] = field(default_factory=list)
    seconds: float = 0.0


def junit(result: GateResult) -> ET.Element:
    """One ``<testsuites>``: a suite per stage, a test case per finding.

    A finding at or above ``fail_on`` is a ``<failure>``; a suppressed or not-applicable one
    is ``<skipped>``; a warning below ``fail_on`` passes with its text in ``<system-out>`` (JUnit
    has no warnings). A stage that failed outside any check is a failing case of its own.
    """
    root = ET.Element("testsuites", name="imagegate")
    for stage in result.stages:
        suite = ET.SubElement(root, "testsuite", name=stage.name, time=f"{stage.seconds:.3f}")
        cases = 0
        failures = skipped = 0
        for f in stage.findings:
            cases += 1
            name = f"{f.check_id} {f.where}".strip() if f.check_id != "IG-PROJECT-TEST" \
                else f.name or f.where
            case = ET.SubElement(suite, "testcase", classname=f"{stage.name}.{f.check_id}",
                                 name=name)
            if f.skipped:
                skipped += 1
                ET.SubElement(case, "skipped", message=f.skipped)
            elif verdict.fails(f, result.fail_on):
                failures += 1
                node = ET.SubElement(case, "failure", message=f"{f.severity}: {f.message}",
                                     type=f.severity)
                node.text = f.detail or f.message
            elif not f.ok:
                out = ET.SubElement(case, "system-out")
                out.text = f"{f.severity}: {f.message}"
        if stage.status in ("failed", "error") and not any(
                verdict.fails(f, result.fail_on) for f in stage.findings):
            cases += 1
            failures += 1
            case = ET.SubElement(suite, "testcase", classname=stage.name, name=stage.name,
                                 time=f"{stage.seconds:.3f}")
            node = ET.SubElement(case, "failure", message=stage.message or stage.status)
            node.text = stage.detail
        suite.set("tests", str(cases))
        suite.set("failures", str(failures))
        suite.set("skipped", str(skipped))
    return root


def write_all(result: GateResult, out_dir: Path, *, project_dir: Path,
              files: dict[str, Path] | None = None) -> dict[str, Path]:
    """Write junit.xml, result.json, summary.md and imagegate.sarif into ``out_dir``; append
    the summary to ``$GITHUB_STEP_SUMMARY`` when set."""
    from imagegate.results import sarif

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out_dir / "summary.md", "junit": out_dir / "junit.xml",
             "json": out_dir / "result.json", "sarif": out_dir / "imagegate.sarif"}
    ET.ElementTree(junit(result)).write(paths["junit"], encoding="utf-8", xml_declaration=True)
    data = asdict(result)
    data["counts"] = verdict.tally(result.findings, result.fail_on)
    paths["json"].write_text(json.dumps(data, indent=2, default=str) + "\n")
    summary = markdown(result)
    paths["markdown"].write_text(summary)
    sarif.write(paths["sarif"], result.findings, project_dir=project_dir, version=__version__,
                files=files or {})
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a") as fh:
            fh.write(summary + "\n")
    return paths


ICON = {"passed": "✅", "failed": "❌", "error": "⛔", "skipped": "⏭️", "pending": "⏸️"}


def markdown(result: GateResult) -> str:
    """A summary fit for a CI step: verdict, image size vs budget, layers, stages, then the
    failed checks, the warnings and the advice, each in its own section."""
    lines = [f"## imagegate: {ICON.get(result.status, '')} {result.status.upper()} — "
             f"`{result.project}` ({result.seconds:.1f}s)", "",
             f"Profile **{result.profile}**, failing on **{result.fail_on}** and above.", ""]
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
        lines += [f"**Pushed** `{result.pushed.get('ref')}@{result.pushed.get('digest', '')}`",
                  ""]
    lines += ["| stage | status | time | findings |", "|---|---|---:|---|"]
    for stage in result.stages:
        counts = ", ".join(f"{n} {k}" for k, n in stage.counts(result.fail_on).items())
        note = f" — {_cell(stage.message)}" if stage.message and stage.status == "skipped" else ""
        lines.append(f"| {stage.name} | {ICON.get(stage.status, '')} {stage.status}{note} | "
                     f"{stage.seconds:.1f}s | {counts or '—'} |")
    groups = verdict.by_outcome(result.findings, result.fail_on)
    broken = [s for s in result.stages if s.status in ("failed", "error")
              and not any(verdict.fails(f, result.fail_on) for f in s.findings)]
    if groups["failed"] or broken:
        lines += ["", "### Failed", ""]
        lines += [f"- `{f.check_id}` ({f.severity}){_at(f)}: {_cell(f.message)}"
                  for f in groups["failed"]]
        lines += [f"- **{s.name}**: {_cell(s.message)}" for s in broken]
    for title, key in (("Warnings", "warning"), ("Advice (info)", "info")):
        if groups[key]:
            lines += ["", f"### {title}", ""]
            lines += [f"- `{f.check_id}`{_at(f)}: {_cell(f.message)}" for f in groups[key]]
    ignored = [f for f in groups["skipped"] if f.skipped.startswith("ignored")]
    if ignored:
        lines += ["", "### Ignored", ""]
        lines += [f"- `{f.check_id}`: {_cell(f.skipped)}" for f in ignored]
    return "\n".join(lines) + "\n"


def _at(f: Finding) -> str:
    """`` at <where>`` for a list item (a project test: its node id), or nothing."""
    if f.check_id == "IG-PROJECT-TEST":
        return f" `{_cell(f.name or f.where)}`"
    return f" at `{_cell(f.where)}`" if f.where else ""


def _one_line(text: str) -> str:
    """The first meaningful line of a failure message, trimmed."""
    for line in text.strip().splitlines():
        line = line.strip()
        if line and not line.startswith(("Traceback", "___")):
            return re.sub(r"\s+", " ", line)[:300]
    return ""


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell or list item."""
    return text.replace("|", "\\|").replace("\n", " ")[:300]
