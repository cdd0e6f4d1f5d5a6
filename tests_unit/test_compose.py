"""The compose model: small projects in tmp_path, resolved by the real ``compose config``.

No engine needed: ``compose config`` only reads files. Each test writes the compose file a person
would write (docker init's compose.yaml, a tutorial's docker-compose.yml) and reads the model.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from imagegate.errors import UsageError
from imagegate.model import compose
from imagegate.model.compose import Bind, Model, PortMapping


def write(root: Path, name: str, text: str) -> Path:
    """Write a dedented file under ``root`` (parents made) and return its path."""
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def load(root: Path, text: str, name: str = "compose.yaml", **env: str) -> Model:
    """The model of one compose file written into ``root``."""
    return Model.load([write(root, name, text)], project_dir=root, env=env)


# -- file names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("present", "expected"), [
    (("docker-compose.yml", "compose.yaml"), "compose.yaml"),
    (("docker-compose.yml", "compose.yml"), "compose.yml"),
    (("docker-compose.yml", "docker-compose.yaml"), "docker-compose.yaml"),
    (("docker-compose.yml",), "docker-compose.yml"),
    (("compose.override.yaml",), None),
    ((), None),
])
def test_find_file_follows_the_spec_order(tmp_path: Path, present: tuple[str, ...],
                                          expected: str | None) -> None:
    """compose.yaml, compose.yml, docker-compose.yaml, docker-compose.yml; overrides never."""
    for name in present:
        write(tmp_path, name, "services: {}\n")
    found = compose.find_file(tmp_path)
    assert (found.name if found else None) == expected


# -- build --------------------------------------------------------------------------------------


def test_build_short_syntax_is_the_context_with_its_dockerfile(tmp_path: Path) -> None:
    """A tutorial's ``web: build: .``: context is the project, Dockerfile inside it."""
    model = load(tmp_path, """
        services:
          web:
            build: .
          redis:
            image: redis:7-alpine
    """, name="docker-compose.yml")
    spec = model.build("web")
    assert spec is not None
    assert (spec.context, spec.dockerfile, spec.target, dict(spec.args)) == (
        tmp_path.resolve(), tmp_path.resolve() / "Dockerfile", "", {})
    assert model.build("redis") is None
    assert model.image("redis") == "redis:7-alpine"


def test_build_long_syntax_dockerfile_is_relative_to_the_context(tmp_path: Path) -> None:
    """``dockerfile:`` is read from the context (as docker does), target and args kept."""
    model = load(tmp_path, """
        services:
          server:
            build:
              context: ./app
              dockerfile: docker/Dockerfile.prod
              target: final
              args:
                PYTHON_VERSION: "3.11"
                FROM_ENV: ${FROM_ENV:-dflt}
    """)
    spec = model.build("server")
    assert spec is not None
    root = tmp_path.resolve()
    assert spec.context == root / "app"
    assert spec.dockerfile == root / "app" / "docker" / "Dockerfile.prod"
    assert spec.target == "final"
    assert dict(spec.args) == {"PYTHON_VERSION": "3.11", "FROM_ENV": "dflt"}
    assert spec.same_build(root / "app", root / "app/docker/Dockerfile.prod", "final")
    assert not spec.same_build(root / "app", root / "app/docker/Dockerfile.prod", "dev")


def test_inline_and_remote_builds_never_match_a_local_dockerfile(tmp_path: Path) -> None:
    """``dockerfile_inline`` and a git context are builds the gate cannot pin a Dockerfile to."""
    model = load(tmp_path, """
        services:
          inline:
            build:
              context: .
              dockerfile_inline: "FROM scratch"
          remote:
            build: https://github.com/example/repo.git
    """)
    inline, remote = model.build("inline"), model.build("remote")
    assert inline is not None and inline.inline == "FROM scratch"
    assert remote is not None and remote.remote.startswith("https://")
    root = tmp_path.resolve()
    assert not inline.same_build(root, root / "Dockerfile")
    assert not remote.same_build(root, root / "Dockerfile")


# -- ports --------------------------------------------------------------------------------------


