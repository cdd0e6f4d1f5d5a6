"""Zero-config discovery on projects as people write them (compose resolved for real, no engine)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from imagegate.config.discovery import discover
from imagegate.config.settings import Settings
from imagegate.errors import UsageError

DOCKERFILE = """
    FROM imagegate/python:3.11-bookworm AS base
    EXPOSE 9999
    FROM imagegate/python:3.11-bookworm AS final
    EXPOSE 5000 5001
    CMD ["python3", "-m", "http.server", "5000"]
"""


def project(root: Path, **files: str) -> Path:
    """Write ``files`` (name → dedented text; ``__`` in a name is a ``/``) into ``root``."""
    for name, text in files.items():
        path = root / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root


def settings(root: Path, **given: Any) -> Settings:
    """Settings for ``root`` with ``given`` values, each from pyproject.toml (else default)."""
    sources = {key: "pyproject.toml" for key in given}
    return Settings(project_dir=root, sources=sources, **given)


def found(root: Path, **given: Any) -> Any:
    """``discover`` on ``root`` with ``given`` settings."""
    return discover(root, settings(root, **given))


def test_docker_init_project(tmp_path: Path) -> None:
    """docker init's compose.yaml: ``server`` builds ``.``, publishes 8000:8000."""
    project(tmp_path, Dockerfile=DOCKERFILE, **{"compose.yaml": """
        services:
          server:
            build:
              context: .
            ports:
              - 8000:8000
    """})
    d = found(tmp_path)
    assert d.compose_file == tmp_path / "compose.yaml"
    assert (d.web_service, d.web_port, d.gated) == ("server", 8000, ("server",))
    assert (d.dockerfile, d.context, d.target, d.build_args) == (
        tmp_path / "Dockerfile", tmp_path, "", {})
    assert (d.health_path, d.expect_2xx) == ("/", False)
    assert d.values["web_service"] == ("server", "compose.yaml: builds .")
    assert d.values["web_port"] == (8000, "compose.yaml: server ports 8000:8000")
    assert d.values["dockerfile"] == ("Dockerfile", "compose.yaml: server build")
    assert "health_path" not in d.values
    assert d.describe()[:2] == ["compose_file: compose.yaml [found]",
                                "web_service: server [compose.yaml: builds .]"]


def test_tutorial_project(tmp_path: Path) -> None:
    """A tutorial's docker-compose.yml: ``web: build: .`` and a Redis from Docker Hub."""
    project(tmp_path, Dockerfile=DOCKERFILE, **{"docker-compose.yml": """
        services:
          web:
            build: .
            ports:
              - "5000:5000"
          redis:
            image: "redis:7-alpine"
    """})
    d = found(tmp_path)
    assert (d.web_service, d.web_port, d.gated) == ("web", 5000, ("web",))
    assert d.values["compose_file"] == ("docker-compose.yml", "found")


def test_no_compose_file_uses_the_dockerfile(tmp_path: Path) -> None:
    """No compose file is not an error: the stack has nothing to run; the port is EXPOSE's."""
    project(tmp_path, Dockerfile=DOCKERFILE)
    d = found(tmp_path)
    assert (d.compose_file, d.model, d.web_service, d.gated) == (None, None, "", ())
    assert d.no_compose.startswith("no compose file (compose.yaml, compose.yml")
    assert d.values["web_port"] == (5000, "Dockerfile: EXPOSE 5000 (first of 5000, 5001)")
    assert found(tmp_path, target="base").web_port == 9999
    assert d.describe()[0].startswith("compose_file: none [no compose file")


def test_build_long_syntax_decides_dockerfile_target_and_args(tmp_path: Path) -> None:
    """The gate builds exactly what compose would; given build args are added on top."""
    project(tmp_path, **{"app__docker__Dockerfile.prod": DOCKERFILE, "compose.yaml": """
        services:
          api:
            build:
              context: ./app
              dockerfile: docker/Dockerfile.prod
              target: base
              args: {VERSION: "1"}
            ports: ["127.0.0.1::9999"]
          worker:
            build:
              context: ./app
              dockerfile: docker/Dockerfile.prod
              target: base
            command: ["python3", "-m", "worker"]
          debug:
            build:
              context: ./app
              dockerfile: docker/Dockerfile.prod
              target: final
    """})
    d = found(tmp_path, context="app", build_args={"EXTRA": "x"})
    assert d.web_service == "api", "three build app/: the one publishing a port"
    assert d.dockerfile == tmp_path / "app/docker/Dockerfile.prod"
    assert (d.target, d.build_args) == ("base", {"VERSION": "1", "EXTRA": "x"})
    assert d.web_port == 9999
    assert d.gated == ("api", "worker"), "same Dockerfile and target: both run the tested image"
    assert d.values["context"] == ("app", "pyproject.toml")
    assert d.values["build_args"][1] == "compose.yaml: api build + pyproject.toml"
    picked = found(tmp_path, context="app", target="final")
    assert (picked.web_service, picked.gated) == ("debug", ("debug",)), "the target narrows it"


