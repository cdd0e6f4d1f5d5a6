"""The CI templates a user copies: valid by maintained schemas, and the pre-commit hooks for real.

check-jsonschema validates the workflow against its vendored SchemaStore ``github-workflows``
schema and every compose file in the repo against its vendored ``compose-spec`` schema (no
network: the schemas ship in the wheel). The pre-commit config is run by the real `pre-commit` on
a sample git repository in tmp: its hooks are local ``language: system`` hooks, so pre-commit
installs nothing and fetches nothing; ``PRE_COMMIT_HOME`` is in tmp too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

# External tools in subprocesses (check-jsonschema, pre-commit, git): make test runs them, the
# gate's fast lint stage does not.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WORKFLOW = ROOT / ".github" / "workflows" / "gate.yml"
PRECOMMIT = ROOT / ".pre-commit-config.yaml"
#: The Compose spec's file names, and its override files'.
COMPOSE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml",
                 "compose.override.yaml", "compose.override.yml",
                 "docker-compose.override.yaml", "docker-compose.override.yml")


def compose_files() -> list[Path]:
    """The repo's compose files: the app's stacks, the stack suite's variants and projects."""
    found = [ROOT / "compose.yml", ROOT / "compose.dev.yml",
             *sorted((ROOT / "tests_stack" / "variants").glob("*.yml")),
             ROOT / "tests_stack" / "sample_project" / "compose.yml"]
    for name in COMPOSE_NAMES:
        found += sorted((ROOT / "tests_stack" / "projects").glob(f"**/{name}"))
    return [p for p in dict.fromkeys(found) if p.is_file()]


def check_jsonschema(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "check-jsonschema"), *map(str, argv)], capture_output=True,
                          text=True, timeout=120, check=False)


# --- the workflow ----------------------------------------------------------------------------

def test_workflow_is_valid_for_github() -> None:
    proc = check_jsonschema("--builtin-schema", "vendor.github-workflows", WORKFLOW)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_workflow_schema_bites(tmp_path: Path) -> None:
    """A job with no ``runs-on`` and a step with both ``uses`` and ``run`` is refused."""
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  gate:\n    steps:\n      - uses: actions/checkout@v4\n"
                   "        run: echo\n")
    proc = check_jsonschema("--builtin-schema", "vendor.github-workflows", bad)
    assert proc.returncode == 1, proc.stdout


def steps() -> list[dict[str, Any]]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    return list(workflow["jobs"]["gate"]["steps"])


def step(uses_prefix: str) -> tuple[int, dict[str, Any]]:
    found = [(i, s) for i, s in enumerate(steps()) if s.get("uses", "").startswith(uses_prefix)]
    assert len(found) == 1, f"one {uses_prefix} step expected, found {len(found)}"
    return found[0]


def gate_step() -> tuple[int, dict[str, Any]]:
    found = [(i, s) for i, s in enumerate(steps()) if "make gate" in s.get("run", "")]
    assert len(found) == 1
    return found[0]


def test_workflow_logs_in_before_the_gate_with_secrets_not_argv() -> None:
    login_at, login = step("docker/login-action@")
    gate_at, gate = gate_step()
    assert login_at < gate_at
    assert login["with"]["password"].replace(" ", "") == "${{secrets.REGISTRY_PASSWORD}}"
    # the gate step (it pushes) reads the same docker config the login wrote
    assert login["env"]["DOCKER_CONFIG"] == gate["env"]["DOCKER_CONFIG"]
    for s in steps():  # no password on a command line anywhere
        script = s.get("run", "")
        assert "secrets." not in script
        assert not any(flag in script.split() for flag in ("-p", "--password"))


def test_workflow_uploads_sarif_and_reports_even_when_the_gate_fails() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert workflow["jobs"]["gate"]["permissions"]["security-events"] == "write"
    gate_at, _ = gate_step()
    sarif_at, sarif = step("github/codeql-action/upload-sarif@")
    assert sarif_at > gate_at and "always()" in sarif["if"]
    assert sarif["with"]["sarif_file"] == ".imagegate-out/imagegate.sarif"
    assert sarif["with"].get("category")
    artifact_at, artifact = step("actions/upload-artifact@")
    assert artifact_at > gate_at and "always()" in artifact["if"]
    assert artifact["with"]["path"].rstrip("/") == ".imagegate-out"
    dismiss_at, dismiss = step("advanced-security/dismiss-alerts@")
    assert dismiss_at > sarif_at and "refs/heads/main" in dismiss["if"]
    assert dismiss["with"]["sarif-file"] == sarif["with"]["sarif_file"]


