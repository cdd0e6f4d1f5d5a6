"""The plugin as a pytest citizen, run on small suites with pytester (no Docker needed)."""

from __future__ import annotations

import json

import pytest

pytest_plugins = ["pytester"]

STRICT_INI = """
[tool.pytest.ini_options]
addopts = "-x --strict-config --strict-markers -p no:randomly"
filterwarnings = ["error"]
"""


def test_plain_pytest_is_unchanged_without_imagegate_config(pytester: pytest.Pytester) -> None:
    """A project that merely has imagegate installed: no header, no settings errors, SIGTERM
    untouched, testinfra's host stays the local machine."""
    pytester.makefile(".toml", pyproject=STRICT_INI)
    pytester.makepyfile(test_plain="""
        import signal

        def test_sigterm_untouched():
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

        def test_testinfra_host_is_local(host):
            assert host.backend.NAME == "local"
    """)
    result = pytester.runpytest()
    result.assert_outcomes(passed=2)
    assert "imagegate session" not in result.stdout.str()
    assert "imagegate project" not in result.stdout.str()


def test_broken_imagegate_config_does_not_break_plain_tests(pytester: pytest.Pytester) -> None:
    """A bad [tool.imagegate] only fails the tests that use imagegate fixtures, with one line."""
    pytester.makefile(".toml", pyproject=STRICT_INI.replace("-x ", "") + "[tool.imagegate]\n"
                      "web_prot = 1\n")
    pytester.makepyfile(test_mixed="""
        def test_plain():
            assert True

        def test_uses_settings(imagegate_settings):
            pass
    """)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*imagegate: *unknown key [[]tool.imagegate[]] 'web_prot'*"])


CHECKS = """
import pytest

@pytest.mark.imagegate_check("IG-LABELS")
def test_labels():
    assert False, "org.opencontainers.image.revision missing"

@pytest.mark.imagegate_check("IG-NO-SECRET-ENV")
def test_secret():
    assert False, "Config.Env API_TOKEN looks secret"

@pytest.mark.imagegate_check("IG-USER-NUMERIC")
def test_user(imagegate_record):
    from imagegate.results.findings import Finding
    imagegate_record([Finding("IG-USER-NUMERIC", False, "USER 'app' is a name", "Config.User")])

@pytest.mark.imagegate_check("IG-RUN-NO-BUILD-TOOLS")
def test_tools():
    assert False, "pip on PATH"

def test_project_own():
    assert 1 + 1 == 2
"""


def _checks_project(pytester: pytest.Pytester, table: str) -> None:
    """A project whose pyproject configures imagegate (and the strict pytest ini)."""
    pytester.makefile(".toml", pyproject=STRICT_INI.replace("-x ", "")
                      + f"[tool.imagegate]\nweb_port = 8000\n{table}\n")
    (pytester.path / "Dockerfile").write_text("FROM scratch\n"
                                              "# imagegate ignore=IG-RUN-NO-BUILD-TOOLS\nUSER 1\n")
    pytester.makepyfile(test_checks=CHECKS)


def test_severity_decides_the_outcome(pytester: pytest.Pytester) -> None:
    """At baseline a failing warning-level check passes with advice listed; an error fails; an
    inline-ignored check is skipped saying where; every outcome lands in the findings file."""
    _checks_project(pytester, "")
    out = pytester.path / "findings.jsonl"
    result = pytester.runpytest(f"--imagegate-findings={out}", "-rs")
    result.assert_outcomes(passed=3, failed=1, skipped=1)
    result.stdout.fnmatch_lines([
        "*imagegate*", "warning: IG-LABELS: org.opencontainers.image.revision missing",
        "*IG-RUN-NO-BUILD-TOOLS ignored by `# imagegate ignore=IG-RUN-NO-BUILD-TOOLS` before "
        "Dockerfile:3*",
    ])
    found = {f["check_id"]: f for f in map(json.loads, out.read_text().splitlines())}
    assert found["IG-LABELS"]["severity"] == "warning" and not found["IG-LABELS"]["ok"]
    assert found["IG-NO-SECRET-ENV"]["severity"] == "error"
    assert found["IG-USER-NUMERIC"]["where"] == "Config.User"
    assert found["IG-RUN-NO-BUILD-TOOLS"]["skipped"].startswith("IG-RUN-NO-BUILD-TOOLS ignored")
    assert found["IG-PROJECT-TEST"]["ok"] and found["IG-PROJECT-TEST"]["name"].endswith(
        "test_project_own")


