"""The builders without an engine: argv, reading captured logs, failure lines, pull policy, choice.

The logs below are excerpts of real builds (Docker Engine 20.10: the SDK's classic stream, and
``DOCKER_BUILDKIT=1 docker build --progress=plain`` from Debian's 20.10 CLI) of tiny Dockerfiles
FROM ``imagegate/python:3.11-bookworm``; the ``python:3.11-slim`` one is the tests' local stand-in.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from imagegate import build
from imagegate.build import base, builders, pipeline
from imagegate.build.builders import (
    BuildKitBuilder,
    BuildRequest,
    ClassicBuilder,
    CliProbe,
    PlainLog,
    Step,
    select_builder,
)
from imagegate.config import settings
from imagegate.errors import BaseImageError, BuildFailed, UsageError

# -- captured logs -----------------------------------------------------------------------------

#: ``docker build`` of a two-stage file, cold: BuildKit names one shared FROM, no LABEL/ENV steps.
BK_COLD = """\
#1 [internal] load build definition from Dockerfile
#1 sha256:406a64e765a1bf958de4a18b0733f8365330346e36166959608e5867ab851e68
#1 transferring dockerfile: 239B done
#1 DONE 0.0s

#3 [internal] load metadata for docker.io/imagegate/python:3.11-bookworm
#3 DONE 0.0s

#4 [stage-1 1/3] FROM docker.io/imagegate/python:3.11-bookworm
#4 sha256:d8ba34b5694dc0a1b3831066a29a2aaa64403f63e0ec142301a42e4c7b521cb3
#4 DONE 0.0s

#6 [internal] load build context
#6 transferring context: 34B done
#6 DONE 0.0s

#5 [builder 2/3] RUN echo hello > /hello
#5 sha256:a108ce67d690efea0042a448b665b126dd0232a8bc1fad5f0d98d2779ba20ff9
#5 DONE 0.4s

#7 [builder 3/3] COPY f.txt /f.txt
#7 DONE 0.0s

#8 [stage-1 2/3] COPY --from=builder /hello /hello
#8 DONE 0.0s

#9 [stage-1 3/3] RUN python3 -c 'print("ok")'
#9 0.369 ok
#9 DONE 0.4s

#10 exporting to image
#10 exporting layers 0.0s done
#10 writing image sha256:0dce5965ec9db1a7c16d40a0d6010902ee3472a8981f2a0ea96a473ec7290413 done
#10 naming to docker.io/library/igx-test:bk done
#10 DONE 0.0s
"""

#: The same build again: every step ``CACHED`` (the FROM says DONE, as BuildKit reports it).
BK_WARM = """\
#4 [builder 1/3] FROM docker.io/imagegate/python:3.11-bookworm
#4 DONE 0.0s

#5 [builder 2/3] RUN echo hello > /hello
#5 sha256:a108ce67d690efea0042a448b665b126dd0232a8bc1fad5f0d98d2779ba20ff9
#5 CACHED

#7 [builder 3/3] COPY f.txt /f.txt
#7 CACHED

#8 [stage-1 2/3] COPY --from=builder /hello /hello
#8 CACHED

#9 [stage-1 3/3] RUN python3 -c 'print("ok")'
#9 CACHED

#10 exporting to image
#10 writing image sha256:0dce5965ec9db1a7c16d40a0d6010902ee3472a8981f2a0ea96a473ec7290413 done
#10 DONE 0.0s
"""

#: ``--network none`` and a step that resolves a name.
BK_NO_NETWORK = """\
#4 [1/3] FROM docker.io/imagegate/python:3.11-bookworm
#4 CACHED

#5 [2/3] RUN echo first
#5 0.091 first
#5 DONE 0.1s

#6 [3/3] RUN python3 -c 'import socket; socket.getaddrinfo("pypi.org", 443)'
#6 0.118 Traceback (most recent call last):
#6 0.118   File "<string>", line 1, in <module>
#6 0.118   File "/usr/lib/python3.11/socket.py", line 962, in getaddrinfo
#6 0.118     for res in _socket.getaddrinfo(host, port, family, type, proto, flags):
#6 0.118                ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
#6 0.118 socket.gaierror: [Errno -3] Temporary failure in name resolution
#6 ERROR: executor failed running [/bin/sh -c python3 -c 'import socket; socket.getaddrinfo("pypi.org", 443)']: exit code: 1
------
 > [3/3] RUN python3 -c 'import socket; socket.getaddrinfo("pypi.org", 443)':
------
executor failed running [/bin/sh -c python3 -c 'import socket; socket.getaddrinfo("pypi.org", 443)']: exit code: 1
"""  # noqa: E501

#: pip with no network: retries, then "No matching distribution".
BK_PIP = """\
#5 [2/2] RUN pip install --retries 1 --timeout 2 flask==3.1.0
#5 0.678 WARNING: Retrying (Retry(total=0, connect=None, read=None, redirect=None, status=None)) after connection broken by 'NewConnectionError('<pip._vendor.urllib3.connection.HTTPSConnection object at 0x7f71160a0ad0>: Failed to establish a new connection: [Errno -3] Temporary failure in name resolution')': /simple/flask/
#5 0.688 ERROR: Could not find a version that satisfies the requirement flask==3.1.0 (from versions: none)
#5 0.689 ERROR: No matching distribution found for flask==3.1.0
#5 ERROR: executor failed running [/bin/sh -c pip install --retries 1 --timeout 2 flask==3.1.0]: exit code: 1
------
 > [2/2] RUN pip install --retries 1 --timeout 2 flask==3.1.0:
