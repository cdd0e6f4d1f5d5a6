"""imagegate.gate.push against a scripted engine: credentials, retries, the one-line failures, the digest
pulled back — and the password in no message. (tests_stack/test_push_registry.py pushes for real.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import docker.errors
import pytest
import urllib3

from imagegate.errors import PushFailed, UsageError
from imagegate.gate import push as push_mod
from imagegate.gate.push import Credentials, RegistryAuthFailed, RegistryUnavailable, parse_ref, push

IMAGE = "sha256:" + "a" * 64
DIGEST = "sha256:" + "d" * 64
REF = "127.0.0.1:5000/team/app:1.0"
PASSWORD = "pw-Zq8-never-shown"
ENV = {"IMAGEGATE_REGISTRY_USER": "ci", "IMAGEGATE_REGISTRY_PASSWORD": PASSWORD}
OK = [{"status": "Pushed"}, {"aux": {"Tag": "1.0", "Digest": DIGEST, "Size": 528}}]


def error(text: str) -> list[dict[str, Any]]:
    """A push stream that ends in the engine's error chunk."""
    return [{"status": "Preparing"}, {"errorDetail": {"message": text}, "error": text}]


class FakeEngine:
    """The parts of a docker SDK client push() uses; each push attempt plays the next script
    (a list of stream chunks, or an exception the call raises)."""

    def __init__(self, *scripts: list[Any] | Exception, pulled: str = IMAGE) -> None:
        self.scripts = list(scripts)
        self.pulled = pulled
        self.calls: list[tuple[str, str, str, Any]] = []
        self.api = self
        self.images = self

    def get(self, ref: str) -> Any:
        """images.get: the tested image, or what the pull-back left under repo@digest."""
        engine = self

        class Image:
            id = engine.pulled if "@" in ref else IMAGE

            def tag(self, repo: str, tag: str) -> None:
                engine.calls.append(("tag", repo, tag, None))
        return Image()

    def push(self, repo: str, *, tag: str, stream: bool, decode: bool,
             auth_config: Any) -> Iterator[dict[str, Any]]:
        """api.push: the next script."""
        self.calls.append(("push", repo, tag, auth_config))
        script = self.scripts.pop(0)
        if isinstance(script, Exception):
            raise script

        def stream() -> Iterator[dict[str, Any]]:
            for chunk in script:
                if isinstance(chunk, Exception):  # the stream breaks off here
                    raise chunk
                yield chunk
        return stream()

    def pull(self, repo: str, *, tag: str, stream: bool, decode: bool,
             auth_config: Any) -> Iterator[dict[str, Any]]:
        """api.pull by digest: succeeds."""
        self.calls.append(("pull", repo, tag, auth_config))
        return iter([{"status": f"Digest: {tag}"}])

    def count(self, what: str) -> int:
        """How many calls of one kind were made."""
        return sum(1 for call in self.calls if call[0] == what)


def run(engine: FakeEngine, env: dict[str, str] | None = None,
        retries: int = 3) -> tuple[push_mod.Pushed, list[str]]:
    """push() with no backoff, its log lines collected."""
    lines: list[str] = []
    pushed = push(engine, IMAGE, REF, log=lines.append, retries=retries, backoff=0,
                  environ=ENV if env is None else env)
    return pushed, lines


@pytest.mark.parametrize(("ref", "parts"), [
    ("127.0.0.1:5000/team/app:1.0", ("127.0.0.1:5000", "127.0.0.1:5000/team/app", "1.0")),
    ("127.0.0.1:5000/app", ("127.0.0.1:5000", "127.0.0.1:5000/app", "latest")),
    ("localhost/app:x", ("localhost", "localhost/app", "x")),
    ("registry.example.com/a/b:2", ("registry.example.com", "registry.example.com/a/b", "2")),
])
def test_parse_ref(ref: str, parts: tuple[str, str, str]) -> None:
    """REGISTRY/REPO[:TAG]: a port's colon is not a tag's."""
    assert parse_ref(ref) == parts


@pytest.mark.parametrize("ref", ["just-a-name", "team/app:1", "127.0.0.1:5000/app@sha256:ab"])
def test_parse_ref_rejects(ref: str) -> None:
    """No registry host, or a digest: a usage error."""
    with pytest.raises(UsageError, match="expected REGISTRY/REPO:TAG"):
        parse_ref(ref)


def test_env_credentials_go_to_the_engine_only() -> None:
    """IMAGEGATE_REGISTRY_USER/PASSWORD become the SDK's auth_config for the push and the pull
    back; the digest pulled back is the image; the log names the source, not the password."""
    engine = FakeEngine(OK)
    pushed, lines = run(engine)
    assert (pushed.ref, pushed.digest) == ("127.0.0.1:5000/team/app:1.0", DIGEST)
    assert pushed.pinned == f"127.0.0.1:5000/team/app:1.0@{DIGEST}"
    auth = {"username": "ci", "password": PASSWORD, "serveraddress": "127.0.0.1:5000"}
    assert engine.calls == [("tag", "127.0.0.1:5000/team/app", "1.0", None),
                            ("push", "127.0.0.1:5000/team/app", "1.0", auth),
                            ("pull", "127.0.0.1:5000/team/app", DIGEST, auth)]
    assert lines == ["push 127.0.0.1:5000/team/app:1.0 (credentials: "
                     "IMAGEGATE_REGISTRY_USER/IMAGEGATE_REGISTRY_PASSWORD)"]
    assert PASSWORD not in repr(Credentials("ci", PASSWORD))


def test_no_env_credentials_leaves_auth_to_the_docker_config() -> None:
    """Without the variables auth_config is None: the SDK reads ~/.docker/config.json and its
    credential helpers itself (tests_stack proves both for real)."""
    engine = FakeEngine(OK)
    _, lines = run(engine, env={})
    assert [call[3] for call in engine.calls if call[0] in ("push", "pull")] == [None, None]
    assert "the docker config" in lines[0]