def test_xdist_workers_have_their_own_sessions_and_one_findings_file(
        pytester: pytest.Pytester) -> None:
    """Under ``-n 2`` each worker labels (and so cleans up) only its own session, and the
    findings of both land in the one file the gate reads."""
    _checks_project(pytester, "")
    pytester.makepyfile(test_session="""
def test_session(imagegate_session):
    import os
    print("SESSION", imagegate_session, os.environ["PYTEST_XDIST_WORKER"])
    assert imagegate_session == "gate-run-" + os.environ["PYTEST_XDIST_WORKER"]
""")
    out = pytester.path / "findings.jsonl"
    result = pytester.runpytest_subprocess("-n", "2", "-p", "xdist", "--imagegate-session",
                                           "gate-run", f"--imagegate-findings={out}")
    result.assert_outcomes(passed=4, failed=1, skipped=1)
    found = [json.loads(line)["check_id"] for line in out.read_text().splitlines()]
    assert sorted(found) == ["IG-LABELS", "IG-NO-SECRET-ENV", "IG-PROJECT-TEST",
                             "IG-PROJECT-TEST", "IG-RUN-NO-BUILD-TOOLS", "IG-USER-NUMERIC"]
    assert list(pytester.path.glob("findings.jsonl.gw*")) == []


def test_hardened_and_fail_on(pytester: pytest.Pytester) -> None:
    """hardened makes the hardening checks errors; so does fail_on = warning at baseline."""
    _checks_project(pytester, 'profile = "hardened"')
    pytester.runpytest().assert_outcomes(passed=1, failed=3, skipped=1)
    result = pytester.runpytest("--imagegate-fail-on=warning", "--imagegate-profile=baseline")
    result.assert_outcomes(passed=1, failed=3, skipped=1)


def test_config_ignore_applies_to_every_id(pytester: pytest.Pytester) -> None:
    """`ignore` reaches assert-style checks too (the IG-RUN-* bug of old)."""
    _checks_project(pytester, 'ignore = ["IG-NO-SECRET-ENV", "IG-LABELS"]')
    result = pytester.runpytest("-rs")
    result.assert_outcomes(passed=2, skipped=3)
    result.stdout.fnmatch_lines(["*IG-NO-SECRET-ENV ignored in pyproject.toml [[]tool.imagegate[]]"
                                 " ignore*"])


def test_bad_flag_is_a_usage_error(pytester: pytest.Pytester) -> None:
    """Options are validated at parse time."""
    _checks_project(pytester, "")
    result = pytester.runpytest("--imagegate-fail-on=sometimes")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--imagegate-fail-on*'sometimes'*expected one of error, warning,"
                                 " info*"])


def test_markers_are_registered(pytester: pytest.Pytester) -> None:
    """--strict-markers accepts the plugin's markers."""
    pytester.makefile(".toml", pyproject=STRICT_INI)
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.imagegate_check*", "@pytest.mark.image:*",
                                 "@pytest.mark.stack:*"])


@pytest.mark.parametrize(("flag", "says"), [
    ("severity=IG-LABELS", "severity IG-LABELS: expected NAME=VALUE"),
    ("build-args=NOEQUALS", "build-args NOEQUALS: expected NAME=VALUE"),
    ("layer-budget=many", "layer-budget: bad value 'many'"),
    ("profile=strict", "expected one of baseline, hardened"),
])
def test_one_parser_for_both_faces(pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str],
                                   flag: str, says: str) -> None:
    """A bad flag is refused the same way by the plugin (`--imagegate-KEY`) and the CLI
    (`--KEY`): both are declared from the settings by one function with one parser (a
    `--imagegate-severity X` without `=` was silently dropped by the plugin)."""
    from imagegate import cli

    _checks_project(pytester, "")
    result = pytester.runpytest(f"--imagegate-{flag}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert says in result.stderr.str(), result.stderr.str()
    with pytest.raises(SystemExit) as caught:
        cli.main(["lint", "--project-dir", str(pytester.path), f"--{flag}"])
    assert caught.value.code == 2
    assert says in capsys.readouterr().err


def test_http_check_parametrization_hides_no_bug(pytester: pytest.Pytester,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """IG-STACK-HTTP's parametrization turns only a settings error into "no HTTP checks" (the
    fixtures report that error, once); any other error is a collection error naming it, never
    zero checks in silence."""
    from imagegate.config import settings as settings_mod

    pytester.makepyprojecttoml('[tool.imagegate]\nweb_port = 8000\n')
    args = ("--pyargs", "imagegate.suites.test_stack", "--collect-only", "-q",
            "-p", "no:randomly")
    fine = pytester.runpytest(*args)
    assert "test_IG_STACK_HTTP[/]" in fine.stdout.str()

    def broken(self: object) -> tuple[()]:
        raise RuntimeError("a bug in stack_checks")

    monkeypatch.setattr(settings_mod.Settings, "stack_checks", property(broken))
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.INTERRUPTED, result.stdout.str()
    assert "a bug in stack_checks" in result.stdout.str()
