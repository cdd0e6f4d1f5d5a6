"""Severities, profiles, fail_on and suppressions: the catalogue and the Judge, Docker-free."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagegate.checks import catalogue
from imagegate.config import settings
from imagegate.errors import UsageError
from imagegate.results.findings import Finding
from imagegate.results.verdict import Judge, by_outcome, fails, tally

#: What the severities issue calls defects with evidence: errors at the baseline profile.
BASELINE_ERRORS = {
    "IG-LINT-HADOLINT", "IG-LINT-SECRET", "IG-LINT-BUILDKIT-SYNTAX", "IG-BUILD", "IG-CMD-EXISTS",
    "IG-NO-SECRET-FILES", "IG-NO-SECRET-ENV", "IG-RUN-HEALTHY", "IG-RUN-USER-NONROOT",
    "IG-RUN-PROCS-NONROOT", "IG-RUN-PORT-LISTENING", "IG-RUN-HTTP-HEALTH", "IG-STACK-HEALTHY",
    "IG-STACK-WEB-NONROOT", "IG-STACK-NOT-PRIVILEGED", "IG-STACK-HTTP", "IG-STACK-SOURCE-MOUNT",
    "IG-PROJECT-TEST", "IG-FLASK-DEBUGGER", "IG-FLASK-DEV-SERVER", "IG-FLASK-SECRET-KEY",
    "IG-FLASK-ROUTES",
}


def project(tmp_path: Path, table: str = "", dockerfile: str = "FROM scratch\n") -> settings.Settings:
    """Settings of a project in tmp_path with ``[tool.imagegate]`` = ``table``."""
    (tmp_path / "pyproject.toml").write_text(f"[tool.imagegate]\n{table}\n")
    (tmp_path / "Dockerfile").write_text(dockerfile)
    return settings.load(tmp_path, environ={})


def judge(tmp_path: Path, table: str = "", dockerfile: str = "FROM scratch\n") -> Judge:
    """A Judge for such a project (its Dockerfile read for inline suppressions)."""
    s = project(tmp_path, table, dockerfile)
    return Judge(s, tmp_path / "Dockerfile")


def test_every_check_has_a_severity_per_profile() -> None:
    """Every catalogue id has a valid severity in each profile, a title, a stage and evidence."""
    for spec in catalogue.CATALOGUE.values():
        assert spec.baseline in catalogue.SEVERITIES and spec.hardened in catalogue.SEVERITIES
        assert spec.title and spec.stage in ("lint", "build", "image", "run", "stack", "tests")
        assert spec.id.startswith("IG-") and spec.help_uri.startswith("https://")


#: Checks about what the gate builds and runs but does not gate: advice at every profile.
ADVICE_ONLY = {"IG-LINT-SERVICES": "info", "IG-PACKAGED-KEYS": "warning",
               "IG-LINT-FLASK-SOURCE": "warning"}


def test_baseline_errors_are_the_defects_with_evidence() -> None:
    """At baseline exactly the defects are errors; everything else is advice (a warning)."""
    errors = {cid for cid in catalogue.CATALOGUE if catalogue.severity(cid, "baseline") == "error"}
    assert errors == BASELINE_ERRORS
    others = {cid: catalogue.severity(cid, "baseline") for cid in catalogue.CATALOGUE
              if cid not in errors}
    assert {cid for cid, level in others.items() if level != "warning"} == {
        cid for cid, level in ADVICE_ONLY.items() if level != "warning"}
    assert {cid: others[cid] for cid in ADVICE_ONLY} == ADVICE_ONLY


def test_hardened_makes_every_hardening_check_an_error() -> None:
    """hardened: every check that warns at baseline is an error; advice about what is not
    gated (the other services' Dockerfiles) stays advice."""
    for cid in catalogue.CATALOGUE:
        expected = ADVICE_ONLY.get(cid, "error")
        assert catalogue.severity(cid, "hardened") == expected, cid


@pytest.mark.parametrize(("level", "profile", "expected"), [
    ("error", "baseline", "error"), ("warning", "baseline", "warning"),
    ("info", "baseline", "info"), ("style", "baseline", "info"),
    ("warning", "hardened", "error"), ("info", "hardened", "info"),
])
def test_hadolint_levels_map_in(level: str, profile: str, expected: str) -> None:
    """hadolint rules take hadolint's level; hardened makes its warnings errors."""
    assert catalogue.severity("DL3008", profile, hadolint_level=level) == expected


@pytest.mark.parametrize(("severity", "fail_on", "expected"), [
    ("error", "error", True), ("warning", "error", False), ("info", "error", False),
    ("error", "warning", True), ("warning", "warning", True), ("info", "warning", False),
    ("info", "info", True),
])
def test_fail_on_thresholds(severity: str, fail_on: str, expected: bool) -> None:
    """A failed finding fails the verdict when its severity reaches fail_on; a pass never does."""
    finding = Finding("IG-LABELS", False, "m", severity=severity)
    assert fails(finding, fail_on) is expected
    assert not fails(Finding("IG-LABELS", True, "m", severity=severity), fail_on)
    assert not fails(Finding("IG-LABELS", False, "m", severity=severity, skipped="x"), fail_on)


def test_a_budget_the_user_set_is_an_error(tmp_path: Path) -> None:
    """Default budgets are advice; a budget in pyproject (or a flag) is a promise."""
    over = Finding("IG-SIZE-BUDGET", False, "too big")
    assert judge(tmp_path).judge(over).severity == "warning"
    assert judge(tmp_path, "size_budget_mb = 50").judge(over).severity == "error"
    s = settings.load(tmp_path, {"layer_budget": 3}, environ={})
    assert Judge(s).judge(Finding("IG-LAYER-BUDGET", False, "m")).severity == "error"


def test_severity_override_and_profile(tmp_path: Path) -> None:
    """[tool.imagegate.severity] wins over the profile, in both directions."""
    j = judge(tmp_path, 'profile = "hardened"\n[tool.imagegate.severity]\nIG-LABELS = "info"\n'
                        'IG-RUN-PIP-CHECK = "error"')
    assert j.judge(Finding("IG-LABELS", False, "m")).severity == "info"
    assert j.judge(Finding("IG-USER-NUMERIC", False, "m")).severity == "error"
    # upward at baseline, where IG-RUN-PIP-CHECK is a warning: the override makes it an error
    # (a catalogue ignoring "error" overrides went unnoticed: hardened made it one anyway)
    base = judge(tmp_path, '[tool.imagegate.severity]\nIG-RUN-PIP-CHECK = "error"\n'
                           'DL3008 = "error"')
    assert catalogue.severity("IG-RUN-PIP-CHECK", "baseline") == "warning"
    assert base.judge(Finding("IG-RUN-PIP-CHECK", False, "m")).severity == "error"
    assert base.fails(base.judge(Finding("IG-RUN-PIP-CHECK", False, "m")))
    assert base.judge(Finding("DL3008", False, "pin", "Dockerfile:3",
                              severity="warning")).severity == "error"


def test_config_ignore_skips_with_where(tmp_path: Path) -> None:
    """An ignored id is skipped, saying where it was ignored; other ids are judged."""
    j = judge(tmp_path, 'ignore = ["IG-RUN-NO-BUILD-TOOLS", "DL3008"]')
    skipped = j.judge(Finding("IG-RUN-NO-BUILD-TOOLS", False, "pip on PATH"))
    assert skipped.skipped == "ignored in pyproject.toml [tool.imagegate] ignore"
    assert j.judge(Finding("DL3008", False, "pin", "Dockerfile:3", severity="warning")).skipped
    assert not j.judge(Finding("IG-LABELS", False, "m")).skipped


def test_env_and_flag_ignores_say_so(tmp_path: Path) -> None:
    """The ignore's source is named: IMAGEGATE_IGNORE or --ignore."""
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    env = settings.load(tmp_path, environ={"IMAGEGATE_IGNORE": "IG-LABELS"})
    assert Judge(env).suppression("IG-LABELS") == "ignored in IMAGEGATE_IGNORE"
    flag = settings.load(tmp_path, {"ignore": ("IG-LABELS",)}, environ={})
    assert Judge(flag).suppression("IG-LABELS") == "ignored in --ignore"


INLINE = """FROM python:3.11-slim
# imagegate ignore=DL3008,IG-LINT-SECRET
RUN apt-get update && apt-get install -y curl
ENV API_TOKEN=abc123
# imagegate ignore=IG-USER-NUMERIC
USER app
"""


def test_inline_ignore_covers_the_next_instruction_only(tmp_path: Path) -> None:
    """`# imagegate ignore=ID` covers the instruction after it: the same id elsewhere counts."""
    j = judge(tmp_path, dockerfile=INLINE)
    at_run = Finding("DL3008", False, "pin", "Dockerfile:3", severity="warning")
    assert j.judge(at_run).skipped == ("ignored by `# imagegate ignore=DL3008` before "
                                       "Dockerfile:3")
    assert not j.judge(Finding("IG-LINT-SECRET", False, "token", "Dockerfile:4")).skipped
    assert j.judge(Finding("IG-LINT-SECRET", False, "x", "Dockerfile:3")).skipped


def test_inline_ignore_of_an_image_check(tmp_path: Path) -> None:
    """A check on the whole image (no Dockerfile line) is covered by an inline ignore of its id."""
    j = judge(tmp_path, dockerfile=INLINE)
    judged = j.judge(Finding("IG-USER-NUMERIC", False, "USER 'app' is a name", "Config.User"))
    assert judged.skipped == "ignored by `# imagegate ignore=IG-USER-NUMERIC` before Dockerfile:6"


@pytest.mark.parametrize(("table", "says"), [
    ('ignore = ["IG-RUN-NO-BUILD-TOLS"]', "unknown check id IG-RUN-NO-BUILD-TOLS"),
    ('ignore = ["DL30"]', "unknown check id DL30"),
    ('profile = "strict"', "profile = 'strict'"),
    ('fail_on = "warn"', "fail_on = 'warn'"),
    ('builder = "kaniko"', "builder = 'kaniko'"),
    ('pull = "sometimes"', "pull = 'sometimes'"),
    ('hermetic = "maybe"', "hermetic: bad value 'maybe'"),
    ('[tool.imagegate.severity]\nIG-NOPE = "error"', "severity: unknown check id IG-NOPE"),
    ('[tool.imagegate.severity]\nIG-LABELS = "fatal"', "expected error, warning or info"),
])
def test_bad_verdict_settings_are_one_line_errors(tmp_path: Path, table: str, says: str) -> None:
    """A typo must not silently ignore nothing or judge nothing: one UsageError line."""
    with pytest.raises(UsageError) as info:
        project(tmp_path, table)
    assert says in info.value.message and "\n" not in info.value.message


def test_tally_and_groups() -> None:
    """Counts and report groups split by fail_on: failed, warnings, info, skipped, passed."""
    found = [Finding("A", False, "x", severity="error"), Finding("B", False, "y",
             severity="warning"), Finding("C", False, "z", severity="info"),
             Finding("D", True, "ok"), Finding("E", True, "s", skipped="ignored in x")]
    assert tally(found, "error") == {"failed": 1, "warning": 1, "info": 1, "passed": 1,
                                     "skipped": 1}
    assert tally(found, "warning")["failed"] == 2
    groups = by_outcome(found, "error")
    assert [f.check_id for f in groups["failed"]] == ["A"]
    assert [f.check_id for f in groups["warning"]] == ["B"]


def test_docs_tables_are_generated() -> None:
    """The check list (docs/checks.md) and the settings table (docs/settings.md) are what the
    code says (`make docs`)."""
    from imagegate import docs

    root = Path(__file__).resolve().parents[1]
    checks = (root / "docs/checks.md").read_text()
    settings_page = (root / "docs/settings.md").read_text()
    assert catalogue.markdown() in checks and settings.markdown() in settings_page
    for text in (checks, settings_page):
        assert docs.render(text) == text, "docs tables are stale: run `make docs`"


def test_one_fix_one_finding() -> None:
    """A shell-form CMD seen by the image's config, the lint and hadolint is one finding at the
    strongest evidence, naming the others, at the group's highest severity; the others stay as
    skips saying where they went; a group with one failing check and other checks are left."""
    from imagegate.results.verdict import fold

    found = [
        Finding("DL3025", False, "Use arguments JSON notation", "Dockerfile:54", severity="warning"),
        Finding("IG-LINT-CMD-SHELL", False, "CMD is in shell form", "Dockerfile:54",
                severity="error"),
        Finding("IG-CMD-EXEC", False, "Cmd is shell form", "Config.Cmd", severity="warning"),
        Finding("IG-HEALTHCHECK", False, "no HEALTHCHECK", "Config.Healthcheck",
                severity="warning"),
        Finding("IG-LABELS", False, "title missing", "Config.Labels", severity="warning"),
    ]
    folded = fold(found)
    lead = folded[2]
    assert (lead.check_id, lead.severity, lead.ok) == ("IG-CMD-EXEC", "error", False)
    assert lead.message == ("Cmd is shell form (one fix; also seen as DL3025 [Dockerfile:54], "
                            "IG-LINT-CMD-SHELL [Dockerfile:54])")
    assert [(f.check_id, f.ok, f.skipped.split(":")[0]) for f in folded[:2]] == [
        ("DL3025", True, "folded into IG-CMD-EXEC"),
        ("IG-LINT-CMD-SHELL", True, "folded into IG-CMD-EXEC")]
    assert folded[3:] == found[3:]  # IG-HEALTHCHECK alone in its group; IG-LABELS in none
    assert [f for f in folded if not f.ok and not f.skipped] == [lead, *found[3:]]
