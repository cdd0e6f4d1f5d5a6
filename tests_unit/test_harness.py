"""The harness's Docker-free parts: settings, lock parsing, FROM resolution, reports, CLI, plugin."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from imagegate import build
from imagegate.build import wheelhouse
from imagegate.cli import main
from imagegate.config import settings
from imagegate.errors import UsageError, WheelhouseError
from imagegate.results import report

pytest_plugins = ["pytester"]
REPO = Path(__file__).resolve().parents[1]


def write_pyproject(tmp_path: Path, table: str) -> Path:
    """A project dir whose pyproject holds ``[tool.imagegate]`` = ``table``."""
    (tmp_path / "pyproject.toml").write_text(f"[tool.imagegate]\n{table}\n")
    return tmp_path


# -- settings ----------------------------------------------------------------------------------


def test_settings_sources_in_order(tmp_path: Path) -> None:
    """Defaults < pyproject < IMAGEGATE_* env < flags, each value remembering its source."""
    write_pyproject(tmp_path, 'size_budget_mb = 70\nlayer_budget = 9\ndockerfile = "D1"')
    s = settings.load(tmp_path, {"dockerfile": "D3"}, environ={"IMAGEGATE_LAYER_BUDGET": "7"})
    assert (s.size_budget_mb, s.layer_budget, s.dockerfile, s.compose_file) == (70, 7, "D3", "")
    assert s.sources["size_budget_mb"] == "pyproject.toml"
    assert (s.sources["layer_budget"], s.sources["dockerfile"]) == ("env", "flag")
    assert s.sources["compose_file"] == "default"


@pytest.mark.parametrize(("table", "says"), [
    ("web_prot = 1", "unknown key [tool.imagegate] 'web_prot'"),
    ('layer_budget = "many"', "layer_budget: bad value 'many'"),
    ("layer_budget = 2.5", "layer_budget: bad value 2.5"),
    ("size_budget_mb = -1", "must be positive"),
    ('health_path = "healthz"', "must start with /"),
    ('bases = ["python", "nginx"]', "bases: unknown ['nginx']"),
    ('http_checks = [{ path = "/", code = 200 }]', "http_checks"),
    ("run_env = 3", "run_env: bad value 3"),
    ("[tool.imagegate", "invalid TOML"),
])
def test_settings_bad_config_names_file_and_key(tmp_path: Path, table: str, says: str) -> None:
    """A bad [tool.imagegate] is one UsageError naming the file (or key) and what is wrong."""
    write_pyproject(tmp_path, table)
    with pytest.raises(UsageError) as info:
        settings.load(tmp_path, environ={})
    assert says in info.value.message
    assert "\n" not in info.value.message


def test_settings_http_checks_and_random_env(tmp_path: Path) -> None:
    """http_checks parse into HttpCheck; @random becomes a fresh 64-hex secret each time."""
    write_pyproject(tmp_path, 'http_checks = ["/a", { path = "/b", status = 204, contains = "x" }]'
                              '\n[tool.imagegate.run_env]\nSECRET_KEY = "@random"\nA = "b"')
    s = settings.load(tmp_path, environ={})
    assert s.stack_checks == (settings.HttpCheck("/a"), settings.HttpCheck("/b", 204, "x"))
    one, two = settings.materialize_env(s.run_env), settings.materialize_env(s.run_env)
    assert one["A"] == "b" and len(one["SECRET_KEY"]) == 64
    assert one["SECRET_KEY"] != two["SECRET_KEY"]


def test_settings_file_round_trips_every_setting(tmp_path: Path) -> None:
    """What the gate resolved reaches its pytest stages intact (values and sources), any key."""
    write_pyproject(tmp_path, 'layer_budget = 20\nhttp_checks = [{ path = "/a", status = 204 }]\n'
                              '[tool.imagegate.severity]\nIG-LABELS = "error"')
    flags = {"layer_budget": 2, "context": "ctx", "size_budget_mb": 12.5,
             "ignore": ("IG-LABELS", "DL3008"), "python_image": "python:3.12-slim",
             "hermetic": True, "profile": "hardened"}
    given = settings.load(tmp_path, flags, environ={})
    again = settings.undump(json.loads(json.dumps(settings.dump(given))))
    assert again == given and again.sources == given.sources
    assert again.http_checks == (settings.HttpCheck("/a", 204),)


def test_repo_settings_load() -> None:
    """This repo's own [tool.imagegate] is valid."""
    s = settings.load(REPO, environ={})
    assert s.repo == "imagegate/app" and s.image_tests == ("tests_image/test_app_image.py",)


