"""SARIF 2.1.0 from findings, shaped the way GitHub code scanning reads it.

One run, ``tool.driver`` = imagegate, one rule per check id in the findings and one result per
failed finding. What GitHub needs, per its "SARIF support for code scanning" reference and the
upload action's source:

- every result has at least one location with ``physicalLocation.artifactLocation.uri`` and
  ``region.startLine`` (a result without one makes the whole upload fail:
  ``locationFromSarifResult: expected at least one location``). A finding about the image (a path
  in it, a config field) or a compose service is anchored on the file that made it — the
  Dockerfile, the compose file — and carries a ``logicalLocations`` entry naming what it is about;
- URIs are relative to the repository root (the git work tree around the project), with
  forward slashes, so the same finding has the same path on every run;
- ``partialFingerprints``: ``imagegate/v1`` on every result (check id, location and the message
  with its volatile parts folded: a rerun matches the same alert); ``primaryLocationLineHash``
  only for results on a logical location (``upload-sarif`` hashes the line of the others).
  Results anchored on a logical thing get one of their own (rule + that thing), else two findings
  of one rule on one Dockerfile line (two secret files in the image) would be one alert;
- rules carry ``shortDescription``, ``fullDescription``, ``help``, ``helpUri``,
  ``defaultConfiguration.level`` and ``properties.tags`` / ``precision`` /
  ``security-severity`` (security checks) or ``problem.severity`` (the rest).

Ignored findings are results with ``suppressions`` (kind ``external``, the ignore's origin as the
justification): SARIF viewers hide them. GitHub's ingestion does not read ``suppressions``; the
gate workflow dismisses those alerts through the code scanning API instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from imagegate.checks import catalogue
from imagegate.checks.catalogue import CheckSpec
from imagegate.model.compose import DEFAULT_FILES
from imagegate.model.dockerfile import parse
from imagegate.results.findings import Finding, Location
from imagegate.text import one_line

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/imagegate/imagegate"
SRCROOT = "%SRCROOT%"
#: Our severities → SARIF levels.
LEVELS = {"error": "error", "warning": "warning", "info": "note"}
#: The Compose spec's file names, in its order of preference.
COMPOSE_NAMES = DEFAULT_FILES  # the Compose spec's names, in compose's order

#: How sure a check is, by what it looked at (STYLE: a proved defect outranks a guess from text).
EVIDENCE = {
    "runtime": ("proved at run time", "very-high"),
    "layers": ("found in the image's files", "very-high"),
    "image": ("read from the image's config", "high"),
    "compose": ("read from the resolved compose model", "high"),
    "tests": ("the project's own tests", "high"),
    "dockerfile": ("read from the Dockerfile's text", "medium"),
}
#: GitHub reads ``security-severity`` as >= 9 critical, 7-8.9 high, 4-6.9 medium, < 4 low.
SECURITY_SEVERITY = {"error": "8.0", "warning": "5.0", "info": "2.0"}
PROBLEM_SEVERITY = {"error": "error", "warning": "warning", "info": "recommendation"}
#: Image config fields → the Dockerfile instruction that sets them (the result's line).
FIELD_INSTRUCTIONS = {
    "user": "USER", "healthcheck": "HEALTHCHECK", "cmd": "CMD", "entrypoint": "ENTRYPOINT",
    "exposedports": "EXPOSE", "env": "ENV", "labels": "LABEL", "workingdir": "WORKDIR",
    "volumes": "VOLUME", "stopsignal": "STOPSIGNAL", "shell": "SHELL",
}


def render(findings: Iterable[Finding], *, project_dir: Path, version: str,
           files: Mapping[str, Path] | None = None, source_root: Path | None = None,
           ) -> dict[str, Any]:
    """A SARIF 2.1.0 log (a JSON-ready dict) of ``findings``.

    ``files`` names the project's ``"dockerfile"`` and ``"compose"`` file (absolute or relative
    to ``project_dir``); findings about the image or a service are anchored on them.
    ``source_root`` is what URIs are relative to: by default the git work tree that holds
    ``project_dir`` (GitHub resolves paths from the repository root), else ``project_dir``.
    """
    findings = list(findings)
    project_dir = Path(project_dir).resolve()
    anchors = _Anchors(project_dir, files or {}, source_root)
    ids = _ordered_ids(f.check_id for f in findings)
    specs = {check_id: _spec(check_id, findings) for check_id in ids}
    index = {check_id: i for i, check_id in enumerate(ids)}
    rules = [_rule(specs[i], _rule_level(i, findings), findings) for i in ids]
    results = [_result(f, specs[f.check_id], index[f.check_id], anchors)
               for f in findings if _reported(f)]
    run: dict[str, Any] = {
        "tool": {"driver": {"name": "imagegate", "version": version,
                            "informationUri": INFORMATION_URI, "rules": rules}},
        "originalUriBaseIds": {SRCROOT: {"uri": anchors.root.as_uri() + "/"}},
        "results": results,
    }
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}


def write(path: Path, findings: Iterable[Finding], *, project_dir: Path, version: str,
          files: Mapping[str, Path] | None = None, source_root: Path | None = None) -> Path:
    """Render ``findings`` (see :func:`render`) into the file ``path``; returns it."""
    log = render(findings, project_dir=project_dir, version=version, files=files,
                 source_root=source_root)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(log, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def suppressed(finding: Finding) -> bool:
    """True for a failed finding the project chose to ignore (config, env, flag, inline)."""
    return not finding.ok and finding.skipped.startswith("ignored")


def _reported(finding: Finding) -> bool:
    """Failed findings are results; suppressed ones too (marked); passed and n/a ones are not."""
    return not finding.ok and (not finding.skipped or suppressed(finding))


# --- rules -----------------------------------------------------------------------------------

def _ordered_ids(ids: Iterable[str]) -> list[str]:
    """Unique check ids: catalogue order first, then the rest (hadolint's, a project's) sorted."""
    seen = set(ids)
    known = [i for i in catalogue.CATALOGUE if i in seen]
    return known + sorted(seen - set(known))


def _spec(check_id: str, findings: list[Finding]) -> CheckSpec:
    """The catalogue's spec; a project's own unknown id gets a plain one."""
    try:
        return catalogue.spec(check_id)
    except KeyError:
        stage = next((f.stage for f in findings if f.check_id == check_id and f.stage), "tests")
        return CheckSpec(id=check_id, title=check_id, stage=stage, evidence="tests",
                         baseline="warning")


def _severity(finding: Finding) -> str:
    """The severity ``finding`` was judged at; the catalogue's baseline when it was not judged."""
    if finding.severity in LEVELS:
        return finding.severity
    return catalogue.severity(finding.check_id) if catalogue.known(finding.check_id) else "warning"


