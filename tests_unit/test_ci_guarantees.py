"""A capability CI guarantees, missing: a failure naming it under CI=true, a skip elsewhere."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


@pytest.mark.parametrize(("env", "outcome"), [("true", "failed"), ("", "skipped")])
def test_a_missing_guarantee_fails_only_in_ci(pytester: pytest.Pytester,
                                              monkeypatch: pytest.MonkeyPatch, env: str,
                                              outcome: str) -> None:
    monkeypatch.setenv("CI", env)
    pytester.makepyfile(test_needs_root="""
        from testsupport import ci

        def test_needs_root():
            ci.missing("root", "needs root to make a network namespace")
    """)
    result = pytester.runpytest("-p", "no:randomly", "-rfs")
    result.assert_outcomes(**{outcome: 1})
    said = ("*CI guarantees root (the sandbox's user), and it is missing: needs root to make a "
            "network namespace*" if env else "*SKIPPED*needs root to make a network namespace*")
    result.stdout.fnmatch_lines([said])
