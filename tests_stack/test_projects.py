"""The gate on Flask projects as people write them: copied to tmp_path, gated with zero edits.

`projects/dockerinit` is what `docker init` writes (BuildKit cache mounts, a named user, no
HEALTHCHECK, `compose.yaml` that builds, `8000:8000`); `projects/classic` is the tutorial shape
(single stage, pip from the network, `docker-compose.yml` with `build: .` and a stock Redis);
`projects/seedmulti` is the seed's multi-stage recipe whose final stage lacks the gunicorn script.
They build FROM the local stand-ins of `python:3.11-slim` and `redis:7-alpine`
(`testsupport.standins`): nothing is pulled from Docker Hub.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from stack_helpers import ContainerStarts, findings, gate, result

pytestmark = pytest.mark.slow

PROJECTS = Path(__file__).parent / "projects"


@pytest.fixture
def copy_project(tmp_path: Path, python_slim_image: str, redis_alpine_image: str,
                 ) -> Callable[[str], Path]:
    """``copy_project(name)``: a fresh copy of a sample project (stand-in images made first)."""
    def make(name: str) -> Path:
        dest = tmp_path / name
        shutil.copytree(PROJECTS / name, dest)
        return dest
    return make


def _ids(out: Path, **how: str) -> set[str]:
    """The check ids of the findings in ``out`` matching ``how`` (outcome, severity)."""
    return {f["check_id"] for f in findings(out, **how)}


def test_docker_init_project_passes_at_baseline(copy_project: Callable[[str], Path],
                                                docker_client: Any,
                                                leftovers: Callable[[], list[str]]) -> None:
    """docker init's project passes with zero edits: the defects are absent, the hardening
    advice is listed as warnings, and the report says what was found where. The web service
    was started once: the run checks judged the stack's own web container."""
    project = copy_project("dockerinit")
    with ContainerStarts(docker_client) as starts:
        proc = gate(project)
    out = project / ".imagegate-out"
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    session = re.search(r"imagegate session: (ig[0-9a-f]+)-", proc.stdout)
    assert session, proc.stdout[-2000:]
    web = starts.of(session.group(1), "server")
    assert len(web) == 1, ("the web service started in compose projects "
                           f"{[a['com.docker.compose.project'] for a in web]}")
    assert web[0]["com.docker.compose.project"].startswith(f"{session.group(1)}-image-stack-")
    assert "compose_file: compose.yaml [discovered" in proc.stdout
    assert "web_service: server [" in proc.stdout
    stages = {s["name"]: s["status"] for s in result(out)["stages"]}
    assert stages == {"preflight": "passed", "lint": "passed", "bases": "skipped",
                      "build": "passed", "image": "passed", "stack": "passed"}, stages
    warned = _ids(out, outcome="failed", severity="warning")
    assert {"IG-USER-NUMERIC", "IG-HEALTHCHECK", "IG-LABELS",
            "IG-RUN-NO-BUILD-TOOLS", "IG-STACK-LOOPBACK-ONLY"} <= warned, warned
    assert not _ids(out, outcome="failed", severity="error")
    passed = _ids(out, outcome="passed")
    assert {"IG-RUN-HEALTHY", "IG-RUN-PROCS-NONROOT", "IG-STACK-HEALTHY", "IG-STACK-HTTP",
            "IG-CMD-EXISTS"} <= passed, passed
    summary = (out / "summary.md").read_text()
    assert "PASSED" in summary and "### Warnings" in summary and "IG-USER-NUMERIC" in summary
    assert (out / "imagegate.sarif").is_file()
    assert leftovers() == []


#: An image suite of docker init's project's own (written by the test below): it records which
#: container it judged, and looks inside it through testinfra's ``host``.
OWN_IMAGE_SUITE = """\
import os


def seen(line):
    with open(os.environ["IG_TEST_SEEN"], "a") as out:
        out.write(line + "\\n")


def test_the_web_container(app_container, host):
    seen(app_container.container.name)
    assert host.file("/app/flaskr").is_directory


def test_the_image_alone(image_facts):
    seen("image alone")
    assert image_facts.config.get("WorkingDir") == "/app"
"""


