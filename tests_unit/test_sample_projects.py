"""The sample projects under tests_stack/projects/ are what they claim to be (no Docker needed).

They are test data for the gate: projects written as people write them, not for imagegate. These
tests only keep them honest: files present, Dockerfiles naming the stand-in images, compose files
as their authors wrote them, the apps answering ``/`` in Flask's test client.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from imagegate.model.dockerfile import exposed_ports, from_images, parse

PROJECTS = Path(__file__).resolve().parents[1] / "tests_stack" / "projects"

# (project, compose file, the web service, its port, the program the CMD starts)
SAMPLES = [
    ("dockerinit", "compose.yaml", "server", 8000, "gunicorn"),
    ("classic", "docker-compose.yml", "web", 5000, "gunicorn"),
    ("seedmulti", "docker-compose.yml", "web", 8000, "gunicorn"),
]


@pytest.fixture(autouse=True)
def no_bytecode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Importing a sample must not leave __pycache__ in it (it would land in its build context)."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)


@pytest.mark.parametrize(("project", "compose", "service", "port", "program"), SAMPLES)
def test_dockerfile_is_written_for_the_stock_image(project: str, compose: str, service: str,
                                                    port: int, program: str) -> None:
    """Every FROM is python:3.11-slim (a stand-in locally), no syntax directive, no HEALTHCHECK."""
    text = (PROJECTS / project / "Dockerfile").read_text()
    df = parse(text)
    assert from_images(text, {}) == ["python:3.11-slim"]
    assert "syntax" not in df.directives, "a # syntax= line makes BuildKit pull its frontend"
    assert not [i for i in df.instructions if i.keyword == "HEALTHCHECK"]
    assert exposed_ports(df) == [port]
    cmd = [i for i in df.instructions if i.keyword == "CMD"][-1]
    assert (cmd.exec_form or cmd.rest.split())[0] == program


@pytest.mark.parametrize(("project", "compose", "service", "port", "program"), SAMPLES)
def test_compose_file_builds_the_web_service(project: str, compose: str, service: str,
                                             port: int, program: str) -> None:
    """The compose file builds the service from `.` and publishes the port on a fixed host port."""
    model = yaml.safe_load((PROJECTS / project / compose).read_text())
    web = model["services"][service]
    assert web["build"] in (".", {"context": "."})
    assert [str(p) for p in web["ports"]] == [f"{port}:{port}"]
    assert "healthcheck" not in web


@pytest.mark.parametrize("project", [s[0] for s in SAMPLES])
def test_not_shaped_for_imagegate(project: str) -> None:
    """No pyproject with [tool.imagegate], no x-imagegate keys or labels: discovery must do it."""
    root = PROJECTS / project
    assert not (root / "pyproject.toml").exists()
    for path in root.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            text = path.read_text()
            assert not any(mark in text for mark in ("tool.imagegate", "x-imagegate", "imagegate.")), path


@pytest.mark.parametrize("project", [s[0] for s in SAMPLES])
def test_requirements_are_pinned(project: str) -> None:
    """requirements.txt pins flask and gunicorn (and redis where the app uses it)."""
    lines = (PROJECTS / project / "requirements.txt").read_text().split()
    names = {line.split("==")[0] for line in lines}
    assert all("==" in line for line in lines)
    assert {"flask", "gunicorn"} <= names


def test_classic_pairs_web_with_redis_alpine() -> None:
    """The tutorial shape: web depends on redis:7-alpine and finds it through REDIS_URL."""
    services = yaml.safe_load((PROJECTS / "classic/docker-compose.yml").read_text())["services"]
    assert services["redis"] == {"image": "redis:7-alpine"}
    assert services["web"]["depends_on"] == ["redis"]
    assert "REDIS_URL=redis://redis:6379/0" in services["web"]["environment"]


def test_seedmulti_copies_site_packages_but_not_console_scripts() -> None:
    """The seed's bug, kept on purpose: the final stage gets packages, not the gunicorn script."""
    df = parse((PROJECTS / "seedmulti/Dockerfile").read_text())
    copies = [i.args for i in df.stages[-1].instructions if i.keyword == "COPY"]
    assert any("--from=builder" in c and "site-packages" in c for c in copies)
    assert not any("/bin" in c for c in copies)
    web = yaml.safe_load((PROJECTS / "seedmulti/docker-compose.yml").read_text())["services"]["web"]
    assert web["volumes"] == [".:/app"]


def _load(path: Path, name: str, *, package: bool = False) -> ModuleType:
    """Import a sample's module (or package) under a unique name: the repo has its own `app`."""
    spec = importlib.util.spec_from_file_location(
        name, path, submodule_search_locations=[str(path.parent)] if package else None,
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # relative imports inside a package look their parent up here
    spec.loader.exec_module(module)
    return module


def test_flaskr_factory_says_hello() -> None:
    """create_app() builds an app whose / and /hello answer 200 with a greeting."""
    pytest.importorskip("flask")
    package = _load(PROJECTS / "dockerinit/flaskr/__init__.py", "sample_flaskr", package=True)
    client = package.create_app({"TESTING": True}).test_client()
    for path in ("/", "/hello"):
        response = client.get(path)
        assert response.status_code == 200 and b"Hello" in response.data


def test_classic_counts_visits(monkeypatch: pytest.MonkeyPatch) -> None:
    """/ increments the Redis counter and reports it (Redis replaced by a dict)."""
    pytest.importorskip("redis")
    module = _load(PROJECTS / "classic/app.py", "sample_classic_app")
    hits: dict[str, int] = {}

    class FakeRedis:
        def incr(self, key: str) -> int:
            hits[key] = hits.get(key, 0) + 1
            return hits[key]

    monkeypatch.setattr(module, "redis", FakeRedis())
    client = module.app.test_client()
    assert client.get("/").data == b"Hello! seen 1 times\n"
    assert client.get("/").data == b"Hello! seen 2 times\n"


def test_seedmulti_app_answers() -> None:
    """The single-module app answers / (what is broken is the image, not the code)."""
    pytest.importorskip("flask")
    module = _load(PROJECTS / "seedmulti/app.py", "sample_seedmulti_app")
    response = module.app.test_client().get("/")
    assert response.status_code == 200 and b"Hello" in response.data