------
executor failed running [/bin/sh -c pip install --retries 1 --timeout 2 flask==3.1.0]: exit code: 1
"""  # noqa: E501

#: A COPY of a file the context does not have: no exit code, the builder's own error.
BK_COPY = """\
#6 [2/2] COPY nope.txt /nope.txt
#6 ERROR: "/nope.txt" not found: not found
------
 > [2/2] COPY nope.txt /nope.txt:
------
failed to compute cache key: "/nope.txt" not found: not found
"""

#: A Dockerfile the frontend cannot parse: no vertex fails, only the closing summary says why.
BK_PARSE = """\
#2 [internal] load .dockerignore
#2 transferring context: 2B done
#2 DONE 0.0s
failed to solve with frontend dockerfile.v0: failed to create LLB definition: dockerfile parse error line 2: unknown instruction: FOO
"""  # noqa: E501

#: ``# syntax=docker/dockerfile:1`` where no registry answers.
BK_SYNTAX = """\
#3 resolve image config for docker.io/docker/dockerfile:1
#3 sha256:ac072d521901222eeef550f52282877f196e16b0247844be9ceb1ccc1eac391d
#3 ERROR: failed to do request: Head "https://registry-1.docker.io/v2/docker/dockerfile/manifests/1": dial tcp: lookup registry-1.docker.io on 10.255.255.53:53: no such host
------
 > resolve image config for docker.io/docker/dockerfile:1:
------
failed to solve with frontend dockerfile.v0: failed to solve with frontend gateway.v0: failed to do request: Head "https://registry-1.docker.io/v2/docker/dockerfile/manifests/1": dial tcp: lookup registry-1.docker.io on 10.255.255.53:53: no such host
"""  # noqa: E501

#: The classic builder's stream of the two-stage file, warm (chunks as the SDK decodes them).
CLASSIC_WARM = r"""
{"stream": "Step 1/10 : ARG BASE=imagegate/python:3.11-bookworm"}
{"stream": "\n"}
{"stream": "Step 2/10 : FROM ${BASE} AS builder"}
{"stream": "\n"}
{"stream": " ---> e4565ea8dcb3\n"}
{"stream": "Step 3/10 : RUN echo hello > /hello"}
{"stream": "\n"}
{"stream": " ---> Using cache\n"}
{"stream": " ---> aa1ab4bd6251\n"}
{"stream": "Step 4/10 : COPY f.txt /f.txt"}
{"stream": "\n"}
{"stream": " ---> Using cache\n"}
{"stream": " ---> 913bf0bc10b1\n"}
{"aux": {"ID": "sha256:913bf0bc10b112adfc6505007a7f3246d218b035e086e91b27427c231be9960f"}}
{"stream": "Step 5/10 : FROM ${BASE}"}
{"stream": "\n"}
{"stream": " ---> e4565ea8dcb3\n"}
{"stream": "Step 6/10 : COPY --from=builder /hello /hello"}
{"stream": "\n"}
{"stream": " ---> 7709d16146a6\n"}
{"stream": "Step 7/10 : LABEL a=b"}
{"stream": "\n"}
{"stream": " ---> Running in fd3ad710419f\n"}
{"stream": "Removing intermediate container fd3ad710419f\n"}
{"stream": " ---> 281e93de7e99\n"}
{"stream": "Step 8/10 : ENV X=1"}
{"stream": "\n"}
{"stream": " ---> Using cache\n"}
{"stream": " ---> c2534759e645\n"}
{"stream": "Step 9/10 : RUN python3 -c 'print(\"ok\")'"}
{"stream": "\n"}
{"stream": " ---> Running in 6d6c2a231b2c\n"}
{"stream": "ok\n"}
{"stream": "Removing intermediate container 6d6c2a231b2c\n"}
{"stream": " ---> c3c58f51f5e0\n"}
{"stream": "Step 10/10 : LABEL imagegate.managed=true"}
{"stream": "\n"}
{"stream": " ---> Using cache\n"}
{"stream": " ---> df8f83c0b595\n"}
{"aux": {"ID": "sha256:df8f83c0b595082167c751bb7ee8ac00a3b6253d282664def2d15cd2a766f9a5"}}
{"stream": "Successfully built df8f83c0b595\n"}
"""

#: Classic, ``network_mode=none``: stderr arrives coloured, lines split across chunks.
CLASSIC_NO_NETWORK = r"""
{"stream": "Step 1/4 : FROM imagegate/python:3.11-bookworm"}
{"stream": "\n"}
{"stream": " ---> e4565ea8dcb3\n"}
{"stream": "Step 2/4 : RUN echo first"}
{"stream": "\n"}
{"stream": " ---> Running in 5cecc6e18cb3\n"}
{"stream": "first\n"}
{"stream": "Removing intermediate container 5cecc6e18cb3\n"}
{"stream": " ---> a033760868fd\n"}
{"stream": "Step 3/4 : RUN python3 -c 'import socket; socket.getaddrinfo(\"pypi.org\", 443)'"}
{"stream": "\n"}
{"stream": " ---> Running in 3068a79ca40c\n"}
{"stream": "\u001b[91mTraceback (most recent call last):\n  File \"<string>\", line 1, in <module>\n  File \"/usr/lib/python3.11/socket.py\", line 962, in getaddrinfo\n\u001b[0m"}
{"stream": "\u001b[91m    for res in _socket.getaddrinfo(host, port, family, type, proto, flags):\n\u001b[0m"}
{"stream": "\u001b[91m               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\nsocket.gaierror: [Errno -3] Temporary failure in name resolution\n\u001b[0m"}
{"stream": "Removing intermediate container 3068a79ca40c\n"}
{"errorDetail": {"code": 1, "message": "The command '/bin/sh -c python3 -c 'import socket; socket.getaddrinfo(\"pypi.org\", 443)'' returned a non-zero code: 1"}, "error": "The command '/bin/sh -c python3 -c 'import socket; socket.getaddrinfo(\"pypi.org\", 443)'' returned a non-zero code: 1"}
"""  # noqa: E501

#: Classic, a COPY of a missing file.
CLASSIC_COPY = r"""
{"stream": "Step 1/3 : FROM imagegate/python:3.11-bookworm AS base"}
{"stream": "\n"}
{"stream": " ---> e4565ea8dcb3\n"}
{"stream": "Step 2/3 : COPY nope.txt /nope.txt"}
{"stream": "\n"}
{"errorDetail": {"message": "COPY failed: file not found in build context or excluded by .dockerignore: stat nope.txt: file does not exist"}, "error": "COPY failed: file not found in build context or excluded by .dockerignore: stat nope.txt: file does not exist"}
"""  # noqa: E501

IMAGE_ID = "sha256:0dce5965ec9db1a7c16d40a0d6010902ee3472a8981f2a0ea96a473ec7290413"


def chunks(text: str) -> list[dict[str, Any]]:
    """The SDK's decoded build stream from JSON lines."""
    return [json.loads(line) for line in text.strip().splitlines()]