@pytest.mark.parametrize("env", [{"IMAGEGATE_REGISTRY_USER": "ci"},
                                 {"IMAGEGATE_REGISTRY_PASSWORD": PASSWORD}])
def test_half_the_credentials_is_a_usage_error(env: dict[str, str]) -> None:
    """One variable without the other: exit 2, naming the missing one, before any push."""
    engine = FakeEngine(OK)
    with pytest.raises(UsageError, match="go together") as raised:
        run(engine, env=env)
    assert raised.value.exit_code == 2 and PASSWORD not in raised.value.message
    assert engine.calls == []


@pytest.mark.parametrize("text", [
    "unauthorized: authentication required",
    "Get \"https://127.0.0.1:5000/v2/\": no basic auth credentials",
    f"unauthorized: incorrect username or password ({PASSWORD})",
])
def test_wrong_password_is_one_line_exit_2_no_retry(text: str) -> None:
    """Refused credentials: exactly "authentication failed for HOST", exit 2, no retry, and no
    password even when the engine's text carried it."""
    engine = FakeEngine(error(text), OK)
    with pytest.raises(RegistryAuthFailed) as raised:
        run(engine)
    assert raised.value.message == "authentication failed for 127.0.0.1:5000"
    assert raised.value.exit_code == 2 and engine.count("push") == 1
    assert PASSWORD not in raised.value.message + raised.value.detail


@pytest.mark.parametrize("failure", [
    error('Get "https://127.0.0.1:5000/v2/": dial tcp 127.0.0.1:5000: connect: '
          "connection refused"),
    error("received unexpected HTTP status: 503 Service Unavailable"),
    error("Put \"https://127.0.0.1:5000/v2/team/app/manifests/1.0\": read tcp: "
          "connection reset by peer"),
    docker.errors.APIError("500 Server Error", explanation="Get \"https://127.0.0.1:5000/v2/\": "
                           "EOF"),
    [{"status": "Pushing"}, urllib3.exceptions.ReadTimeoutError(None, "", "Read timed out.")],
], ids=["refused", "503", "reset", "api-error-eof", "stream-timeout"])
def test_transient_failure_retries_the_whole_push(failure: Any) -> None:
    """Refused, reset, EOF, 5xx: the push is tried again (it is idempotent) and succeeds."""
    engine = FakeEngine(failure, OK)
    pushed, lines = run(engine)
    assert pushed.digest == DIGEST and engine.count("push") == 2
    assert lines[1].startswith("push attempt 1/3 failed (") and lines[1].endswith(
        "); retrying in 0s")


def test_registry_down_gives_up_after_the_retries_naming_it() -> None:
    """Still refused after every attempt: exit 2 naming the registry and the last error."""
    refused = error("dial tcp 127.0.0.1:5000: connect: connection refused")
    engine = FakeEngine(refused, refused, refused, OK)
    with pytest.raises(RegistryUnavailable) as raised:
        run(engine)
    assert raised.value.exit_code == 2 and engine.count("push") == 3
    assert raised.value.message == ("registry 127.0.0.1:5000 unavailable after 3 attempts: "
                                    "dial tcp 127.0.0.1:5000: connect: connection refused")


def test_backoff_doubles(monkeypatch: pytest.MonkeyPatch) -> None:
    """Waits between attempts: backoff, then twice that; none after the last."""
    waits: list[float] = []
    monkeypatch.setattr(push_mod.time, "sleep", waits.append)
    refused = error("connect: connection refused")
    with pytest.raises(RegistryUnavailable):
        push(FakeEngine(refused, refused, refused), IMAGE, REF, log=lambda _: None, environ={},
             backoff=1.5)
    assert waits == [1.5, 3.0]


def test_other_registry_errors_fail_at_once() -> None:
    """A rejected manifest is no reason to try again: PushFailed (exit 1) naming it."""
    engine = FakeEngine(error("manifest invalid: manifest invalid"), OK)
    with pytest.raises(PushFailed) as raised:
        run(engine)
    assert type(raised.value) is PushFailed and raised.value.exit_code == 1
    assert raised.value.message == "push 127.0.0.1:5000/team/app:1.0: manifest invalid: manifest " \
        "invalid"
    assert engine.count("push") == 1


def test_denied_is_a_setup_error() -> None:
    """Logged in but not allowed to push there: exit 2, saying so."""
    with pytest.raises(RegistryAuthFailed, match=r"access denied for 127\.0\.0\.1:5000"):
        run(FakeEngine(error("denied: requested access to the resource is denied")))


def test_pulled_back_digest_must_be_the_image() -> None:
    """The registry's digest pulls back another image: the push failed."""
    with pytest.raises(PushFailed, match="pulled back as bbbbbbbbbbbb, not the pushed image"):
        run(FakeEngine(OK, pulled="sha256:" + "b" * 64))


def test_no_digest_is_a_failure() -> None:
    """A stream that never names a digest proves nothing."""
    with pytest.raises(PushFailed, match="the registry returned no digest"):
        run(FakeEngine([{"status": "Pushed"}]))


def test_engine_layer_retries_are_logged() -> None:
    """The engine retries a failed layer upload itself: said in the log, not an error."""
    engine = FakeEngine([{"status": "Retrying in 5 seconds", "id": "4f4fb700ef54"}, *OK])
    pushed, lines = run(engine)
    assert pushed.digest == DIGEST and engine.count("push") == 1
    assert lines[1] == ("layer 4f4fb700ef54: the engine is retrying its upload "
                        "(Retrying in 5 seconds)")