def test_two_services_build_the_project_one_publishes(tmp_path: Path) -> None:
    """web + worker both ``build: .``: the one that publishes a port serves HTTP."""
    project(tmp_path, Dockerfile=DOCKERFILE, **{"compose.yaml": """
        services:
          worker:
            build: .
          web:
            build: .
            ports: ["127.0.0.1:8080:8000"]
    """})
    d = found(tmp_path)
    assert (d.web_service, d.web_port, d.gated) == ("web", 8000, ("worker", "web"))


@pytest.mark.parametrize(("compose_text", "expected"), [
    ("""
        services:
          a: {build: ., ports: ["80"]}
          b: {build: ., ports: ["81"]}
     """, "compose.yaml: a, b all build .; set web_service (the one serving HTTP) in "
          "[tool.imagegate]"),
    ("""
        services:
          a: {image: x, ports: ["80"]}
          b: {image: y, ports: ["81"]}
     """, "compose.yaml: no service builds . and a, b all publish ports; set web_service "
          "(the one serving HTTP) in [tool.imagegate]"),
    ("""
        services:
          a: {image: x}
     """, "compose.yaml: no service builds . or publishes a port (services: a); set "
          "web_service in [tool.imagegate]"),
])
def test_web_service_ambiguous_or_none(tmp_path: Path, compose_text: str, expected: str) -> None:
    """One line listing the candidates and naming the web_service setting."""
    project(tmp_path, Dockerfile=DOCKERFILE, **{"compose.yaml": compose_text})
    with pytest.raises(UsageError) as caught:
        found(tmp_path)
    assert caught.value.message == expected


def test_only_service_publishing_a_port(tmp_path: Path) -> None:
    """No service builds the project (image pinned by a variable): the one publishing wins."""
    project(tmp_path, Dockerfile=DOCKERFILE, **{"compose.yml": """
        services:
          app:
            image: ${APP_IMAGE:?the image under test}
            ports: ["127.0.0.1::5000"]
          redis:
            image: redis
    """})
    d = found(tmp_path)
    assert (d.web_service, d.web_port, d.gated) == ("app", 5000, ())
    assert d.values["web_service"][1] == "compose.yml: the only service publishing a port"
    assert d.describe()[-2:] == ["gated services: none (no service builds Dockerfile)",
                                 "interpolation: APP_IMAGE [the tested image]"]


def test_given_settings_win(tmp_path: Path) -> None:
    """web_service, dockerfile, web_port and health_path given: discovery keeps them."""
    project(tmp_path, Dockerfile=DOCKERFILE, **{"Dockerfile.ci": DOCKERFILE, "compose.yaml": """
        services:
          server: {build: ., ports: ["8000:8000"]}
          other: {build: ., ports: ["9000:9000"]}
    """})
    d = found(tmp_path, web_service="other", dockerfile="Dockerfile.ci", web_port=7000,
              health_path="/healthz")
    assert (d.web_service, d.web_port, d.dockerfile) == ("other", 7000, tmp_path / "Dockerfile.ci")
    assert (d.health_path, d.expect_2xx) == ("/healthz", True)
    assert d.gated == (), "no service builds Dockerfile.ci"
    assert d.values["web_port"] == (7000, "pyproject.toml")
    assert "health: GET /healthz answers 2xx [pyproject.toml]" in d.describe()