def _rule_level(check_id: str, findings: list[Finding]) -> str:
    """The highest severity ``check_id``'s findings were judged at."""
    levels = [_severity(f) for f in findings if f.check_id == check_id]
    return max(levels, key=lambda s: catalogue.RANK[s])


#: Our own stable fingerprint of a result (code scanning matches results across runs by it).
FINGERPRINT = "imagegate/v1"
#: What changes between two runs of the same finding: ports, durations, sizes, ids, times.
_VOLATILE = re.compile(r"\b[0-9a-f]{12,64}\b|\d+(?:\.\d+)?|sha256:\S+")


def fingerprint(check_id: str, path: str, logical: str, message: str) -> str:
    """A stable id for one finding: its check, where it is, and its message with the volatile
    parts (numbers, hex ids, digests) folded, so a rerun matches the same alert."""
    normal = _VOLATILE.sub("#", " ".join(message.split()))
    return hashlib.sha256(f"{check_id}\0{path}\0{logical}\0{normal}".encode()).hexdigest()[:32]


def _rule(spec: CheckSpec, severity: str, findings: list[Finding]) -> dict[str, Any]:
    """The ``reportingDescriptor`` of one check."""
    title = spec.title
    if catalogue.HADOLINT_ID.match(spec.id):  # the catalogue only knows "hadolint DL3008"
        said = next((f.message for f in findings if f.check_id == spec.id and f.message), "")
        title = re.sub(r"^(error|warning|info|style):\s*", "", one_line(said, 1 << 30)) or title
    phrase, precision = EVIDENCE.get(spec.evidence, EVIDENCE["tests"])
    kind = spec.category
    tags = [kind, spec.stage] + (["hadolint"] if catalogue.HADOLINT_ID.match(spec.id) else [])
    properties: dict[str, Any] = {"tags": tags, "precision": precision}
    if kind == "security":
        properties["security-severity"] = SECURITY_SEVERITY[severity]
    else:
        properties["problem.severity"] = PROBLEM_SEVERITY[severity]
    return {
        "id": spec.id,
        "name": f"{spec.stage}/{_slug(spec)}"[:255],
        "shortDescription": {"text": title[:1024]},
        "fullDescription": {"text": f"Expected: {title}. Stage {spec.stage}; evidence: "
                                    f"{phrase}."[:1024]},
        "help": {"text": f"{spec.id}: {title}. See {spec.help_uri}",
                 "markdown": f"**{spec.id}**: {title}.\n\nEvidence: {phrase} "
                             f"(stage `{spec.stage}`). See [{spec.id}]({spec.help_uri})."},
        "helpUri": spec.help_uri,
        "defaultConfiguration": {"level": LEVELS[severity]},
        "properties": properties,
    }


