"""The plugin in a user's own image suite, as a user runs it: plain `pytest tests_image` in a
project whose pytest config turns every warning into an error (as the Flask tutorial's does)."""

from __future__ import annotations

import pytest

from testsupport.samples import flaskr_project

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.slow

SUITE = '''
import pytest

pytestmark = pytest.mark.image


def test_gunicorn_installed(host):
    assert host.exists("gunicorn")


def test_runs_as_appuser(host):
    assert host.user().name == "appuser"


def test_listens_without_ss_or_netstat(app_sockets):
    assert any(s.port == 8000 and not s.loopback_only for s in app_sockets)


def test_no_root_process_without_ps(app_processes):
    assert app_processes and all(p.uid != 0 for p in app_processes)
'''


def test_a_users_image_suite_under_W_error(pytester: pytest.Pytester,
                                           python_slim_image: str) -> None:
    """`filterwarnings = ["error"]`: the plugin's fixtures leak nothing (the build's pipe was an
    unclosed file, an error at the first test's setup), and socket and process questions have an
    answer on a slim image without ss, netstat or ps (``app_sockets``, ``app_processes``)."""
    flaskr_project(pytester.path)
    (pytester.path / "pyproject.toml").write_text(
        '[project]\nname = "flaskr"\nversion = "1.0.0"\n\n[tool.pytest.ini_options]\n'
        'filterwarnings = ["error"]\n')
    pytester.mkdir("tests_image")
    (pytester.path / "tests_image" / "test_mine.py").write_text(SUITE)
    result = pytester.runpytest_subprocess("tests_image", "-p", "no:cacheprovider",
                                           "-p", "no:randomly")
    result.assert_outcomes(passed=4)
    assert "ResourceWarning" not in result.stdout.str()