def plain(text: str) -> PlainLog:
    """``text`` fed to a :class:`PlainLog`."""
    log = PlainLog()
    for line in text.splitlines():
        log.feed(line)
    return log


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A context holding a one-line Dockerfile."""
    (tmp_path / "Dockerfile").write_text("FROM imagegate/python:3.11-bookworm\nRUN true\n")
    return tmp_path


def request_for(project: Path, **kw: Any) -> BuildRequest:
    """A request to build ``project``."""
    return BuildRequest(context=project, dockerfile=project / "Dockerfile", **kw)


# -- BuildKit: argv --------------------------------------------------------------------------


def test_buildkit_argv_carries_every_option(project: Path) -> None:
    """Tags, target, build args, labels (imagegate.managed first), network none, pull, context."""
    req = request_for(project, tags=("a/b:1", "a/b:2"), buildargs={"X": "1 2"},
                      labels={"k": "v"}, target="builder", network="none", pull="always",
                      no_cache=True)
    argv = BuildKitBuilder("/usr/bin/docker").argv(req, Path("/tmp/iid"))
    assert argv == [
        "/usr/bin/docker", "build", "--progress=plain", "--iidfile", "/tmp/iid",
        "-f", str(project / "Dockerfile"), "-t", "a/b:1", "-t", "a/b:2", "--target", "builder",
        "--build-arg", "X=1 2", "--label", "imagegate.managed=true", "--label", "k=v",
        "--network", "none", "--pull", "--no-cache", str(project),
    ]


def test_buildkit_argv_defaults_and_buildx(project: Path) -> None:
    """Default network and pull add nothing; buildx builds with ``buildx build --load``."""
    argv = BuildKitBuilder("docker", buildx=True).argv(request_for(project), Path("/i"))
    assert argv[:4] == ["docker", "buildx", "build", "--load"]
    assert not {"--network", "--pull", "--target", "-t", "--no-cache"} & set(argv)


def test_buildkit_ignore_file_adds_the_excludes_to_the_projects_patterns(project: Path,
                                                                        tmp_path_factory: Any,
                                                                        ) -> None:
    """With something to exclude, BuildKit gets a copy of the Dockerfile whose
    ``<name>.dockerignore`` holds the project's patterns (a Dockerfile-specific ignore file
    first, as BuildKit reads them) and the excludes; with nothing, the Dockerfile as is."""
    tmp = tmp_path_factory.mktemp("bk")
    assert builders.ignore_beside(request_for(project), tmp) is None
    (project / ".dockerignore").write_text("# comment\n\n  .venv  \n*.pyc\n")
    copy = builders.ignore_beside(request_for(project, exclude=("out",)), tmp)
    assert copy is not None and copy.name == "Dockerfile" and copy.parent != project
    assert copy.read_text() == (project / "Dockerfile").read_text()
    assert copy.with_name("Dockerfile.dockerignore").read_text() == ".venv\n*.pyc\nout\n"
    argv = BuildKitBuilder("docker").argv(request_for(project), Path("/i"), copy)
    assert argv[argv.index("-f") + 1] == str(copy) and argv[-1] == str(project)
    (project / "Dockerfile.dockerignore").write_text("only-this\n")
    again = builders.ignore_beside(request_for(project, exclude=("out",)),
                                   tmp_path_factory.mktemp("bk"))
    assert again is not None
    assert again.with_name("Dockerfile.dockerignore").read_text() == "only-this\nout\n"


@pytest.mark.parametrize(("report_dir", "expected"), [
    (".imagegate-out", [".imagegate-out"]), ("build/reports", ["build/reports"]),
    ("/elsewhere/reports", []), (".", [])])
def test_own_outputs_are_the_report_dir_inside_the_context(tmp_path: Path, report_dir: str,
                                                          expected: list[str]) -> None:
    """The gate leaves its report directory out of the build context, when it is inside it."""
    s = settings.Settings(project_dir=tmp_path, report_dir=report_dir)
    assert build.own_outputs(s) == expected


def test_buildkit_env_inherits_docker_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI talks to the engine the environment names; plain docker build gets BuildKit on."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///elsewhere.sock")
    monkeypatch.delenv("DOCKER_BUILDKIT", raising=False)
    env = BuildKitBuilder("docker").env()
    assert env["DOCKER_HOST"] == "unix:///elsewhere.sock" and env["DOCKER_BUILDKIT"] == "1"
    assert "DOCKER_BUILDKIT" not in BuildKitBuilder("docker", buildx=True).env()


@pytest.mark.parametrize(("field", "value"), [("network", "host"), ("pull", "sometimes")])
def test_request_rejects_unknown_policy(project: Path, field: str, value: str) -> None:
    """A bad network or pull value is a usage error, not a surprise at build time."""
    with pytest.raises(UsageError, match=value):
        request_for(project, **{field: value})


# -- BuildKit: reading plain progress -----------------------------------------------------------


def test_plain_progress_steps_cold() -> None:
    """Only ``[stage i/n]`` vertices are steps, in the order reported, none from cache."""
    log = plain(BK_COLD)
    assert [(s.where, s.text, s.cached) for s in log.steps] == [
        ("stage-1 1/3", "FROM docker.io/imagegate/python:3.11-bookworm", False),
        ("builder 2/3", "RUN echo hello > /hello", False),
        ("builder 3/3", "COPY f.txt /f.txt", False),
        ("stage-1 2/3", "COPY --from=builder /hello /hello", False),
        ("stage-1 3/3", "RUN python3 -c 'print(\"ok\")'", False),
    ]
    assert [s.index for s in log.steps] == [1, 2, 3, 4, 5]


def test_plain_progress_steps_warm() -> None:
    """``#N CACHED`` marks its step; the FROM (DONE) is not a cache hit."""
    steps = plain(BK_WARM).steps
    assert [s.cached for s in steps] == [False, True, True, True, True]
    assert str(steps[1]) == "[builder 2/3] RUN echo hello > /hello"


