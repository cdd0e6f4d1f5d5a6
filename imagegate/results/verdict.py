"""From findings to a verdict: severities by profile, suppressions, and ``fail_on``.

Every check returns :class:`~imagegate.results.findings.Finding`s; a :class:`Judge` made from the resolved
settings (and the Dockerfile, for inline suppressions) gives each one its severity and turns an
ignored one into a skipped finding that says where it was ignored. The gate's verdict is
``fail_on`` applied to what is left — never a pytest exit code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path

from imagegate.checks import catalogue
from imagegate.config.settings import Settings, user_set
from imagegate.model.dockerfile import parse
from imagegate.results.findings import Finding


class Judge:
    """Severity and suppression rules of one project, applied to findings."""

    def __init__(self, settings: Settings, dockerfile: Path | None = None) -> None:
        self.settings = settings
        self.profile = settings.profile
        self.fail_on = settings.fail_on
        self._user_set = user_set(settings)
        source = settings.sources.get("ignore", "default")
        where = {"pyproject.toml": "pyproject.toml [tool.imagegate] ignore",
                 "env": "IMAGEGATE_IGNORE", "flag": "--ignore"}.get(source, source)
        #: id → where it was ignored (config, env, flag)
        self.ignored: dict[str, str] = {check_id: where for check_id in settings.ignore}
        #: id → Dockerfile lines of the instructions an inline ``# imagegate ignore=`` precedes
        self.inline: dict[str, list[int]] = {}
        self.dockerfile_name = ""
        if dockerfile is not None and dockerfile.is_file():
            self.dockerfile_name = dockerfile.name
            self.inline = parse(dockerfile.read_text(errors="replace")).suppressions

    def suppression(self, check_id: str, where: str = "") -> str:
        """Why ``check_id`` (at ``where``) is not judged, or "" when it is.

        Config, env and flag ignores cover the id everywhere. An inline ignore covers the
        instruction it precedes; a check that judges the whole image (no Dockerfile line) is
        covered by an inline ignore anywhere in the Dockerfile.
        """
        if check_id in self.ignored:
            return f"ignored in {self.ignored[check_id]}"
        lines = self.inline.get(check_id)
        if not lines:
            return ""
        head, _, tail = where.rpartition(":")
        on_line = tail.isdigit() and head.endswith(self.dockerfile_name)
        if on_line and int(tail) not in lines:
            return ""
        line = int(tail) if on_line else lines[0]
        return f"ignored by `# imagegate ignore={check_id}` before {self.dockerfile_name}:{line}"

    def severity(self, finding: Finding) -> str:
        """The severity ``finding`` has under this project's profile and overrides.

        hadolint findings arrive with hadolint's own level (already lowered to ``info`` under
        the hadolint config's ``failure-threshold``) in ``finding.severity``.
        """
        if not catalogue.known(finding.check_id):
            return finding.severity or "error"
        return catalogue.severity(finding.check_id, self.profile,
                                  overrides=self.settings.severity, user_set=self._user_set,
                                  hadolint_level=finding.severity or "warning")

    def judge(self, finding: Finding) -> Finding:
        """``finding`` with its severity set, or skipped when it is suppressed."""
        judged = replace(finding, severity=self.severity(finding))
        if not judged.skipped:
            why = self.suppression(finding.check_id, finding.where)
            if why:
                judged = replace(judged, skipped=why)
        return judged

    def judge_all(self, findings: Iterable[Finding]) -> list[Finding]:
        """:meth:`judge` on each finding."""
        return [self.judge(f) for f in findings]

    def fails(self, finding: Finding) -> bool:
        """True when ``finding`` failed, is not skipped, and reaches ``fail_on``."""
        return (not finding.ok and not finding.skipped
                and catalogue.at_least(finding.severity or "error", self.fail_on))


def fails(finding: Finding, fail_on: str) -> bool:
    """True when a judged ``finding`` failed, is not skipped, and reaches ``fail_on``."""
    return (not finding.ok and not finding.skipped
            and catalogue.at_least(finding.severity or "error", fail_on))


#: The order counts are shown in: what fails first, what passed last.
TALLY_ORDER = ("failed", "error", "warning", "info", "passed", "skipped")


def tally(findings: Iterable[Finding], fail_on: str) -> dict[str, int]:
    """Counts for a report line, in :data:`TALLY_ORDER`: failing (≥ fail_on), each severity of
    the others, passed, skipped."""
    counts: Counter[str] = Counter()
    for f in findings:
        if f.skipped:
            counts["skipped"] += 1
        elif f.ok:
            counts["passed"] += 1
        elif fails(f, fail_on):
            counts["failed"] += 1
        else:
            counts[f.severity or "warning"] += 1
    return {key: counts[key] for key in TALLY_ORDER if counts[key]}


def by_outcome(findings: Iterable[Finding], fail_on: str) -> Mapping[str, list[Finding]]:
    """Findings grouped for a report: failed (≥ fail_on), warning, info, skipped."""
    groups: dict[str, list[Finding]] = {"failed": [], "warning": [], "info": [], "skipped": []}
    for f in findings:
        if f.skipped:
            groups["skipped"].append(f)
        elif f.ok:
            continue
        elif fails(f, fail_on):
            groups["failed"].append(f)
        else:
            groups["info" if f.severity == "info" else "warning"].append(f)
    return groups


#: Checks that see one defect from different evidence, strongest evidence first (a proof at
#: run time, then the image's files and config, then the Dockerfile's text): one edit fixes
#: them all, so a report shows them as one finding.
SAME_DEFECT: tuple[tuple[str, ...], ...] = (
    ("IG-CMD-EXEC", "IG-LINT-CMD-SHELL", "DL3025"),
    ("IG-HEALTHCHECK", "IG-LINT-HEALTHCHECK-MISSING"),
    ("IG-RUN-APP-NOT-WRITABLE", "IG-APP-NOT-WRITABLE"),
    ("IG-RUN-USER-NONROOT", "IG-USER-NONROOT", "IG-LINT-USER-ROOT", "IG-LINT-USER-MISSING",
     "DL3002"),
)


def fold(findings: Iterable[Finding]) -> list[Finding]:
    """One finding per defect (see :data:`SAME_DEFECT`): where checks of one group failed, the
    first failure of the strongest evidence stands for them all — its severity the group's
    highest, its message naming the others and where they saw it — and each other failure stays
    in the list as a skipped finding that says which one it was folded into, so every report
    still accounts for every check. Findings outside the groups are returned unchanged."""
    found = list(findings)
    out = list(found)
    for group in SAME_DEFECT:
        failing = [f for f in found if f.check_id in group and not f.ok and not f.skipped]
        ids = {f.check_id for f in failing}
        if len(ids) < 2:
            continue
        lead_id = next(cid for cid in group if cid in ids)
        lead = next(f for f in failing if f.check_id == lead_id)
        others = [f for f in failing if f.check_id != lead_id]
        worst = max((f.severity or "error" for f in [lead, *others]),
                    key=lambda s: catalogue.RANK.get(s, 3))
        named = ", ".join(dict.fromkeys(
            f"{f.check_id}" + (f" [{f.where}]" if f.where else "") for f in others))
        merged = replace(lead, severity=worst,
                         message=f"{lead.message} (one fix; also seen as {named})")
        for index, f in enumerate(out):
            if f is lead:
                out[index] = merged
            elif f in others:
                out[index] = replace(f, ok=True, skipped=f"folded into {lead_id}: the same "
                                     "defect, reported once at the strongest evidence")
    return out