def test_ports_short_and_long_syntax(tmp_path: Path) -> None:
    """Both syntaxes come back in one long form; ranges expand, host_ip kept."""
    model = load(tmp_path, """
        services:
          server:
            image: x
            ports:
              - 8000:8000
              - "127.0.0.1:9000:9000/udp"
              - "5000"
              - "7000-7001:7100-7101"
              - target: 80
                published: "8080"
                host_ip: 0.0.0.0
              - "[::]:443:443"
    """)
    assert model.published("server") == [
        PortMapping(8000, "8000", "", "tcp"),
        PortMapping(9000, "9000", "127.0.0.1", "udp"),
        PortMapping(5000, "", "", "tcp"),
        PortMapping(7100, "7000", "", "tcp"),
        PortMapping(7101, "7001", "", "tcp"),
        PortMapping(80, "8080", "0.0.0.0", "tcp"),
        PortMapping(443, "443", "::", "tcp"),
    ]
    assert [p.short for p in model.published("server")][:3] == [
        "8000:8000", "127.0.0.1:9000:9000/udp", "5000"]


def test_exposed_beyond_loopback_flags_every_interface(tmp_path: Path) -> None:
    """Empty host_ip, 0.0.0.0 and :: publish on every interface; 127.0.0.1 does not."""
    model = load(tmp_path, """
        services:
          server:
            build: .
            ports: ["8000:8000", "127.0.0.1::9000"]
          admin:
            image: x
            ports: ["0.0.0.0:81:81", "[::]:82:82"]
          redis:
            image: redis
            ports: ["127.0.0.1:6379:6379"]
    """)
    found = compose.exposed_beyond_loopback(model)
    assert [service for service, _ in found] == ["server", "admin", "admin"]
    text = found[0][1]
    assert "server: port 8000:8000 is published on every interface (no host_ip)" in text
    assert '"127.0.0.1:8000:8000"' in text
    assert "host_ip 0.0.0.0" in found[1][1]
    assert "host_ip ::" in found[2][1]


# -- mounts -------------------------------------------------------------------------------------


def test_binds_and_source_mounts(tmp_path: Path) -> None:
    """``.:/app`` and ``./src:/app/src`` lay the project over the image; volumes do not, nor does
    a stock proxy's config file (only services that build from the project are judged)."""
    model = load(tmp_path, """
        services:
          server:
            build: .
            volumes:
              - .:/app
              - ./src:/app/src:ro
              - data:/data
              - /etc/hosts:/etc/extra-hosts:ro
          worker:
            build: .
            volumes:
              - type: bind
                source: ./app
                target: /srv/app
          redis:
            image: redis
            volumes: [data:/data, /anonymous]
          proxy:
            image: nginx:1.25
            volumes: ["./nginx.conf:/etc/nginx/conf.d/default.conf:ro"]
        volumes:
          data:
    """)
    root = tmp_path.resolve()
    assert model.binds("server") == [Bind(root, "/app"), Bind(root / "src", "/app/src", True),
                                     Bind(Path("/etc/hosts"), "/etc/extra-hosts", True)]
    assert model.binds("redis") == []
    found = compose.source_mounts(model, tmp_path)
    assert [(s, t.split(" lays")[0]) for s, t in found] == [
        ("server", "server: bind mount .:/app"),
        ("server", "server: bind mount ./src:/app/src:ro"),
        ("worker", "worker: bind mount ./app:/srv/app"),
    ]
    assert "compose.dev.yml" in found[0][1]
    # a stock proxy's config file is deployment configuration, unless asked to judge it
    assert compose.source_mounts(model, tmp_path, ["proxy"])[0][1].startswith(
        "proxy: bind mount ./nginx.conf:/etc/nginx/conf.d/default.conf:ro")


# -- other accessors ----------------------------------------------------------------------------