def test_plain_progress_returns_each_step_once() -> None:
    """The progress line is the step's name, once, even when BuildKit repeats its header."""
    log = PlainLog()
    lines = "#5 [2/3] RUN a\n#6 [3/3] RUN b\n#5 [2/3] RUN a\n#5 0.1 out\n#6 0.2 x\n#5 DONE 0.3s"
    said = [log.feed(line) for line in lines.splitlines()]
    assert [s for s in said if s] == ["[2/3] RUN a", "[3/3] RUN b"]


# -- failures: one line each --------------------------------------------------------------------


def test_buildkit_failure_names_step_and_error_line_without_network(project: Path) -> None:
    """Under network none, a resolution error says the build had no network and what to change."""
    log = plain(BK_NO_NETWORK)
    err = builders.explain(request_for(project, network="none"), log.failure(), log.lines,
                           "buildkit")
    assert isinstance(err, BuildFailed)
    assert err.message.startswith(
        "Dockerfile: [3/3] RUN python3 -c 'import socket; socket.getaddrinfo(\"pypi.org\", 443)' "
        "failed (exit code 1): socket.gaierror: [Errno -3] Temporary failure in name resolution")
    assert "no network (hermetic = true)" in err.message and "hermetic = false" in err.message
    assert "wheelhouse" in err.message and "\n" not in err.message
    assert err.detail.splitlines()[-1].startswith("executor failed running")


def test_network_hint_only_when_the_build_had_no_network(project: Path) -> None:
    """With the default network the same failure is just the failing step."""
    log = plain(BK_NO_NETWORK)
    err = builders.explain(request_for(project), log.failure(), log.lines, "buildkit")
    assert "Temporary failure in name resolution" in err.message
    assert "hermetic" not in err.message


def test_pip_without_network_is_a_network_error(project: Path) -> None:
    """pip's last line is "No matching distribution"; its retries make it a network failure."""
    log = plain(BK_PIP)
    err = builders.explain(request_for(project, network="none"), log.failure(), log.lines,
                           "buildkit")
    assert "No matching distribution found for flask==3.1.0" in err.message
    assert "hermetic = true" in err.message
    assert not builders.is_network_error(["ERROR: No matching distribution found for nosuch"])


