"""Both builders against the real engine, on tiny Dockerfiles FROM the local Python base.

Each test writes its Dockerfile to tmp_path; every image built here is removed at the end of the
module. Registries are never reached: a missing FROM or ``# syntax=`` frontend is named either
under a unique absent name (``pull = "never"``) or on a closed 127.0.0.1 port.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from imagegate import build
from imagegate.build import base
from imagegate.build.builders import Builder, BuildResult, ClassicBuilder, select_builder
from imagegate.engine import session_labels
from imagegate.errors import BaseImageError, BuildFailed, UsageError
from testsupport import ci
from testsupport.ports import refused_port

# The harness's own machinery, tested for real: `make test` runs it; the gate's fast
# stages (gate_select = "not slow") leave it out.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("builders")]

Build = Callable[..., BuildResult]

#: One of everything the image config records, and a multi-stage COPY.
CONFIG_DOCKERFILE = """\
ARG BASE
FROM ${BASE} AS builder
RUN echo "{token}" > /token
FROM ${BASE}
COPY --from=builder /token /srv/token
ENV GREETING=hello APP_ENV=test
LABEL org.opencontainers.image.title=tiny tiny.token={token}
WORKDIR /srv
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["python3"]
CMD ["-c", "print(open('/srv/token').read())"]
"""


@pytest.fixture(scope="module")
def python_base(docker_client: Any) -> str:
    """The local Python base the Dockerfiles build FROM (made from Debian packages if missing)."""
    recipe = base.recipes("python")[0]
    try:
        docker_client.images.get(recipe.ref)
    except Exception:
        base.ensure_base(recipe, log=lambda _: None)
    return recipe.ref


@pytest.fixture(scope="module")
def buildkit(docker_client: Any) -> Builder:
    """The BuildKit builder this machine has (buildx, or a docker CLI older than 23). Missing, a
    skip with the reason; under CI=true, where the machine promises it, a failure."""
    try:
        return select_builder("buildkit", docker_client)
    except UsageError as exc:
        ci.missing("buildkit", exc.message)


@pytest.fixture
def builder(request: pytest.FixtureRequest, docker_client: Any) -> Builder:
    """The builder a parametrized case names: the classic one needs nothing else, BuildKit's
    case takes ``buildkit`` (so a machine without BuildKit still runs the classic case)."""
    if request.param == "classic":
        return ClassicBuilder(docker_client)
    found: Builder = request.getfixturevalue("buildkit")
    return found


@pytest.fixture(scope="module")
def built(docker_client: Any) -> Iterator[list[str]]:
    """Ids and tags of the images this module built; removed at its end."""
    made: list[str] = []
    yield made
    for ref in reversed(made):
        with contextlib.suppress(Exception):  # already gone, or a parent of another one
            docker_client.images.remove(ref, force=True, noprune=True)


@pytest.fixture
def make(docker_client: Any, python_base: str, built: list[str], tmp_path: Path) -> Build:
    """Write ``text`` (``{token}`` filled in) as tmp_path/Dockerfile and build it."""
    token = uuid.uuid4().hex

    def run(text: str, *, builder: Builder | str, tags: tuple[str, ...] = (),
            **kwargs: Any) -> BuildResult:
        (tmp_path / "Dockerfile").write_text(text.replace("{token}", token))
        built.extend(tags)
        result = build.build(
            docker_client, context=tmp_path, dockerfile=tmp_path / "Dockerfile", tags=tags,
            buildargs={"BASE": python_base}, labels={"imagegate.test": "builders"},
            progress=lambda _: None, builder=builder, **kwargs,
        )
        built.append(result.image_id)
        return result

    return run


@pytest.mark.slow
def test_classic_and_buildkit_give_the_same_image_config(make: Build, buildkit: Builder,
                                                        docker_client: Any,
                                                        imagegate_session: str) -> None:
    """Same Dockerfile, same labels, env, user, workdir, ports, entrypoint and cmd; each id is
    the one the engine holds under the tag, and the image runs the same."""
    tag = f"imagegate/test-builders:{uuid.uuid4().hex[:8]}"
    results = {
        name: make(CONFIG_DOCKERFILE, builder=builder, tags=(f"{tag}-{name}",))
        for name, builder in (("classic", ClassicBuilder(docker_client)), ("buildkit", buildkit))
    }
    configs = {}
    for name, result in results.items():
        image = docker_client.images.get(f"{tag}-{name}")
        assert image.id == result.image_id, f"{name}: the result's id is not the tagged image's"
        config = image.attrs["Config"]
        configs[name] = {key: config.get(key) for key in (
            "Labels", "Env", "User", "WorkingDir", "ExposedPorts", "Entrypoint", "Cmd")}
        assert config["Labels"]["imagegate.managed"] == "true"
        assert config["Labels"]["imagegate.test"] == "builders"
        out = docker_client.containers.run(result.image_id, remove=True, network_mode="none",
                                           labels=session_labels(imagegate_session))
        assert out.decode().strip() == config["Labels"]["tiny.token"]
    assert configs["classic"] == configs["buildkit"]
    assert results["classic"].builder == "classic"
    assert results["buildkit"].builder in ("buildkit", "buildx")


@pytest.mark.slow
@pytest.mark.parametrize("builder", ["classic", "buildkit"], indirect=True)
def test_second_build_reports_its_steps_cached(make: Build, builder: Builder,
                                               docker_client: Any) -> None:
    """A rebuild with nothing changed: every RUN and COPY step says it came from the cache."""
    cold = make(CONFIG_DOCKERFILE, builder=builder)
    warm = make(CONFIG_DOCKERFILE, builder=builder)
    assert warm.image_id == cold.image_id
    work = [s for s in warm.steps if s.text.startswith(("RUN", "COPY"))]
    assert len(work) == 2 and all(s.cached for s in work), warm.steps
    assert not any(s.cached for s in cold.steps if s.text.startswith(("RUN", "COPY")))


#: COPY the whole context, then list what arrived (the image's CMD prints it).
COPY_ALL_DOCKERFILE = """\
ARG BASE
FROM ${BASE}
COPY . /ctx/
CMD ["python3", "-c", "import os; print(sorted(os.listdir('/ctx')))"]
"""


@pytest.mark.parametrize("builder", ["classic", "buildkit"], indirect=True)
def test_excluded_paths_never_reach_the_image(make: Build, builder: Builder, docker_client: Any,
                                              imagegate_session: str, tmp_path: Path) -> None:
    """The gate's report directory (``exclude``) stays out of ``COPY .`` beside the project's
    own .dockerignore (still applied), and a new report there is no cache miss."""
    (tmp_path / "app.py").write_text("print('hi')\n")
    (tmp_path / "secret.txt").write_text("s3cret\n")
    (tmp_path / ".dockerignore").write_text("# the project's own\nsecret.txt\n")
    reports = tmp_path / ".imagegate-out"
    reports.mkdir()
    (reports / "result.json").write_text("{}\n")
    first = make(COPY_ALL_DOCKERFILE, builder=builder, exclude=(".imagegate-out",))
    out = docker_client.containers.run(first.image_id, remove=True, network_mode="none",
                                       labels=session_labels(imagegate_session))
    assert out.decode().strip() == "['.dockerignore', 'Dockerfile', 'app.py']"
    (reports / "junit.xml").write_text("<testsuites/>\n")
    again = make(COPY_ALL_DOCKERFILE, builder=builder, exclude=(".imagegate-out",))
    assert again.image_id == first.image_id, "a new report file invalidated the build cache"


def test_run_mount_cache_builds_with_buildkit(make: Build, buildkit: Builder,
                                              docker_client: Any, imagegate_session: str) -> None:
    """``RUN --mount=type=cache`` (BuildKit-only syntax) builds; the cache stays out of the image."""
    result = make(
        "ARG BASE\nFROM ${BASE}\n"
        "RUN --mount=type=cache,target=/root/.cache echo {token} > /root/.cache/t && "
        "cp /root/.cache/t /t\n", builder=buildkit)
    text = docker_client.containers.run(
        result.image_id, ["python3", "-c", "import os; print(open('/t').read().strip(), "
                          "os.path.exists('/root/.cache/t'))"],
        remove=True, network_mode="none", labels=session_labels(imagegate_session))
    token = text.decode().split()[0]
    assert len(token) == 32 and text.decode().split()[1] == "False"


def test_pull_never_with_a_missing_from_is_one_line(make: Build, docker_client: Any) -> None:
    """Nothing is sent to the engine or a registry: the one line, exit code 2."""
    absent = f"imagegate/absent-{uuid.uuid4().hex[:12]}:1"
    with pytest.raises(BaseImageError) as info:
        make(f"FROM {absent}\n", builder="auto", pull="never")
    assert info.value.message == (
        f'Dockerfile: FROM {absent} is not present locally and pull = "never"; pull or load it '
        '(docker load), or set pull = "missing"')
    assert info.value.exit_code == 2


def test_pull_missing_failure_names_image_and_complaint(make: Build) -> None:
    """pull = "missing" pulls the absent FROM; a registry that does not answer is one line."""
    with refused_port() as port, pytest.raises(BaseImageError) as info:
        ref = f"127.0.0.1:{port}/absent:1"
        make(f"FROM {ref}\n", builder="classic", pull="missing")
    message = info.value.message
    assert message.startswith(f"Dockerfile: FROM {ref} is not present locally and pulling it "
                              "failed: ")
    assert "connection refused" in message.lower() and "\n" not in message


@pytest.mark.parametrize("builder", ["classic", "buildkit"], indirect=True)
def test_hermetic_build_that_resolves_a_name(make: Build, builder: Builder,
                                             docker_client: Any) -> None:
    """network none: the failing step, its error line, and what to change about it."""
    with pytest.raises(BuildFailed) as info:
        make("ARG BASE\nFROM ${BASE}\n"
             "RUN python3 -c 'import socket; socket.getaddrinfo(\"pypi.org\", 443)' # {token}\n",
             builder=builder, network="none")
    message = info.value.message
    assert "RUN python3 -c 'import socket; socket.getaddrinfo(\"pypi.org\", 443)'" in message
    assert "failed (exit code 1): socket.gaierror: [Errno -3] Temporary failure in name " \
           "resolution" in message
    assert "the build ran with no network (hermetic = true): set hermetic = false" in message
    assert "\n" not in message and "getaddrinfo" in info.value.detail


def test_syntax_frontend_that_cannot_be_fetched(make: Build, buildkit: Builder) -> None:
    """A ``# syntax=`` frontend BuildKit cannot fetch (here: a closed local registry port)."""
    with refused_port() as port, pytest.raises(UsageError) as info:
        frontend = f"127.0.0.1:{port}/dockerfile:1"
        make(f"# syntax={frontend}\nARG BASE\nFROM ${{BASE}}\n", builder=buildkit)
    message = info.value.message
    assert message.startswith(f"Dockerfile:1: '# syntax={frontend}' needs the BuildKit frontend "
                              f"image {frontend}, which could not be fetched (")
    assert message.endswith("); remove the line or make that image available")
    assert "connection refused" in message.lower()


def test_syntax_frontend_under_pull_never(make: Build, buildkit: Builder) -> None:
    """pull = "never": the frontend is not fetched at all, and the line says why."""
    with pytest.raises(UsageError) as info:
        make("# syntax=docker/dockerfile:1\nARG BASE\nFROM ${BASE}\n", builder=buildkit,
             pull="never")
    assert 'could not be fetched (not present locally and pull = "never")' in info.value.message