# -- wheelhouse and build -------------------------------------------------------------------


def test_parse_lock_keeps_markers_and_hashes() -> None:
    """The real lock parses; a marker-only pin (async-timeout) is kept for the download."""
    pins = {p.name: p for p in wheelhouse.parse_lock(REPO / "requirements.lock")}
    assert {"flask", "gunicorn", "redis", "werkzeug"} <= set(pins)
    assert "python_full_version" in pins["async-timeout"].marker
    assert all(len(h) == 64 for p in pins.values() for h in p.hashes)


@pytest.mark.parametrize(("text", "says"), [
    ("flask>=3\n", "not an exact `name==version` pin"),
    ("flask==3.1.3\n", "has no --hash"),
    ("# nothing\n", "no pinned requirements"),
])
def test_parse_lock_rejects_unchecked_pins(tmp_path: Path, text: str, says: str) -> None:
    """Every pin must be exact and hashed: no unverified wheel reaches the image."""
    lock = tmp_path / "requirements.lock"
    lock.write_text(text)
    with pytest.raises(WheelhouseError, match=says):
        wheelhouse.parse_lock(lock)


def test_wheelhouse_is_synced_in_place_and_a_right_one_is_left_untouched(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a missing or different wheel is copied, strays go, and a wheelhouse that is already
    right is not rewritten (a build reading it beside us is never disturbed)."""
    import hashlib

    monkeypatch.setattr(wheelhouse, "STATE_DIR", tmp_path / "state")
    target = wheelhouse.Target("cp", "3.11.2", "x86_64", "glibc", "2.36")
    cache = tmp_path / "state" / "wheels" / target.key
    cache.mkdir(parents=True)
    lines = []
    for name in ("alpha", "beta"):
        wheel = cache / f"{name}-1.0-py3-none-any.whl"
        wheel.write_bytes(name.encode() * 100)
        lines.append(f"{name}==1.0 --hash=sha256:{hashlib.sha256(wheel.read_bytes()).hexdigest()}")
    lock = tmp_path / "requirements.lock"
    lock.write_text("\n".join(lines) + "\n")
    dest = tmp_path / "ctx" / ".wheels"
    dest.mkdir(parents=True)
    (dest / "stray-0.1-py3-none-any.whl").write_bytes(b"old")
    (dest / "beta-1.0-py3-none-any.whl").write_bytes(b"truncated")

    got = wheelhouse.ensure_wheelhouse([lock], target, dest, log=lambda _: None)
    assert [*sorted(p.name for p in got), "built.lock"] == sorted(p.name for p in dest.iterdir())
    assert sorted(p.name for p in dest.iterdir()) == ["alpha-1.0-py3-none-any.whl",
                                                       "beta-1.0-py3-none-any.whl", "built.lock"]
    assert (dest / "beta-1.0-py3-none-any.whl").read_bytes() == b"beta" * 100
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in dest.iterdir()}
    wheelhouse.ensure_wheelhouse([lock], target, dest, log=lambda _: None)
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in dest.iterdir()} == before


def test_target_platform_tags() -> None:
    """A glibc 2.36 base accepts every manylinux tag down to 2_17 and the legacy aliases."""
    target = wheelhouse.Target("cp", "3.11.2", "x86_64", "glibc", "2.36")
    tags = target.platforms()
    assert target.abi == "cp311" and tags[0] == "manylinux_2_36_x86_64"
    assert "manylinux_2_17_x86_64" in tags and "manylinux2014_x86_64" in tags


@pytest.mark.parametrize(("dockerfile", "args", "expected"), [
    ("ARG PYTHON_IMAGE=a:1\nFROM ${PYTHON_IMAGE} AS b\nFROM b\nFROM ${PYTHON_IMAGE}\n", {},
     ["a:1"]),
    ("ARG PYTHON_IMAGE=a:1\nFROM $PYTHON_IMAGE\n", {"PYTHON_IMAGE": "python:3.12-slim"},
     ["python:3.12-slim"]),
    ("FROM scratch\nCOPY x /\n", {}, []),
    ("FROM --platform=linux/amd64 c:2 AS x\nFROM x\n", {}, ["c:2"]),
    ("FROM ${MISSING:-d:3}\n", {}, ["d:3"]),
])
def test_from_images(dockerfile: str, args: dict[str, str], expected: list[str]) -> None:
    """The images a build needs locally: ARGs substituted, stage names and scratch left out."""
    assert build.from_images(dockerfile, args) == expected


def test_from_images_unset_arg_is_an_error() -> None:
    """A FROM whose build arg has no value is a clear usage error, not a pull of '' ."""
    with pytest.raises(UsageError, match="build arg BASE has no value"):
        build.from_images("ARG BASE\nFROM ${BASE}\n", {})


# -- report -----------------------------------------------------------------------------------


JUNIT = """<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="3">
<testcase classname="t.test_image" name="test_policy[IG-USER-NONROOT]"/>
<testcase classname="t.test_image" name="test_policy[IG-SIZE-BUDGET]">
<failure message="IG-SIZE-BUDGET: 91.2 MB is over the 80 MB budget">long detail</failure>
</testcase>
<testcase classname="t.test_image" name="test_skip"><skipped message="ignored"/></testcase>
</testsuite></testsuites>"""


def test_report_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every report is rendered from the same findings: JUnit per stage (warnings pass, errors
    fail, ignored skip), JSON with counts, Markdown with Failed/Warnings/Ignored, and SARIF."""
    from imagegate.results.findings import Finding

    image = report.StageResult("image", "failed", 3.2, findings=[
        Finding("IG-SIZE-BUDGET", False, "91.2 MB is over the 80 MB budget", "Image.Size",
                severity="error", stage="image"),
        Finding("IG-LABELS", False, "org.opencontainers.image.revision missing",
                "Config.Labels", severity="warning", stage="image"),
        Finding("IG-USER-NONROOT", True, "runs as uid 10001", "Config.User", severity="warning",
                stage="image"),
        Finding("IG-NO-SETUID", True, "x", skipped="ignored in pyproject.toml [tool.imagegate] "
                "ignore", severity="warning", stage="image"),
    ])
    build_stage = report.StageResult("build", "failed", 1.0, message="Dockerfile: build failed")
    result = report.GateResult("proj", "failed", 1, stages=[build_stage, image],
                               findings=list(image.findings),
                               image={"id": "sha256:" + "a" * 64, "tags": "x:local",
                                      "size": 91_200_000, "budget_mb": 80, "layers": 4,
                                      "layer_budget": 20,
                                      "top_layers": [{"size": 48_500_000, "created_by": "COPY x"}]})
    summary_file = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary_file))
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    paths = report.write_all(result, tmp_path / "out", project_dir=tmp_path,
                             files={"dockerfile": tmp_path / "Dockerfile"})
    md = paths["markdown"].read_text()
    assert "FAILED" in md and "91.2 MB** of 80 MB budget" in md and "48.5 MB" in md
    assert "`IG-SIZE-BUDGET` (error) at `Image.Size`: 91.2 MB is over the 80 MB budget" in md
    assert "### Warnings" in md and "`IG-LABELS`" in md.split("### Warnings")[1]
    assert "### Ignored" in md and "IG-NO-SETUID" in md.split("### Ignored")[1]
    assert "Dockerfile: build failed" in md
    assert summary_file.read_text() == md + "\n"  # appended as its own block
    data = json.loads(paths["json"].read_text())
    assert [s["name"] for s in data["stages"]] == ["build", "image"]
    assert data["counts"] == {"failed": 1, "warning": 1, "passed": 1, "skipped": 1}
    assert image.counts() == {"failed": 1, "warning": 1, "passed": 1, "skipped": 1}
    suites = paths["junit"].read_text()
    assert suites.count("<testsuite ") == 2 and 'name="build"' in suites
    assert suites.count("<failure") == 2 and suites.count("<skipped") == 1
    assert "warning: org.opencontainers.image.revision missing" in suites
    sarif = json.loads(paths["sarif"].read_text())
    # an ignored check never ran: nothing to report as a suppressed result
    assert {r["ruleId"] for r in sarif["runs"][0]["results"]} == {"IG-SIZE-BUDGET", "IG-LABELS"}


