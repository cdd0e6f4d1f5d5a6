"""The running-container checks (IG-RUN-*) fail on a Dockerfile mutated to break each of them.

Each variant is built, then the generic checks run against it in a subprocess exactly as the
gate runs them (``--imagegate-image``); the named check must fail and say why in one line.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dockerfile_edits import before_user, drop_instruction, replace_line

pytestmark = [pytest.mark.image, pytest.mark.slow]

FAST_FAILING_HEALTHCHECK = (
    'HEALTHCHECK --interval=1s --timeout=1s --start-period=1s --retries=1 '
    'CMD ["python3", "-c", "import urllib.request; '
    "urllib.request.urlopen('http://127.0.0.1:8000/nope', timeout=1)\"]"
)
INSTALL_PIP = ("COPY --from=builder /wheels/ /tmp/wheels/\n"
               'RUN set -eux; set -- /tmp/wheels/pip-*.whl; '
               '/opt/venv/bin/python "$1/pip" install --no-index "$1"; rm -rf /tmp/wheels')

MUTATIONS: list[tuple[str, str, str, Callable[[str], str]]] = [
    ("IG-RUN-USER-NONROOT", "test_IG_RUN_USER_NONROOT", "exec runs as uid 0",
     lambda t: replace_line(t, "USER ", "USER 0:0")),
    ("IG-RUN-PROCS-NONROOT", "test_IG_RUN_PROCS_NONROOT", "a process runs as root",
     lambda t: replace_line(t, "USER ", "USER 0:0")),
    ("IG-RUN-APP-NOT-WRITABLE", "test_IG_RUN_APP_NOT_WRITABLE", "writable by the app user",
     lambda t: before_user(t, "RUN chown -R 10001:10001 /srv/app")),
    ("IG-RUN-NO-PIP-MODULE", "test_IG_RUN_NO_PIP_MODULE", "pip is importable",
     lambda t: before_user(t, INSTALL_PIP)),
    ("IG-RUN-NO-BUILD-TOOLS[pip]", "test_IG_RUN_NO_BUILD_TOOLS and pip and not pip3", "pip is on PATH",
     lambda t: before_user(t, INSTALL_PIP)),
    ("IG-RUN-PORT-LISTENING", "test_IG_RUN_PORT_LISTENING", "nothing listens on 0.0.0.0:8000",
     lambda t: before_user(t, "ENV PORT=8001")),
    ("IG-RUN-HEALTHY", "test_IG_RUN_HEALTHY", "unhealthy",
     lambda t: replace_line(drop_instruction(t, "HEALTHCHECK "), "EXPOSE ",
                            f"EXPOSE 8000\n{FAST_FAILING_HEALTHCHECK}")),
]


def run_generic_checks(image: str, select: str, settings: Any, out: Path) -> dict[str, str]:
    """The generic image checks on ``image`` (filtered by ``-k select``): {test name: outcome}."""
    junit = out / "junit.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--pyargs", "imagegate.checks.test_image", "-k", select,
         "--imagegate-image", image, "--imagegate-project-dir", str(settings.project_dir),
         "-p", "no:cacheprovider", "-q", f"--junitxml={junit}", "--rootdir", str(out)],
        capture_output=True, text=True, timeout=300, cwd=out, stdin=subprocess.DEVNULL,
    )
    assert junit.is_file(), proc.stdout[-2000:] + proc.stderr[-2000:]
    outcomes = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        failure = case.find("failure") if case.find("failure") is not None else case.find("error")
        outcomes[case.get("name", "")] = (
            "passed" if failure is None else f"failed: {failure.get('message', '')}")
    return outcomes


@pytest.mark.parametrize(("check_id", "select", "says", "mutate"), MUTATIONS,
                         ids=[m[0] for m in MUTATIONS])
def test_running_check_fails_on_mutated_dockerfile(
    check_id: str, select: str, says: str, mutate: Callable[[str], str], build_variant: Any,
    imagegate_settings: Any, tmp_path: Path,
) -> None:
    """The mutated image fails exactly the check it was built to break, with a reason."""
    outcomes = run_generic_checks(build_variant(mutate), select, imagegate_settings, tmp_path)
    assert outcomes, f"-k {select!r} selected nothing"
    failed = {name: why for name, why in outcomes.items() if why != "passed"}
    assert failed, f"{check_id} passed on the mutated image: {outcomes}"
    assert all(says in why for why in failed.values()), failed