@pytest.mark.parametrize(("given", "files", "expected"), [
    ({"web_service": "nope"}, {"compose.yaml": "services:\n  a: {build: .}\n"},
     "web_service 'nope' [pyproject.toml]: compose.yaml has no such service (services: a)"),
    ({"compose_file": "stack.yml"}, {},
     "compose_file stack.yml: not found in {root} [pyproject.toml]"),
    ({}, {"compose.yaml": "services:\n  a:\n    build: {context: ., dockerfile_inline: FROM x}\n"},
     "compose.yaml: service a builds from dockerfile_inline; the gate builds a local "
     "Dockerfile: set dockerfile (and context) in [tool.imagegate]"),
    ({}, {"compose.yaml": "services:\n  a:\n    image: x\n    ports: ['80']\n    environment:\n"
                          "      K: ${SECRET_KEY:?}\n"},
     "compose.yaml: required variable SECRET_KEY is missing a value; set it in "
     "[tool.imagegate.run_env]"),
])
def test_each_error_is_one_line(tmp_path: Path, given: dict[str, Any], files: dict[str, str],
                                expected: str) -> None:
    """Every discovery failure is one line that names the setting to add."""
    project(tmp_path, **files)
    with pytest.raises(UsageError) as caught:
        found(tmp_path, **given)
    assert caught.value.message == expected.format(root=tmp_path)


@pytest.mark.parametrize(("files", "expected"), [
    ({"Dockerfile": "FROM imagegate/python:3.11-bookworm\n",
      "compose.yaml": "services:\n  a: {build: .}\n"},
     "cannot tell the web port: compose.yaml: a publishes, exposes and binds no port and "
     "Dockerfile EXPOSEs none; "
     "set web_port in [tool.imagegate]"),
    ({}, "Dockerfile: Dockerfile not found; set dockerfile (or web_port) in [tool.imagegate]"),
])
def test_an_unknown_web_port_is_an_error_only_where_needed(tmp_path: Path, files: dict[str, str],
                                                           expected: str) -> None:
    """Linting needs no port: discovery records why it has none, and whatever runs the web
    service (the gate's preflight, the container fixtures) raises that one line."""
    from imagegate.config import project as project_mod
    from imagegate.config import settings as settings_mod

    project(tmp_path, **files)
    resolved = project_mod.resolve(settings_mod.load(tmp_path, environ={}))
    assert resolved.web_port == 0
    with pytest.raises(UsageError) as caught:
        project_mod.web_port(resolved)
    assert caught.value.message == expected


def test_run_env_feeds_interpolation(tmp_path: Path) -> None:
    """A required variable set in run_env (``@random`` too) lets discovery read the file."""
    project(tmp_path, Dockerfile=DOCKERFILE, **{"compose.yaml": """
        services:
          web:
            build: .
            ports: ["8000:8000"]
            environment:
              SECRET_KEY: ${SECRET_KEY:?}
    """})
    d = found(tmp_path, run_env={"SECRET_KEY": "@random"})
    assert d.web_service == "web"
    assert d.model is not None and len(d.model.service("web")["environment"]["SECRET_KEY"]) == 64


PROXIED = {
    "services__web__Dockerfile.prod": """
        FROM python:3.11-slim AS builder
        RUN pip wheel -w /wheels flask gunicorn
        FROM python:3.11-slim
        COPY --from=builder /wheels /wheels
        ENTRYPOINT ["/home/app/web/entrypoint.prod.sh"]
    """,
    "services__nginx__Dockerfile": "FROM nginx:1.25\nCOPY nginx.conf /etc/nginx/conf.d\n",
    "docker-compose.prod.yml": """
        services:
          web:
            build:
              context: ./services/web
              dockerfile: Dockerfile.prod
            command: gunicorn --bind 0.0.0.0:5000 manage:app
            expose: [5000]
          db:
            image: postgres:16
          nginx:
            build: ./services/nginx
            ports: ["1337:80"]
            depends_on: [web]
    """,
}


def test_proxied_project_gates_the_app_not_the_proxy(tmp_path: Path) -> None:
    """The tutorial's Flask + Postgres + Gunicorn + Nginx shape: nginx publishes the only port
    and builds its own image, yet the web service (expose only) is the app."""
    project(tmp_path, **PROXIED)
    d = found(tmp_path, compose_file="docker-compose.prod.yml")
    assert (d.web_service, d.web_port, d.gated, d.others) == ("web", 5000, ("web",), ("nginx",))
    assert d.values["web_service"][1] == ("docker-compose.prod.yml: builds services/web "
                                          "(Dockerfile.prod) (nginx: FROM nginx:1.25: a proxy, "
                                          "never the app)")
    assert d.values["web_port"] == (5000, "docker-compose.prod.yml: web expose 5000")
    assert d.dockerfile == tmp_path / "services/web/Dockerfile.prod"
    assert d.context == tmp_path / "services/web"
    assert "also built: nginx (their own build:, run in the stack, linted as advice)" in \
        d.describe()