# -- CLI ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("argv", "rc", "says"), [
    (["gate", "--project-dir", "/nonexistent/x"], 2, "not a directory"),
    (["gate", "--push", "just-a-name"], 2, "expected REGISTRY/REPO:TAG"),
    (["lint", "--dockerfile", "Nope.dockerfile"], 2, "Nope.dockerfile"),
])
def test_cli_usage_errors_are_one_line(argv: list[str], rc: int, says: str,
                                       capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad input: exit 2 and one line on stderr naming the problem, no traceback."""
    monkeypatch.chdir(REPO)  # undone after the test: no other test runs in REPO by accident
    assert main(argv) == rc
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


def test_cli_lint_finds_a_root_user(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`imagegate lint` prints each finding with its id, line and severity; a root USER is
    advice at baseline (the runtime checks prove uid 0) and fails at hardened."""
    (tmp_path / "Dockerfile").write_text(
        'FROM python:3.12-slim\nHEALTHCHECK CMD ["true"]\nUSER root\nCMD ["python3"]\n')
    assert main(["lint", "--project-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Dockerfile:3: IG-LINT-USER-ROOT (warning)" in out
    assert main(["lint", "--project-dir", str(tmp_path), "--profile", "hardened"]) == 1
    out = capsys.readouterr().out
    assert "Dockerfile:3: IG-LINT-USER-ROOT (error)" in out and "1 failing" not in out


# -- plugin (pytester) ------------------------------------------------------------------------


def test_plugin_header_and_bad_config(pytester: pytest.Pytester) -> None:
    """The header says what is gated and from where; a bad config key is a usage error."""
    pytester.makefile(".toml", pyproject='[tool.imagegate]\nsize_budget_mb = 55\n')
    pytester.makepyfile("def test_settings(imagegate_settings):\n"
                        "    assert imagegate_settings.size_budget_mb == 55\n")
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["imagegate session: ig*",
                                 "imagegate size_budget_mb: 55.0 [pyproject.toml]"])
    pytester.makefile(".toml", pyproject='[tool.imagegate]\nsize_budget = 55\n')
    bad = pytester.runpytest()
    bad.assert_outcomes(errors=1)  # only what uses imagegate fails, with one line
    bad.stdout.fnmatch_lines(["imagegate: *pyproject.toml: unknown key [[]tool.imagegate[]] "
                              "'size_budget'*"])


def test_plugin_option_validation(pytester: pytest.Pytester) -> None:
    """Options are validated at parse time (a negative budget never reaches a check)."""
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("--imagegate-size-budget-mb", "-3")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--imagegate-size-budget-mb*must be positive*"])


@pytest.mark.shows_failing("IG-PROJECT-TEST")
def test_IG_PROJECT_TEST_fails_when_a_project_test_fails(pytester: pytest.Pytester) -> None:
    """A project's own test that fails is an IG-PROJECT-TEST failure (an error, whatever the
    profile) carrying the test's own assertion message and node id; one that passes is a pass."""
    pytester.makefile(".toml", pyproject='[tool.imagegate]\nweb_port = 8000\n')
    pytester.makepyfile(test_own="def test_greeting():\n"
                                 "    assert 'Hello' == 'Howdy', 'the greeting changed'\n\n"
                                 "def test_fine():\n    assert True\n")
    out = pytester.path / "findings.jsonl"
    result = pytester.runpytest("-p", "no:randomly", f"--imagegate-findings={out}")
    result.assert_outcomes(passed=1, failed=1)
    found = {f["name"].rsplit("::", 1)[1]: f for f in map(json.loads, out.read_text().splitlines())}
    bad, good = found["test_greeting"], found["test_fine"]
    assert (bad["check_id"], bad["ok"], bad["severity"]) == ("IG-PROJECT-TEST", False, "error")
    assert bad["message"].startswith("the greeting changed"), bad["message"]
    assert bad["where"] == "test_own.py:1"
    assert (good["check_id"], good["ok"]) == ("IG-PROJECT-TEST", True)


def test_mapping_settings_from_the_environment(tmp_path: Path) -> None:
    """IMAGEGATE_SEVERITY / IMAGEGATE_BUILD_ARGS are ``NAME=value`` pairs separated by commas
    (every setting can be given as IMAGEGATE_<KEY>); a malformed one is one line naming it."""
    from imagegate.config import settings
    from imagegate.errors import UsageError

    s = settings.load(tmp_path, environ={"IMAGEGATE_SEVERITY": "IG-LABELS=error, DL3008=info",
                                         "IMAGEGATE_BUILD_ARGS": "A=1,B=two"})
    assert dict(s.severity) == {"IG-LABELS": "error", "DL3008": "info"}
    assert dict(s.build_args) == {"A": "1", "B": "two"}
    assert s.sources["severity"] == "env"
    with pytest.raises(UsageError) as caught:
        settings.load(tmp_path, environ={"IMAGEGATE_SEVERITY": "IG-LABELS"})
    assert caught.value.message.startswith("IMAGEGATE_SEVERITY: bad value 'IG-LABELS': expected "
                                           "NAME=value pairs")
    with pytest.raises(UsageError, match="expected error, warning or info"):
        settings.load(tmp_path, environ={"IMAGEGATE_SEVERITY": "IG-LABELS=loud"})


# -- wheelhouse: pins with no wheel for the target, built from their locked sdist --------------


def _sdist(path: Path, files: dict[str, str]) -> Path:
    """A .tar.gz sdist at ``path`` holding ``files`` (under its top directory)."""
    import io
    import tarfile

    top = path.name.removesuffix(".tar.gz")
    with tarfile.open(path, "w:gz") as tf:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize(("filename", "expected"), [
    ("Flask-Mail-0.9.1.tar.gz", ("flask_mail", "0.9.1")),
    ("crcmod-1.7.tar.gz", ("crcmod", "1.7")),
    ("python-Levenshtein-0.12.2.zip", ("python_levenshtein", "0.12.2")),
    ("flask_mail-0.9.1-py3-none-any.whl", None),
])
def test_sdist_names(filename: str, expected: tuple[str, str] | None) -> None:
    """An sdist's file name gives the pin it belongs to, spelt as wheels spell names."""
    assert wheelhouse.sdist_name(filename) == expected


def test_an_sdist_with_c_sources_is_built_on_the_target_and_its_build_requires_read(
        tmp_path: Path) -> None:
    """C sources → extensions (built on the target's build base); none → pure Python (built on
    the host). [build-system].requires is what the offline build gets; pip's default without."""
    pure = _sdist(tmp_path / "mail-1.0.tar.gz", {"setup.py": "", "mail.py": ""})
    ext = _sdist(tmp_path / "crc-1.0.tar.gz", {"setup.py": "", "src/_crc.c": "",
                                                "pyproject.toml": '[build-system]\nrequires = '
                                                '["setuptools>=61", "cython"]\n'})
    assert not wheelhouse.has_extensions(pure) and wheelhouse.has_extensions(ext)
    assert wheelhouse.build_requires(pure) == ["setuptools>=40.8.0", "wheel"]
    assert wheelhouse.build_requires(ext) == ["setuptools>=61", "cython"]


def test_built_wheels_are_reused_by_sdist_hash_and_pinned_to_their_own_hash(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wheel built earlier from an sdist the lock allows is found again (no download, no
    build); built.lock pins it to its own sha256 and names the sdist hash it came from; a wheel
    whose bytes changed since it was recorded is not trusted."""
    import hashlib
    import json

    monkeypatch.setattr(wheelhouse, "STATE_DIR", tmp_path / "state")
    target = wheelhouse.Target("cp", "3.11.2", "x86_64", "glibc", "2.36")
    cache = tmp_path / "state" / "wheels" / target.key
    sdist_sha = hashlib.sha256(b"the sdist").hexdigest()
    built = cache / "built" / sdist_sha
    built.mkdir(parents=True)
    wheel = built / "flask_mail-0.9.1-py3-none-any.whl"
    wheel.write_bytes(b"a built wheel")
    wheel_sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    (built / "built.json").write_text(json.dumps({
        "sdist": "Flask-Mail-0.9.1.tar.gz", "wheel": wheel.name, "sha256": wheel_sha,
        "how": "pure Python, built on the host"}))
    lock = tmp_path / "requirements.lock"
    lock.write_text(f"flask-mail==0.9.1 ; python_version >= '3' --hash=sha256:{sdist_sha}\n")
    said: list[str] = []
    dest = tmp_path / ".wheels"
    got = wheelhouse.ensure_wheelhouse([lock], target, dest, log=said.append)
    assert [p.name for p in got] == [wheel.name]
    assert not any("downloading" in line for line in said), said
    assert said == [f"wheelhouse: built flask-mail==0.9.1 from source (pure Python, built on the "
                    f"host): Flask-Mail-0.9.1.tar.gz sha256:{sdist_sha[:12]}… (the lock's) → "
                    f"{wheel.name} sha256:{wheel_sha[:12]}…"]
    text = (dest / wheelhouse.BUILT_LOCK).read_text()
    assert f"flask-mail==0.9.1 ; python_version >= '3' --hash=sha256:{wheel_sha}\n" in text
    assert f"# Flask-Mail-0.9.1.tar.gz sha256:{sdist_sha} (the lock's)" in text
    wheel.write_bytes(b"tampered")
    assert wheelhouse._built_wheel(cache, wheelhouse.parse_lock(lock)[0]) is None


def test_built_lock_without_built_wheels_pins_nothing() -> None:
    """Every wheelhouse has built.lock (the Dockerfile copies it); with no sdist built it holds
    comments only, so the image's first install step is skipped."""
    text = wheelhouse.built_lock([])
    assert "--hash=" not in text and all(ln.startswith("#") or not ln
                                         for ln in text.splitlines())


def test_detect_target_is_read_once_per_image_id(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The base's Python tags are read by running it once per image id: a second build of the
    same base reads them from the state dir; another id, or a damaged file, runs it again."""
    from types import SimpleNamespace

    monkeypatch.setattr(wheelhouse, "STATE_DIR", tmp_path)
    runs: list[str] = []
    ids = {"base:1": "sha256:aaa", "base:2": "sha256:bbb"}

    def run(image: str, *args: Any, **kwargs: Any) -> bytes:
        runs.append(image)
        return b"cpython 3.11.2 linux-x86_64 glibc 2.36"

    cli = SimpleNamespace(images=SimpleNamespace(get=lambda ref: SimpleNamespace(id=ids[ref])),
                          containers=SimpleNamespace(run=run))
    first = wheelhouse.detect_target("base:1", cli, {})
    assert wheelhouse.detect_target("base:1", cli, {}) == first
    assert runs == ["base:1"] and first.key == "cp311-glibc2.36-x86_64"
    wheelhouse.detect_target("base:2", cli, {})
    assert runs == ["base:1", "base:2"]
    (tmp_path / "targets" / "sha256-aaa.json").write_text("{not json")
    assert wheelhouse.detect_target("base:1", cli, {}) == first
    assert runs == ["base:1", "base:2", "base:1"]