@pytest.mark.parametrize(("log_text", "says"), [
    (BK_COPY, 'Dockerfile: [2/2] COPY nope.txt /nope.txt failed: "/nope.txt" not found: not found'),
    (BK_PARSE, "Dockerfile: build failed: failed to solve with frontend dockerfile.v0: failed to "
               "create LLB definition: dockerfile parse error line 2: unknown instruction: FOO"),
])
def test_buildkit_failures_without_exit_code(project: Path, log_text: str, says: str) -> None:
    """No exit code: the builder's own error is the line (the summary when no step failed)."""
    log = plain(log_text)
    err = builders.explain(request_for(project, network="none"), log.failure(), log.lines,
                           "buildkit")
    assert err.message == says


def test_syntax_frontend_that_cannot_be_fetched(project: Path) -> None:
    """``# syntax=`` with no registry: one line naming the directive, the image and the error."""
    (project / "Dockerfile").write_text("# syntax=docker/dockerfile:1\nFROM scratch\n")
    log = plain(BK_SYNTAX)
    err = builders.explain(request_for(project), log.failure(), log.lines, "buildkit")
    assert isinstance(err, UsageError)
    assert err.message.startswith(
        "Dockerfile:1: '# syntax=docker/dockerfile:1' needs the BuildKit frontend image "
        "docker/dockerfile:1, which could not be fetched (failed to do request: Head ")
    assert err.message.endswith("no such host); remove the line or make that image available")


# -- classic ----------------------------------------------------------------------------------


class FakeImage:
    """What the classic builder does with the built image: tag it."""

    def __init__(self) -> None:
        self.tags: list[tuple[str, str]] = []

    def tag(self, repo: str, tag: str) -> None:
        """Record a tag."""
        self.tags.append((repo, tag))


class FakeImages:
    """``cli.images``: a set of local refs; pulls recorded (or refused)."""

    def __init__(self, local: set[str], refuse: str = "") -> None:
        self.local, self.refuse = local, refuse
        self.pulled: list[tuple[str, str]] = []
        self.image = FakeImage()

    def get(self, ref: str) -> FakeImage:
        """The image, or ImageNotFound."""
        if ref in self.local or ref.startswith("sha256:"):
            return self.image
        raise docker.errors.ImageNotFound(f"No such image: {ref}")

    def pull(self, repo: str, tag: str) -> None:
        """Pull one tag, or fail as a registry would."""
        if self.refuse:
            raise docker.errors.APIError("pull failed", explanation=self.refuse)
        self.pulled.append((repo, tag))
        self.local.add(f"{repo}:{tag}")