def _slug(spec: CheckSpec) -> str:
    """``IG-RUN-HEALTHY`` (stage run) → ``healthy``; ``DL3008`` → ``dl3008``."""
    return spec.id.lower().removeprefix("ig-").removeprefix(f"{spec.stage}-")


# --- results ---------------------------------------------------------------------------------

def _result(finding: Finding, spec: CheckSpec, rule_index: int, anchors: _Anchors,
            ) -> dict[str, Any]:
    """The ``result`` of one failed (or failed and suppressed) finding."""
    path, line, logical = anchors.locate(finding, spec.stage)
    location: dict[str, Any] = {"physicalLocation": {
        "artifactLocation": {"uri": anchors.uri(path), "uriBaseId": SRCROOT},
        "region": {"startLine": max(line, 1)},
    }}
    text = one_line(finding.message, 1 << 30) or spec.title
    if logical:
        location["logicalLocations"] = [{"fullyQualifiedName": logical, "kind": "resource"}]
        shown = logical.split(":", 1)[1]
        text += "" if shown in text else f" (at {logical})"
    text += f" [evidence: {EVIDENCE.get(spec.evidence, EVIDENCE['tests'])[0]}]"
    result: dict[str, Any] = {
        "ruleId": spec.id,
        "ruleIndex": rule_index,
        "level": LEVELS[_severity(finding)],
        "message": {"text": text},
        "locations": [location],
    }
    result["partialFingerprints"] = {FINGERPRINT: fingerprint(spec.id, str(path), logical,
                                                             finding.message)}
    if logical:
        digest = hashlib.sha256(f"{spec.id}\0{logical}".encode()).hexdigest()[:16]
        result["partialFingerprints"]["primaryLocationLineHash"] = f"{digest}:1"
    if suppressed(finding):
        result["suppressions"] = [{"kind": "external", "status": "accepted",
                                   "justification": finding.skipped}]
    properties = {"stage": finding.stage or spec.stage, "evidence": spec.evidence,
                  "where": finding.where, "check": finding.name}
    result["properties"] = {k: v for k, v in properties.items() if v}
    return result