# --- compose files ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", compose_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_compose_file_is_valid_compose_spec(path: Path) -> None:
    proc = check_jsonschema("--builtin-schema", "vendor.compose-spec", path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_compose_files_are_found() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in compose_files()}
    assert {"compose.yml", "compose.dev.yml", "tests_stack/sample_project/compose.yml"} <= names


def test_compose_schema_bites(tmp_path: Path) -> None:
    bad = tmp_path / "compose.yml"
    bad.write_text("services:\n  web:\n    image: app\n    restart: sometimes\n    prots: [8000]\n")
    proc = check_jsonschema("--builtin-schema", "vendor.compose-spec", bad)
    assert proc.returncode == 1, proc.stdout


# --- pre-commit, for real --------------------------------------------------------------------

CLEAN = """\
FROM python:3.11-slim
WORKDIR /app
COPY app.py /app/app.py
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD ["python", "-c", "import sys; sys.exit(0)"]
CMD ["python", "/app/app.py"]
"""
LEAKY = "FROM python:3.11-slim\nENV DB_PASSWORD=hunter2\n"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """pre-commit and git, hermetic: tmp home and cache, no user or system git config, the
    venv's `imagegate` and `hadolint` first on PATH."""
    home = tmp_path / "home"
    home.mkdir()
    keep = {k: v for k, v in os.environ.items() if k in ("LANG", "LC_ALL", "TMPDIR")}
    return {**keep, "HOME": str(home), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"), "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e.st",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e.st"}