class FakeCli:
    """A docker SDK client whose ``api.build`` replays captured chunks."""

    def __init__(self, stream: list[dict[str, Any]], local: set[str] | None = None,
                 refuse: str = "") -> None:
        self.stream = stream
        self.images = FakeImages(local or {"imagegate/python:3.11-bookworm"}, refuse)
        self.api = self
        self.calls: list[dict[str, Any]] = []

    def build(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Record the call; replay the stream."""
        self.calls.append(kwargs)
        return iter(self.stream)


def test_classic_steps_cache_hits_and_image_id(project: Path) -> None:
    """``Step N/M`` lines are steps and progress; ``Using cache`` marks them; the last aux ID."""
    cli = FakeCli(chunks(CLASSIC_WARM))
    said: list[str] = []
    result = ClassicBuilder(cli).build(request_for(project, tags=("x/y:1", "reg:5000/x/y:2")),
                                       said.append)
    assert result.image_id.startswith("sha256:df8f83c0b595")
    assert result.builder == "classic" and result.steps_count == 10
    assert [s.index for s in result.steps if s.cached] == [3, 4, 8, 10]
    assert result.cached_steps == 4
    assert result.steps[8] == Step(9, "RUN python3 -c 'print(\"ok\")'", False, "9/10")
    assert said[0] == "Step 1/10 : ARG BASE=imagegate/python:3.11-bookworm" and len(said) == 10
    assert cli.images.image.tags == [("reg:5000/x/y", "2")]
    call = cli.calls[0]
    assert (call["tag"], call["network_mode"], call["pull"], call["target"]) == \
        ("x/y:1", None, False, None)
    assert call["labels"] == {"imagegate.managed": "true"}


def test_classic_options_reach_the_engine(project: Path) -> None:
    """network none, pull always, target and no-cache become the engine's build parameters."""
    cli = FakeCli(chunks(CLASSIC_WARM))
    ClassicBuilder(cli).build(request_for(project, network="none", pull="always",
                                          target="builder", no_cache=True), lambda _: None)
    call = cli.calls[0]
    assert (call["network_mode"], call["pull"], call["target"], call["nocache"]) == \
        ("none", True, "builder", True)


def test_classic_failure_without_network(project: Path) -> None:
    """The failing step, the telling stderr line (colours stripped) and the hermetic hint."""
    cli = FakeCli(chunks(CLASSIC_NO_NETWORK))
    with pytest.raises(BuildFailed) as info:
        ClassicBuilder(cli).build(request_for(project, network="none"), lambda _: None)
    message = info.value.message
    assert message.startswith(
        "Dockerfile: [3/4] RUN python3 -c 'import socket; socket.getaddrinfo(\"pypi.org\", 443)' "
        "failed (exit code 1): socket.gaierror: [Errno -3] Temporary failure in name resolution;"
        " the build ran with no network (hermetic = true)")
    assert "\x1b" not in info.value.detail
    assert "returned a non-zero code: 1" in info.value.detail.splitlines()[-1]


def test_classic_failure_copy(project: Path) -> None:
    """No exit code: the builder's error line itself."""
    with pytest.raises(BuildFailed) as info:
        ClassicBuilder(FakeCli(chunks(CLASSIC_COPY))).build(request_for(project), lambda _: None)
    assert info.value.message == (
        "Dockerfile: [2/3] COPY nope.txt /nope.txt failed: COPY failed: file not found in build "
        "context or excluded by .dockerignore: stat nope.txt: file does not exist")


# -- BuildKit through a stand-in CLI ----------------------------------------------------------


def fake_docker(tmp_path: Path, log: str, rc: int = 0, image_id: str = IMAGE_ID) -> Path:
    """An executable that behaves like ``docker build --progress=plain``: prints ``log``, writes
    ``image_id`` to ``--iidfile`` when ``rc`` is 0, records its argv and environment."""
    (tmp_path / "log.txt").write_text(log)
    script = tmp_path / "docker"
    script.write_text(f"""#!{sys.executable}
import json, os, sys
args = sys.argv[1:]
open({str(tmp_path / "argv.json")!r}, "w").write(json.dumps({{"argv": args, "env": dict(os.environ)}}))
sys.stderr.write(open({str(tmp_path / "log.txt")!r}).read())
if {rc} == 0:
    open(args[args.index("--iidfile") + 1], "w").write({image_id!r})
sys.exit({rc})
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_buildkit_builder_streams_and_reads_iidfile(tmp_path: Path, project: Path) -> None:
    """Progress gets each step; the id is the iidfile's exactly; DOCKER_BUILDKIT=1 is set."""
    cli_path = fake_docker(tmp_path, BK_WARM)
    said: list[str] = []
    result = BuildKitBuilder(str(cli_path)).build(request_for(project, tags=("t:1",)), said.append)
    assert result.image_id == IMAGE_ID and result.tags == ("t:1",)
    assert result.builder == "buildkit" and result.cached_steps == 4 and result.steps_count == 5
    assert said[0] == "[builder 1/3] FROM docker.io/imagegate/python:3.11-bookworm"
    seen = json.loads((tmp_path / "argv.json").read_text())
    assert seen["env"]["DOCKER_BUILDKIT"] == "1" and seen["argv"][0] == "build"


def test_buildkit_builder_failure(tmp_path: Path, project: Path) -> None:
    """A non-zero exit is read from the log: the one line, the tail as detail."""
    cli_path = fake_docker(tmp_path, BK_NO_NETWORK, rc=1)
    with pytest.raises(BuildFailed) as info:
        BuildKitBuilder(str(cli_path)).build(request_for(project, network="none"), lambda _: None)
    assert "[3/3] RUN python3" in info.value.message and "hermetic = true" in info.value.message
    assert len(info.value.detail.splitlines()) <= builders.LOG_TAIL


def test_buildkit_builder_times_out(tmp_path: Path, project: Path) -> None:
    """A build that outlives its timeout is killed and says so."""
    script = tmp_path / "docker"
    script.write_text(f"#!{sys.executable}\nimport time\nprint('#1 [1/1] FROM x', flush=True)\n"
                      "time.sleep(30)\n")
    script.chmod(0o755)
    with pytest.raises(BuildFailed, match=r"timed out after 0\.5s"):
        BuildKitBuilder(str(script)).build(request_for(project, timeout=0.5), lambda _: None)


# -- choosing a builder -----------------------------------------------------------------------

DOCKER_28 = CliProbe("/usr/local/bin/docker", "28.2.2", False)
DOCKER_20 = CliProbe("/usr/bin/docker", "20.10.24+dfsg1", False)
DOCKER_BUILDX = CliProbe("/opt/docker", "27.0.1", True)


@pytest.mark.parametrize(("setting", "probes", "expect"), [
    ("auto", [DOCKER_28, DOCKER_20], ("buildkit", "/usr/bin/docker")),
    ("auto", [DOCKER_28, DOCKER_20, DOCKER_BUILDX], ("buildx", "/opt/docker")),
    ("buildkit", [DOCKER_20], ("buildkit", "/usr/bin/docker")),
    ("auto", [DOCKER_28], ("classic", "")),
    ("auto", [], ("classic", "")),
    ("classic", [DOCKER_BUILDX], ("classic", "")),
])
def test_select_builder(setting: str, probes: list[CliProbe], expect: tuple[str, str]) -> None:
    """buildx first, then a CLI older than 23 (built-in BuildKit), else classic."""
    chosen = select_builder(setting, object(), probes=probes)
    assert (chosen.name, getattr(chosen, "docker", "")) == expect


class FakeEngine:
    """An SDK client whose ``version()`` names one component."""

    def __init__(self, component: str) -> None:
        self.component = component

    def version(self) -> dict[str, Any]:
        return {"Components": [{"Name": self.component, "Version": "4.3.1"}]}


@pytest.mark.parametrize(("engine", "expect"), [("Podman Engine", "classic"),
                                                ("Engine", "buildkit")])
def test_auto_builds_through_the_api_on_podman(engine: str, expect: str) -> None:
    """podman has no BuildKit session: ``auto`` takes its /build (buildah) even where a CLI
    could build with BuildKit; Docker's engine keeps BuildKit."""
    assert select_builder("auto", FakeEngine(engine), probes=[DOCKER_20]).name == expect


def test_buildkit_required_but_missing_names_what_was_tried() -> None:
    """One line listing each CLI and why it does not build with BuildKit."""
    broken = CliProbe("/x/docker", "", False)
    with pytest.raises(UsageError) as info:
        select_builder("buildkit", object(), probes=[DOCKER_28, broken])
    message = info.value.message
    assert "/usr/local/bin/docker 28.2.2: no buildx plugin" in message
    assert "/x/docker: `docker --version` failed" in message and "\n" not in message


def test_unknown_builder_setting() -> None:
    """A typo in ``builder`` is a usage error."""
    with pytest.raises(UsageError, match="builder = 'kaniko'"):
        select_builder("kaniko", object(), probes=[])


def test_probe_cli_reads_version_and_buildx() -> None:
    """``docker --version`` gives the client version; ``docker buildx version`` its plugin."""
    import subprocess

    def runner(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        if cmd[1] == "--version":
            return subprocess.CompletedProcess(cmd, 0, "Docker version 20.10.24+dfsg1, build 297e128\n", "")
        return subprocess.CompletedProcess(cmd, 1, "", "docker: 'buildx' is not a docker command.")

    probe = builders.probe_cli("/usr/bin/docker", runner)
    assert probe == CliProbe("/usr/bin/docker", "20.10.24+dfsg1", False)
    assert probe.major == 20 and probe.builtin_buildkit


def test_docker_clis_every_one_on_path_once(tmp_path: Path) -> None:
    """Each docker on PATH in order, a symlink to one already seen skipped."""
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (first / "docker").write_text("#!/bin/sh\n")
    (first / "docker").chmod(0o755)
    (second / "docker").symlink_to(first / "docker")
    found = builders.docker_clis(os.pathsep.join([str(first), str(second)]))
    assert found[0] == str(first / "docker")
    assert str(second / "docker") not in found


# -- pull policy -------------------------------------------------------------------------------


def test_pull_never_with_missing_from(project: Path) -> None:
    """The exact one line, exit code 2, and nothing pulled."""
    (project / "Dockerfile").write_text("FROM python:3.11-slim\n")
    cli = FakeCli([])
    with pytest.raises(BaseImageError) as info:
        build.ensure_from_images(cli, project / "Dockerfile", {}, "never")
    assert info.value.message == (
        'Dockerfile: FROM python:3.11-slim is not present locally and pull = "never"; pull or '
        'load it (docker load), or set pull = "missing"')
    assert info.value.exit_code == 2 and cli.images.pulled == []


def test_pull_missing_pulls_only_the_missing(project: Path) -> None:
    """Local bases stay; the missing one is pulled by its exact tag (or digest)."""
    (project / "Dockerfile").write_text(
        "ARG B=imagegate/python:3.11-bookworm\nFROM $B AS one\nFROM reg.example:5000/x/y:2\n"
        "FROM one\nFROM busybox@sha256:" + "a" * 64 + "\n")
    cli = FakeCli([])
    build.ensure_from_images(cli, project / "Dockerfile", {}, "missing", progress=lambda _: None)
    assert cli.images.pulled == [("reg.example:5000/x/y", "2"), ("busybox", "sha256:" + "a" * 64)]


def test_pull_failure_is_one_line(project: Path) -> None:
    """A failed pull names the image and the registry's complaint."""
    (project / "Dockerfile").write_text("FROM python:3.11-slim\n")
    cli = FakeCli([], refuse="manifest for python:3.11-slim not found")
    with pytest.raises(BaseImageError) as info:
        build.ensure_from_images(cli, project / "Dockerfile", {}, "missing",
                                 progress=lambda _: None)
    assert info.value.message == ("Dockerfile: FROM python:3.11-slim is not present locally and "
                                  "pulling it failed: manifest for python:3.11-slim not found")


def test_pull_always_leaves_it_to_the_builder(project: Path) -> None:
    """``always``: nothing checked or pulled before the build (the builder re-pulls)."""
    (project / "Dockerfile").write_text("FROM python:3.11-slim\n")
    cli = FakeCli([])
    assert build.ensure_from_images(cli, project / "Dockerfile", {}, "always") == \
        ["python:3.11-slim"]
    assert cli.images.pulled == []


def test_syntax_frontend_never_pulled_under_pull_never(project: Path) -> None:
    """BuildKit with ``pull = never`` and no local frontend: the one line, before any build."""
    (project / "Dockerfile").write_text(
        "# syntax=docker/dockerfile:1\nFROM imagegate/python:3.11-bookworm\n")
    with pytest.raises(UsageError) as info:
        build.build(FakeCli([]), context=project, dockerfile=project / "Dockerfile", tags=[],
                    buildargs={}, labels={}, builder=BuildKitBuilder("/nonexistent/docker"),
                    pull="never")
    assert info.value.message == (
        "Dockerfile:1: '# syntax=docker/dockerfile:1' needs the BuildKit frontend image "
        'docker/dockerfile:1, which could not be fetched (not present locally and pull = "never");'
        " remove the line or make that image available")


# -- the project's build: args, bases, options -----------------------------------------------


def test_build_args_python_image_only_when_declared(tmp_path: Path) -> None:
    """PYTHON_IMAGE goes only to a Dockerfile that declares it; settings.build_args win."""
    (tmp_path / "Dockerfile").write_text("FROM python:3.11-slim\n")
    s = settings.load(tmp_path, {"build_args": {"A": "1"}}, environ={})
    args = pipeline.build_args(s)
    assert "PYTHON_IMAGE" not in args and args["A"] == "1"
    (tmp_path / "Dockerfile").write_text("ARG PYTHON_IMAGE=x\nFROM ${PYTHON_IMAGE}\n")
    s = settings.load(tmp_path, {"python_image": "py:9", "build_args": {"VERSION": "7"}},
                      environ={})
    args = pipeline.build_args(s)
    assert args["PYTHON_IMAGE"] == "py:9" and args["VERSION"] == "7"


@pytest.mark.parametrize(("dockerfile", "bases", "made"), [
    ("FROM python:3.11-slim\n", "", []),
    ("ARG PYTHON_IMAGE=imagegate/python:3.11-bookworm\nFROM ${PYTHON_IMAGE}\n", "", ["python"]),
    ("FROM imagegate/redis:7-bookworm\n", "", ["redis"]),
    ("FROM python:3.11-slim\n", "python,redis", ["python", "redis"]),
])
def test_ensure_bases_from_the_dockerfile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          dockerfile: str, bases: str, made: list[str]) -> None:
    """No ``bases`` configured: make only the local bases the FROM lines name."""
    recipes = [base.Recipe("python", "imagegate/python", (), (), lambda *_: None,
                           tag="3.11-bookworm"),
               base.Recipe("redis", "imagegate/redis", (), (), lambda *_: None, tag="7-bookworm")]
    monkeypatch.setattr(base, "recipes", lambda which="all": [
        r for r in recipes if which in ("all", r.kind)])
    built: list[str] = []

    def ensure(recipe: base.Recipe, **_: Any) -> base.BaseResult:
        built.append(recipe.kind)
        return base.BaseResult(recipe.ref, "sha256:x", "d", 1, False, 1)

    monkeypatch.setattr(base, "ensure_base", ensure)
    (tmp_path / "Dockerfile").write_text(dockerfile)
    s = settings.load(tmp_path, {"bases": bases} if bases else {}, environ={})
    pipeline.ensure_bases(s, log=lambda _: None)
    assert built == made


def test_options_follow_settings(tmp_path: Path) -> None:
    """hermetic → network none; builder, pull and target as configured; the report dir left
    out of the context."""
    s = settings.load(tmp_path, {"hermetic": True, "builder": "classic", "pull": "never",
                                 "target": "builder"}, environ={})
    assert build.options(s) == {"builder": "classic", "network": "none", "pull": "never",
                                "target": "builder", "exclude": [".imagegate-out"]}
    assert build.options(settings.load(tmp_path, environ={}))["network"] == "default"


def test_builder_name_needs_no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a setting selects on this machine, asked without a docker client (for lint)."""
    monkeypatch.setattr(builders, "_probe_cached", lambda path: DOCKER_20)
    assert build.builder_name("classic") == "classic"
    assert build.builder_name("auto") == "buildkit"
    monkeypatch.setattr(builders, "_probe_cached", lambda path: DOCKER_28)
    assert build.builder_name("auto") == "classic"


def test_registry_errors_are_not_blamed_on_hermetic(project: Path) -> None:
    """A FROM the registry could not serve is not a RUN step's network: no hermetic hint."""
    log = plain("#4 [1/2] FROM docker.io/library/x:1\n#4 ERROR: failed to do request: dial tcp: "
                "lookup registry-1.docker.io: no such host\n")
    err = builders.explain(request_for(project, network="none"), log.failure(), log.lines,
                           "buildkit")
    assert "no such host" in err.message and "hermetic" not in err.message


def test_revision_from_ci_variables_without_git(tmp_path: Path) -> None:
    """A project copied without .git takes its revision from the CI's variables (OCI labels),
    else has none (IG-LABELS then warns at baseline)."""
    from imagegate.build import git_facts

    sha = "0123456789abcdef0123456789abcdef01234567"
    assert git_facts(tmp_path, {"GITHUB_SHA": sha})["VCS_REF"] == sha
    assert git_facts(tmp_path, {"CI_COMMIT_SHA": sha})["VERSION"] == sha[:12]
    assert "VCS_REF" not in git_facts(tmp_path, {})
