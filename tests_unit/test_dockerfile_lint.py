"""The generic lint checks, run on this repo's Dockerfile (the gate's lint stage runs this suite)."""

from __future__ import annotations

from imagegate.checks.test_lint import lint_findings, test_extra, test_hadolint  # noqa: F401