def test_port_from_the_server_command(tmp_path: Path) -> None:
    """No ports, no expose: the port the compose command binds; flask run's default 5000."""
    files = dict(PROXIED)
    files["docker-compose.prod.yml"] = files["docker-compose.prod.yml"].replace(
        "            expose: [5000]\n", "")
    project(tmp_path, **files)
    d = found(tmp_path, compose_file="docker-compose.prod.yml")
    assert d.values["web_port"] == (5000, "docker-compose.prod.yml: web runs --bind 0.0.0.0:5000")
    (tmp_path / "docker-compose.prod.yml").write_text(
        (tmp_path / "docker-compose.prod.yml").read_text().replace(
            "gunicorn --bind 0.0.0.0:5000 manage:app", "flask run --host 0.0.0.0"))
    d = found(tmp_path, compose_file="docker-compose.prod.yml")
    assert d.values["web_port"] == (5000, "docker-compose.prod.yml: web runs flask run "
                                          "(default port)")


def test_two_apps_name_both_and_the_setting(tmp_path: Path) -> None:
    """Two non-proxy builds that both run a server and expose a port: one line naming both."""
    files = dict(PROXIED)
    files["services__admin__Dockerfile"] = "FROM python:3.11-slim\nCMD [\"gunicorn\", \"a:b\"]\n"
    files["docker-compose.prod.yml"] = files["docker-compose.prod.yml"].rstrip(" ") + (
                                        "          admin:\n            build: ./services/admin\n"
                                         "            expose: [8000]\n")
    project(tmp_path, **files)
    with pytest.raises(UsageError) as caught:
        found(tmp_path, compose_file="docker-compose.prod.yml")
    assert caught.value.message == ("docker-compose.prod.yml: web, admin all build an app image; "
                                    "set web_service (the one serving HTTP) in [tool.imagegate]")


def test_interpolation_follows_compose(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The process environment first (CI passes secrets so), then ``.env``, then run_env; the
    header names where each came from, never a value."""
    project(tmp_path, Dockerfile=DOCKERFILE, **{".env": "FROM_DOTENV=dot\nBOTH=dot\n",
                                                "compose.yaml": """
        services:
          web:
            build: .
            ports: ["8000:8000"]
            environment:
              A: ${FLASK_SECRET_KEY:?must be set}
              B: ${FROM_DOTENV:?}
              C: ${BOTH:?}
              D: ${FROM_RUN_ENV:?}
    """})
    monkeypatch.setenv("FLASK_SECRET_KEY", "from-the-ci-secret")
    monkeypatch.setenv("BOTH", "from-the-shell")
    d = found(tmp_path, run_env={"FROM_RUN_ENV": "run", "FROM_DOTENV": "run", "BOTH": "run"})
    assert d.model is not None
    assert d.model.service("web")["environment"] == {
        "A": "from-the-ci-secret", "B": "dot", "C": "from-the-shell", "D": "run"}
    line = next(x for x in d.describe() if x.startswith("interpolation: "))
    assert line == ("interpolation: BOTH [environment], FLASK_SECRET_KEY [environment], "
                    "FROM_DOTENV [.env], FROM_RUN_ENV [run_env]")
    assert "from-the-ci-secret" not in "\n".join(d.describe())


def test_compose_file_none_gates_the_image_alone(tmp_path: Path) -> None:
    """``compose_file = "none"``: no stack, though the project has a compose file; the port is
    the Dockerfile's, and the header says why there is no stack."""
    from imagegate.config import project as project_mod

    project(tmp_path, Dockerfile=DOCKERFILE, **{"compose.yaml": "services:\n  a: {build: .}\n"})
    resolved = project_mod.resolve(settings(tmp_path, compose_file="none"))
    assert (resolved.compose_file, resolved.web_service, resolved.web_port) == ("", "", 5000)
    assert resolved.sources["compose_file"] == ("compose_file = none [pyproject.toml]: the image "
                                                "runs alone, no stack")
