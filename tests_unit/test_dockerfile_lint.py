"""The generic lint checks, run on this repo's Dockerfile by `make test` (the gate runs them on
their own, isolated, and deselects these copies)."""

from __future__ import annotations

from imagegate.suites.test_lint import (  # noqa: F401
    dockerfile,
    test_extra,
    test_hadolint,
)