def sh(argv: list[str | Path], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


@pytest.fixture
def sample(tmp_path: Path, env: dict[str, str]) -> Path:
    """A git repo with this repo's .pre-commit-config.yaml and a project to lint."""
    assert shutil.which("git"), "git is needed"
    repo = tmp_path / "sample"
    repo.mkdir()
    assert sh(["git", "init", "-q", "-b", "main"], repo, env).returncode == 0
    shutil.copy(PRECOMMIT, repo / ".pre-commit-config.yaml")
    # explicit, so the hook is tested rather than discovery (which reads compose files)
    (repo / "pyproject.toml").write_text('[tool.imagegate]\ndockerfile = "Dockerfile"\n'
                                         'web_port = 8000\nhealth_path = "/healthz"\n')
    (repo / "app.py").write_text("print('hi')\n")
    return repo


def stage(repo: Path, env: dict[str, str], dockerfile: str) -> None:
    (repo / "Dockerfile").write_text(dockerfile)
    assert sh(["git", "add", "-A"], repo, env).returncode == 0


def test_precommit_config_is_valid(env: dict[str, str]) -> None:
    proc = sh([BIN / "pre-commit", "validate-config", PRECOMMIT], ROOT, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_lint_hook_passes_a_clean_dockerfile(sample: Path, env: dict[str, str]) -> None:
    stage(sample, env, CLEAN)
    proc = sh([BIN / "pre-commit", "run", "--all-files"], sample, env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "imagegate lint (Dockerfile)" in out and "Passed" in out
    assert "imagegate gate" not in out  # a pre-push hook: not run on commit


def test_lint_hook_fails_a_leaky_dockerfile(sample: Path, env: dict[str, str]) -> None:
    stage(sample, env, LEAKY)
    proc = sh([BIN / "pre-commit", "run", "--all-files"], sample, env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "Failed" in out and "IG-LINT-SECRET" in out and "DB_PASSWORD" in out


def test_installed_hooks_refuse_the_commit(sample: Path, env: dict[str, str]) -> None:
    """`pre-commit install` (both hook types, from the config) then a real `git commit`."""
    proc = sh([BIN / "pre-commit", "install"], sample, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    hooks = sample / ".git" / "hooks"
    assert (hooks / "pre-commit").is_file() and (hooks / "pre-push").is_file()
    stage(sample, env, LEAKY)
    refused = sh(["git", "commit", "-q", "-m", "leak"], sample, env)
    assert refused.returncode != 0 and "IG-LINT-SECRET" in refused.stdout + refused.stderr
    assert sh(["git", "rev-parse", "--verify", "-q", "HEAD"], sample, env).returncode != 0
    stage(sample, env, CLEAN)
    accepted = sh(["git", "commit", "-q", "-m", "clean"], sample, env)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr


# --- one job per image, and GitLab ------------------------------------------------------------

MATRIX_WORKFLOW = ROOT / "docs" / "ci" / "gate-matrix.yml"


def test_matrix_workflow_is_valid_for_github() -> None:
    """The one-job-per-image workflow (docs/ci) is a valid GitHub workflow whose gate job takes
    its matrix from `imagegate matrix` and gates its own project."""
    proc = check_jsonschema("--builtin-schema", "vendor.github-workflows", MATRIX_WORKFLOW)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    jobs = yaml.safe_load(MATRIX_WORKFLOW.read_text())["jobs"]
    assert "imagegate matrix" in str(jobs["images"]["steps"])
    assert jobs["gate"]["strategy"]["matrix"] == "${{ fromJSON(needs.images.outputs.matrix) }}"
    assert '--project-dir "$PROJECT"' in str(jobs["gate"]["steps"])


def test_gitlab_template_is_valid_and_runs_beside_dind(tmp_path: Path) -> None:
    """`init --ci gitlab`'s .gitlab-ci.yml: valid for GitLab (check-jsonschema's vendored
    gitlab-ci schema), Docker in a TLS docker:dind service as GitLab documents it, the JUnit
    report as a test report, a push only from the default branch; and the schema bites."""
    from imagegate.scaffold import TEMPLATES

    text = (TEMPLATES / "gitlab-ci.yml.tmpl").read_text().replace("{{python}}", "3.11").replace(
        "{{imagegate_spec}}", "imagegate==0.1.0")
    path = tmp_path / ".gitlab-ci.yml"
    path.write_text(text)
    proc = check_jsonschema("--builtin-schema", "vendor.gitlab-ci", path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    job = yaml.safe_load(text)["imagegate"]
    assert job["services"] == [{"name": "docker:27-dind", "alias": "docker"}]
    assert job["variables"] == {"DOCKER_HOST": "tcp://docker:2376", "DOCKER_TLS_CERTDIR": "/certs",
                                "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "/certs/client"}
    assert job["artifacts"]["reports"]["junit"] == ".imagegate-out/junit.xml"
    assert '"$CI_COMMIT_BRANCH" = "$CI_DEFAULT_BRANCH"' in job["script"][0]
    assert "--password-stdin" in job["script"][0]
    bad = tmp_path / "bad.yml"
    bad.write_text("imagegate:\n  script: echo\n  when: sometimes\n")
    assert check_jsonschema("--builtin-schema", "vendor.gitlab-ci", bad).returncode == 1


def test_matrix_lists_each_project_of_a_repository(tmp_path: Path) -> None:
    """`imagegate matrix` on a repository of two projects (and a folder that is none): one entry
    each, with what the gate would gate there; a project's own sub-folders are not projects."""
    import json
    import shutil

    from imagegate import cli

    projects = ROOT / "tests_stack" / "projects"
    shutil.copytree(projects / "proxied", tmp_path / "shop")
    shutil.copytree(projects / "dockerinit", tmp_path / "services" / "api")
    (tmp_path / "docs").mkdir()
    (tmp_path / "shop" / "pyproject.toml").write_text(
        '[tool.imagegate]\ncompose_file = "docker-compose.prod.yml"\n')
    out = subprocess.run([str(BIN / "imagegate"), "matrix", "--project-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert json.loads(out) == {"include": [
        {"project": "services/api", "compose_file": "compose.yaml", "service": "server",
         "dockerfile": "Dockerfile", "context": ".", "image": "imagegate/api"},
        {"project": "shop", "compose_file": "docker-compose.prod.yml", "service": "web",
         "dockerfile": "services/web/Dockerfile.prod", "context": "services/web",
         "image": "imagegate/shop"}]}
    assert cli.main(["matrix", "--project-dir", str(tmp_path / "docs")]) == 2