def test_services_in_file_order_with_lines_and_healthcheck(tmp_path: Path) -> None:
    """Services keep the file's order (compose's JSON sorts them); file_line finds each key."""
    model = load(tmp_path, """
        # a comment
        name: demo
        services:
          zeta:
            image: x
            healthcheck:
              test: ["CMD", "true"]
              interval: 2s

          "alpha":
            image: y
        volumes:
          data:
    """)
    assert model.services == ["zeta", "alpha"]
    assert (model.file_line("zeta"), model.file_line("alpha"), model.file_line("nope")) == (
        4, 10, None)
    assert model.healthcheck("zeta") == {"test": ["CMD", "true"], "interval": "2s"}
    assert model.healthcheck("alpha") is None
    assert model.name == "demo"
    with pytest.raises(UsageError, match=r"no service 'nope' \(services: zeta, alpha\)"):
        model.service("nope")


# -- errors -------------------------------------------------------------------------------------


def test_missing_required_variable_names_it_and_run_env(tmp_path: Path) -> None:
    """``${SECRET_KEY:?msg}`` unset: one line naming the variable, its hint and run_env."""
    with pytest.raises(UsageError) as caught:
        load(tmp_path, """
            services:
              web:
                image: x
                environment:
                  SECRET_KEY: ${SECRET_KEY:?SECRET_KEY must be set}
        """)
    message = caught.value.message
    assert message == ("compose.yaml: required variable SECRET_KEY is missing a value "
                       "(SECRET_KEY must be set); set it in [tool.imagegate.run_env]")
    assert "\n" not in message


def test_required_variable_given_in_env_resolves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                 ) -> None:
    """The env given wins; a stray process variable the file reads is blanked, not used."""
    monkeypatch.setenv("STRAY", "from-the-shell")
    model = load(tmp_path, """
        services:
          web:
            image: ${IMAGE:?}
            environment:
              STRAY: ${STRAY:-default}
    """, IMAGE="imagegate/app:local")
    assert model.image("web") == "imagegate/app:local"
    assert model.service("web")["environment"] == {"STRAY": "default"}


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    """Broken YAML: the file and compose's own complaint, one line; with two files, the bad one."""
    good = write(tmp_path, "compose.yaml", "services:\n  web:\n    image: x\n")
    bad = write(tmp_path, "compose.ci.yml", "services:\n  web:\n    image: x\n   bad: [\n")
    with pytest.raises(UsageError) as caught:
        Model.load([good, bad], project_dir=tmp_path, env={})
    assert caught.value.message.startswith("compose.ci.yml: invalid YAML: ")
    assert "\n" not in caught.value.message


def test_unknown_key_and_missing_file(tmp_path: Path) -> None:
    """A schema error keeps compose's words; a missing file is named."""
    with pytest.raises(UsageError, match="bogus"):
        load(tmp_path, "services:\n  web:\n    image: x\n    bogus: 1\n")
    with pytest.raises(UsageError, match="compose file not found"):
        Model.load([tmp_path / "nope.yml"], project_dir=tmp_path, env={})


# -- the gate's override ------------------------------------------------------------------------


DOCKER_INIT = """
    services:
      server:
        build:
          context: .
        ports:
          - 8000:8000
        depends_on: [redis]
      redis:
        image: redis:7-alpine
        container_name: redis
        labels:
          - keep=me
        ports:
          - "6379:6379/tcp"
        volumes: [redis-data:/data]
      worker:
        build: ./worker
    volumes:
      redis-data:
      shared:
        external: true
    networks:
      default:
      outside:
        external: true
"""


def test_gate_override_pins_remaps_and_labels(tmp_path: Path) -> None:
    """Gated services run the tested image, no build; every port on 127.0.0.1, ephemeral."""
    model = load(tmp_path, DOCKER_INIT)
    labels = {"imagegate.session": "ig123", "odd": "a$b"}
    text = compose.gate_override(model, tested_image="sha256:" + "a" * 64, gated=["server"],
                                 labels=labels)
    assert "!reset null" in text and "!override [" in text
    override = write(tmp_path, "gate.yml", text)
    merged = Model.load([tmp_path / "compose.yaml", override], project_dir=tmp_path, env={})
    server = merged.service("server")
    assert server["image"] == "sha256:" + "a" * 64
    assert server["pull_policy"] == "never"
    assert "build" not in server
    assert merged.published("server") == [PortMapping(8000, "", "127.0.0.1", "tcp")]
    assert merged.published("redis") == [PortMapping(6379, "", "127.0.0.1", "tcp")]
    assert merged.build("worker") is not None, "only gated services lose their build"
    for service in merged.services:
        assert merged.service(service)["labels"]["imagegate.session"] == "ig123"
    assert merged.service("redis")["labels"]["keep"] == "me"
    assert "container_name" not in merged.service("redis"), "a fixed name would collide"
    assert merged.raw["volumes"]["redis-data"]["labels"]["imagegate.session"] == "ig123"
    assert "labels" not in merged.raw["networks"].get("outside", {})
    assert merged.raw["networks"]["default"]["labels"]["imagegate.session"] == "ig123"
    # `$` is escaped so compose does not interpolate a label value.
    assert "a$$b" in text
    assert compose.exposed_beyond_loopback(merged) == []