class _Anchors:
    """Where on disk a finding's location points: the file, the line, and a logical name."""

    def __init__(self, project_dir: Path, files: Mapping[str, Path],
                 source_root: Path | None) -> None:
        self.project_dir = project_dir
        self.root = Path(source_root).resolve() if source_root else _work_tree(project_dir)
        self.dockerfile = self._path(files.get("dockerfile") or "Dockerfile")
        compose = files.get("compose")
        if compose is None:
            compose = next((project_dir / n for n in COMPOSE_NAMES if (project_dir / n).is_file()),
                           None)
        self.compose = self._path(compose) if compose is not None else None
        self._texts: dict[Path, str] = {}

    def _path(self, path: Path | str) -> Path:
        """``path`` made absolute against the project directory."""
        path = Path(path)
        return path if path.is_absolute() else self.project_dir / path

    def text(self, path: Path) -> str:
        """The text of ``path`` ("" when unreadable), read once."""
        if path not in self._texts:
            try:
                self._texts[path] = path.read_text(errors="replace")
            except OSError:
                self._texts[path] = ""
        return self._texts[path]

    def uri(self, path: Path) -> str:
        """``path`` relative to the source root, with forward slashes."""
        try:
            relative = path.resolve().relative_to(self.root)
        except ValueError:
            relative = Path(os.path.relpath(path.resolve(), self.root))
        return relative.as_posix()

    def locate(self, finding: Finding, stage: str) -> tuple[Path, int, str]:
        """(file, line, logical name or "") for ``finding`` — always a file, never line 0."""
        loc: Location = finding.location
        if loc.file:
            path = self.file(loc.file)
            if loc.service:
                return path, self.service_line(path, loc.service), f"service:{loc.service}"
            return path, loc.line or 1, ""
        if loc.service:
            if self.compose is not None:
                return (self.compose, self.service_line(self.compose, loc.service),
                        f"service:{loc.service}")
            return self.dockerfile, self.instruction_line(""), f"service:{loc.service}"
        if loc.image_path:
            return self.dockerfile, self.instruction_line(""), f"image:{loc.image_path}"
        if loc.field:
            keyword = FIELD_INSTRUCTIONS.get(loc.field.split(".")[-1].lower(), "")
            return self.dockerfile, self.instruction_line(keyword), f"image:{loc.field}"
        if stage == "stack" and self.compose is not None:
            return self.compose, self.key_line(self.compose, "services") or 1, ""
        return self.dockerfile, self.instruction_line(""), ""

    def file(self, name: str) -> Path:
        """The file a finding names: a pytest node id's file, the project's file, or the
        Dockerfile / compose file it is the base name of (hadolint names just ``Dockerfile``)."""
        name = name.split("::", 1)[0]
        path = self._path(name)
        if path.exists():
            return path
        for known in (self.dockerfile, self.compose):
            if known is not None and known.name == Path(name).name:
                return known
        return path

    def instruction_line(self, keyword: str) -> int:
        """The line of the final stage's last ``keyword`` instruction; its FROM when it has none
        (or for no keyword): the stage that made the image is what a finding about it is on."""
        try:
            df = parse(self.text(self.dockerfile))
        except Exception:  # an unparsable Dockerfile still needs an anchor
            return 1
        if not df.stages:
            return 1
        chain = df.final_chain()
        lines = [i.line for i in chain if keyword and i.keyword == keyword]
        return lines[-1] if lines else df.stages[-1].start.line

    def service_line(self, compose: Path, service: str) -> int:
        """The line of ``service``'s key under ``services:`` (else of ``services:``, else 1)."""
        lines = self.text(compose).splitlines()
        start = self.key_line(compose, "services")
        indent = None
        for number, line in enumerate(lines[start:] if start else [], start + 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            width = len(line) - len(line.lstrip())
            if width == 0:
                break  # the next top-level key: the services block ended
            indent = width if indent is None else indent
            key = line.strip().split(":", 1)[0].strip().strip("'\"")
            if width == indent and key == service:
                return number
        pattern = re.compile(rf"^\s+['\"]?{re.escape(service)}['\"]?\s*:")
        return next((n for n, line in enumerate(lines, 1) if pattern.match(line)), start or 1)

    def key_line(self, path: Path, key: str) -> int:
        """The line of top-level ``key:`` in a YAML file, else 0."""
        pattern = re.compile(rf"^['\"]?{re.escape(key)}['\"]?\s*:")
        lines = self.text(path).splitlines()
        return next((n for n, line in enumerate(lines, 1) if pattern.match(line)), 0)


def _work_tree(path: Path) -> Path:
    """The git work tree holding ``path`` (the nearest parent with ``.git``), else ``path``."""
    for candidate in (path, *path.parents):
        if (candidate / ".git").exists():
            return candidate
    return path