def test_project_image_suite_judges_the_gates_stack(copy_project: Callable[[str], Path],
                                                    docker_client: Any, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    leftovers: Callable[[], list[str]]) -> None:
    """docker init's project with an image suite of its own: the gate still starts the web
    service once, and the project's image tests judge that very container (the one the generic
    run checks judged), not one of their own beside it. The test that needs no container ran
    first (while the gate brought the stack up), though it comes second in its file."""
    project = copy_project("dockerinit")
    (project / "tests_image").mkdir()
    (project / "tests_image" / "test_own.py").write_text(OWN_IMAGE_SUITE)
    (project / "pyproject.toml").write_text('[tool.imagegate]\nimage_tests = ["tests_image"]\n')
    seen = tmp_path / "seen"
    monkeypatch.setenv("IG_TEST_SEEN", str(seen))  # (IMAGEGATE_* would not reach the stages)
    with ContainerStarts(docker_client) as starts:
        proc = gate(project)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    out = project / ".imagegate-out"
    own = [f for f in findings(out) if f["check_id"] == "IG-PROJECT-TEST" and f["stage"] == "image"]
    assert own and all(f["ok"] for f in own), own
    prefix = re.search(r"imagegate session: (ig[0-9a-f]+)-", proc.stdout)
    assert prefix, proc.stdout[-2000:]
    web = starts.of(prefix.group(1), "server")
    assert len(web) == 1, ("the web service started in compose projects "
                           f"{[a['com.docker.compose.project'] for a in web]}")
    assert seen.read_text().splitlines() == ["image alone", web[0]["name"]]
    assert leftovers() == []


def test_docker_init_project_fails_hardened(copy_project: Callable[[str], Path],
                                            leftovers: Callable[[], list[str]]) -> None:
    """The same project at `--profile hardened`: the hardening advice becomes errors in the
    lint (the Dockerfile's text), and the red lint stops the gate. The build runs beside the
    lint and the image and stack session starts once it is built: the red lint stops that
    session (or it never starts), so both stages are skipped, none of their findings counts,
    and nothing of the session is left on the engine."""
    project = copy_project("dockerinit")
    proc = gate(project, "--profile", "hardened", "--quiet")
    out = project / ".imagegate-out"
    assert proc.returncode == 1, proc.stdout[-4000:]
    stages = {s["name"]: s for s in result(out)["stages"]}
    statuses = {name: s["status"] for name, s in stages.items()}
    assert statuses["lint"] == "failed" and statuses["image"] == statuses["stack"] == "skipped", \
        statuses
    assert {stages[n]["message"] for n in ("image", "stack")} <= {"", "stopped: lint failed"}
    assert not [f for f in result(out)["findings"] if f["stage"] in ("image", "stack")]
    assert leftovers() == []
    errors = _ids(out, outcome="failed", severity="error")
    assert {"IG-LINT-HEALTHCHECK-MISSING", "IG-LINT-CMD-SHELL"} <= errors, errors
    assert "✗ error IG-LINT-HEALTHCHECK-MISSING" in proc.stdout


def test_seed_multistage_fails_fast_naming_gunicorn(copy_project: Callable[[str], Path],
                                                    leftovers: Callable[[], list[str]]) -> None:
    """The seed's recipe (site-packages copied, the gunicorn script not) fails fast — well
    before the run stage's 120 s wait_timeout, which a container that cannot start must not
    wait out: the static IG-CMD-EXISTS names gunicorn, the container's own exec error is
    attached."""
    project = copy_project("seedmulti")
    proc = gate(project, "--quiet")
    out = project / ".imagegate-out"
    assert proc.returncode == 1, proc.stdout[-4000:]
    # the judgement's own time (the image stage's: a cold build before it does not count)
    took = next(s["seconds"] for s in result(out)["stages"] if s["name"] == "image")
    assert took < 60, f"the image stage took {took:.1f}s to fail (wait_timeout 120 s)"
    failed = {f["check_id"]: f for f in findings(out, outcome="failed", severity="error")}
    assert "IG-CMD-EXISTS" in failed and "gunicorn" in failed["IG-CMD-EXISTS"]["message"]
    assert "IG-RUN-HEALTHY" in failed and "gunicorn" in failed["IG-RUN-HEALTHY"]["message"]
    assert "IG-CMD-EXISTS" in proc.stdout and "gunicorn" in proc.stdout
    assert leftovers() == []


def test_source_bind_mount_fails_the_stack(copy_project: Callable[[str], Path]) -> None:
    """docker init's project with `.:/app` on its service: IG-STACK-SOURCE-MOUNT names both."""
    project = copy_project("dockerinit")
    compose = project / "compose.yaml"
    text = compose.read_text()
    assert "    ports:\n" in text
    compose.write_text(text.replace("    ports:\n", "    volumes:\n      - .:/app\n    ports:\n", 1))
    proc = gate(project, "--quiet")
    out = project / ".imagegate-out"
    assert proc.returncode == 1, proc.stdout[-4000:]
    mount = [f for f in findings(out, outcome="failed") if f["check_id"] == "IG-STACK-SOURCE-MOUNT"]
    assert mount and "server" in mount[0]["message"] and "/app" in mount[0]["message"], mount
    assert "compose.dev.yml" in mount[0]["message"] or "overlay" in mount[0]["message"]