AWAITED = """
    services:
      web:
        image: app
        depends_on:
          db: {condition: service_healthy}
          cache: {condition: service_started}
        healthcheck: {test: ["CMD", "true"], interval: 30s}
      db:
        image: postgres
        healthcheck: {test: ["CMD", "pg_isready"], interval: 10s, retries: 5}
      cache:
        image: redis
        healthcheck: {test: ["CMD", "redis-cli", "ping"]}
"""


def test_gate_override_probes_an_awaited_service_faster(tmp_path: Path) -> None:
    """Every healthcheck is probed every second in the gate; a service another waits for to be
    healthy (nothing starts before it is), four times as often with four times the retries:
    found healthy sooner, declared unhealthy no sooner. What compose resolves is checked."""
    model = load(tmp_path, AWAITED)
    assert compose.awaited_healthy(model) == {"db"}
    text = compose.gate_override(model, tested_image="", gated=[], labels={})
    merged = Model.load([tmp_path / "compose.yaml", write(tmp_path, "gate.yml", text)],
                        project_dir=tmp_path, env={})
    db, web, cache = (merged.healthcheck(s) or {} for s in ("db", "web", "cache"))
    assert (db["interval"], db["retries"]) == ("250ms", 20)
    assert db["test"] == ["CMD", "pg_isready"], "the user's own command is kept"
    assert web["interval"] == cache["interval"] == "1s"
    assert "retries" not in cache or cache["retries"] == 3
    with pytest.raises(UsageError, match="not a duration"):
        compose._seconds("soon")
    assert compose._seconds("1m30s") == 90 and compose._seconds("500ms") == 0.5


def test_gate_override_is_json_under_its_tags(tmp_path: Path) -> None:
    """YAML is a superset of JSON: with the tags removed the text is plain JSON."""
    model = load(tmp_path, DOCKER_INIT)
    text = compose.gate_override(model, tested_image="imagegate/app:tested", gated=["server"],
                                 labels={"imagegate.session": "ig1"})
    body = "\n".join(ln for ln in text.splitlines() if not ln.startswith("#"))
    parsed = json.loads(body.replace("!reset ", "").replace("!override ", ""))
    assert parsed["services"]["server"]["image"] == "imagegate/app:tested"
    assert parsed["services"]["worker"] == {"labels": {"imagegate.session": "ig1"}}
    assert sorted(parsed["volumes"]) == ["redis-data"]


def test_gate_override_refuses_unknown_service_or_no_image(tmp_path: Path) -> None:
    """Pinning a service that is not there, or without an image, is a usage error."""
    model = load(tmp_path, DOCKER_INIT)
    with pytest.raises(UsageError, match="no service web"):
        compose.gate_override(model, tested_image="x", gated=["web"], labels={})
    with pytest.raises(UsageError, match="tested image"):
        compose.gate_override(model, tested_image="", gated=["server"], labels={})


def test_gated_and_other_builds(tmp_path: Path) -> None:
    """The gated Dockerfile + context picks ``server``; ``worker`` builds something else."""
    model = load(tmp_path, DOCKER_INIT)
    root = tmp_path.resolve()
    assert compose.gated_services(model, context=root, dockerfile=root / "Dockerfile") == ["server"]
    others = compose.other_builds(model, ["server"])
    assert [(name, spec.context) for name, spec in others] == [("worker", root / "worker")]
