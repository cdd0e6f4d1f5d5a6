"""Generic Dockerfile lint checks: hadolint, and each check hadolint misses, one test per id."""

from __future__ import annotations

from typing import Any

import pytest

from imagegate import lint
from imagegate.findings import Finding

#: The checks imagegate adds to hadolint; every id is its own test so reports can name it.
EXTRA_IDS = [
    "IG-LINT-USER-MISSING", "IG-LINT-USER-ROOT", "IG-LINT-SECRET", "IG-LINT-ADD-URL",
    "IG-LINT-CMD-SHELL", "IG-LINT-HEALTHCHECK-MISSING", "IG-LINT-BUILDKIT-SYNTAX",
]


@pytest.fixture(scope="module")
def lint_findings(imagegate_settings: Any) -> list[Finding]:
    """Every finding of the project's Dockerfile, run once (hadolint's config beside it)."""
    dockerfile = imagegate_settings.path(imagegate_settings.dockerfile)
    config = imagegate_settings.project_dir / ".hadolint.yaml"
    return lint.lint(dockerfile, config=config if config.is_file() else None,
                     ignore=imagegate_settings.ignore)


def _fail_on(findings: list[Finding]) -> None:
    """Fail naming every finding, one line each."""
    __tracebackhide__ = True
    if findings:
        pytest.fail("\n".join(str(f) for f in findings), pytrace=False)


def test_hadolint(lint_findings: list[Finding]) -> None:
    """hadolint (DL*/SC* rules) reports nothing at or above the failure threshold."""
    _fail_on([f for f in lint_findings if not f.ok and not f.check_id.startswith("IG-")])


@pytest.mark.parametrize("check_id", EXTRA_IDS)
def test_extra(check_id: str, lint_findings: list[Finding], imagegate_settings: Any) -> None:
    """The imagegate lint check ``check_id`` finds nothing."""
    if imagegate_settings.ignored(check_id):
        pytest.skip(f"{check_id} is on the ignore list")
    _fail_on([f for f in lint_findings if not f.ok and f.check_id == check_id])