def test_pull_never_with_a_missing_image(copy_project: Callable[[str], Path]) -> None:
    """pull = never and a FROM that is not local: one line naming the image, exit 2."""
    project = copy_project("dockerinit")
    dockerfile = project / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("ARG PYTHON_VERSION=3.11",
                                                         "ARG PYTHON_VERSION=3.9"))
    proc = gate(project, "--pull", "never", "--quiet")
    assert proc.returncode == 2, proc.stdout[-3000:]
    assert "python:3.9-slim" in proc.stdout and 'pull = "never"' in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_hermetic_build_with_a_network_install(copy_project: Callable[[str], Path]) -> None:
    """hermetic = true and a `pip install` from PyPI: the build fails saying it had no network."""
    project = copy_project("classic")
    proc = gate(project, "--hermetic", "true", "--quiet")
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "no network" in proc.stdout and "hermetic" in proc.stdout, proc.stdout[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr


def test_classic_project_passes_the_same_with_both_builders(
        copy_project: Callable[[str], Path], leftovers: Callable[[], list[str]]) -> None:
    """A tutorial project (pip from the network, `build: .` plus a stock Redis it talks to)
    passes with zero edits, its stack answering with the Redis counter; gated with the classic
    builder and with BuildKit, the same verdict and the same findings (but
    IG-LINT-BUILDKIT-SYNTAX, which only the classic builder needs)."""
    verdicts = {}
    for builder in ("classic", "buildkit"):
        project = copy_project("classic")
        out = project / ".imagegate-out"
        proc = gate(project, "--builder", builder, "--quiet")
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        assert "compose_file: docker-compose.yml [discovered" in proc.stdout
        assert {"IG-STACK-HEALTHY", "IG-STACK-HTTP"} <= _ids(out, outcome="passed")
        verdicts[builder] = {(f["check_id"], f["severity"], f["ok"], bool(f["skipped"]))
                             for f in result(out)["findings"]
                             if f["check_id"] not in ("IG-BUILD", "IG-LINT-BUILDKIT-SYNTAX")}
        shutil.rmtree(project)
    assert verdicts["classic"] == verdicts["buildkit"]
    assert leftovers() == []


def test_strict_pytest_config_does_not_break_the_gate(copy_project: Callable[[str], Path]) -> None:
    """A project whose pytest config is strict (filterwarnings = error, -x --strict-config) is
    gated normally: the generic checks run isolated from it."""
    project = copy_project("dockerinit")
    (project / "pyproject.toml").write_text(
        '[project]\nname = "flaskr"\nversion = "1.0"\n\n[tool.pytest.ini_options]\n'
        'addopts = "-x --strict-config --strict-markers"\nfilterwarnings = ["error"]\n')
    proc = gate(project, "--quiet")
    assert proc.returncode == 0, proc.stdout[-4000:]


def test_pull_missing_pulls_from_a_registry(copy_project: Callable[[str], Path], registry: str,
                                            docker_client: Any, python_slim_image: str) -> None:
    """pull = missing (the default) pulls an absent FROM image, as docker does: here from a
    loopback registry the test fills with the stand-in."""
    ref = f"{registry}/stock/python:3.11-slim"
    docker_client.images.get(python_slim_image).tag(ref)
    for chunk in docker_client.api.push(ref, stream=True, decode=True):
        assert "error" not in chunk, chunk
    docker_client.images.remove(ref, noprune=True)
    project = copy_project("dockerinit")
    dockerfile = project / "Dockerfile"
    text = dockerfile.read_text()
    assert "FROM python:${PYTHON_VERSION}-slim" in text
    dockerfile.write_text(text.replace("FROM python:${PYTHON_VERSION}-slim",
                                       f"FROM {registry}/stock/python:${{PYTHON_VERSION}}-slim"))
    try:
        proc = gate(project, "--quiet")
        assert proc.returncode == 0, proc.stdout[-4000:]
        assert docker_client.images.get(ref)  # pulled by the gate
    finally:  # untag only: the pulled image is the stand-in's own id
        for image in docker_client.images.list(name=f"{registry}/stock/python"):
            for tag in image.tags:
                if tag.startswith(f"{registry}/"):
                    docker_client.images.remove(tag, noprune=True)
