"""Pushing to a registry like the ones users have: TLS, a login, failures on the way.

The gate runs as CI runs it (a subprocess, credentials in IMAGEGATE_REGISTRY_USER/PASSWORD) on a
copy of the sample project, against Debian's docker-registry with TLS and htpasswd auth
(``secure_registry``). Faults come from a closed port (registry down) and from a small
TLS-terminating proxy in front of the registry that answers 503 to chosen requests. The docker
config's credentials (``docker login``'s config.json, a credential helper) are proven by pushing a
tiny image with :func:`imagegate.gate.push.push` directly. The password must appear in no output.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import os
import re
import ssl
import subprocess
import tarfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from stack_helpers import gate, junit_cases, result

from imagegate.engine import client
from imagegate.gate.push import RegistryAuthFailed, RegistryUnavailable, push
from testsupport.ports import refused_port

pytestmark = pytest.mark.slow



@pytest.fixture
def untag(docker_client: Any) -> Iterator[list[str]]:
    """Refs a test pushes to: the local tags and digest references the push and the pull-back
    left for them are removed afterwards (the image itself stays: it is the shared sample)."""
    refs: list[str] = []
    yield refs
    for ref in refs:
        repo = ref.rsplit(":", 1)[0]
        for image in docker_client.images.list(name=repo):
            for name in [*image.tags, *image.attrs.get("RepoDigests", [])]:
                if name.startswith((f"{repo}:", f"{repo}@")):
                    with contextlib.suppress(Exception):
                        docker_client.images.remove(name, noprune=True)


def run_gate(project: Path, ref: str, monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
             untag: list[str]) -> subprocess.CompletedProcess[str]:
    """The gate with ``--push ref``, the registry credentials in its environment only."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    untag.append(ref)
    return gate(project, "--push", ref)


def assert_secret_nowhere(secret: str, user: str, out: Path,
                          proc: subprocess.CompletedProcess[str]) -> None:
    """``secret`` — plain, or as the basic-auth ``user:secret`` in base64 — is in no file under
    the report dir (result.json, summary, JUnit, SARIF, settings, findings) nor in the output."""
    __tracebackhide__ = True
    forms = [secret, base64.b64encode(f"{user}:{secret}".encode()).decode()]
    files = [p for p in out.rglob("*") if p.is_file()]
    assert (out / "result.json") in files, sorted(files)
    for path in files:
        data = path.read_bytes()
        assert not [f for f in forms if f.encode() in data], f"the password is in {path}"
    assert not [f for f in forms if f in proc.stdout + proc.stderr], "the password was printed"


def test_gate_pushes_with_env_credentials(sample: Path, secure_registry: Any, docker_client: Any,
                                          monkeypatch: pytest.MonkeyPatch, untag: list[str],
                                          leftovers: Callable[[], list[str]]) -> None:
    """The sample project green on every stage and pushed, logged in from the environment over
    TLS: every stage's checks in the JUnit file and none failed, the summary shows PASSED, the
    size budget and ref@digest; the registry itself serves that digest for the tag, a fresh pull
    by tag gets it back, and nothing is left on the engine."""
    ref = f"{secure_registry.host}/imagegate/sample:ok"
    proc = run_gate(sample, ref, monkeypatch, secure_registry.env(), untag)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    cases = junit_cases(sample / "out")
    assert {"lint", "image", "stack"} <= {case.split("::")[0] for case in cases}, cases
    assert not [c for c, o in cases.items() if o in ("failure", "error")]
    assert any("IG-USER-NONROOT" in c for c in cases), "image policy checks are in the JUnit file"
    out = result(sample / "out")
    assert out["status"] == "passed" and out["exit_code"] == 0
    digest = out["pushed"]["digest"]
    assert out["pushed"]["ref"] == ref and digest.startswith("sha256:")
    summary = (sample / "out" / "summary.md").read_text()
    assert "PASSED" in summary and "of 80 MB budget" in summary and f"{ref}@{digest}" in summary
    assert f"pushed {ref}@{digest}" in proc.stdout
    assert secure_registry.digest("imagegate/sample", "ok") == digest
    docker_client.images.remove(ref, noprune=True)
    pulled = docker_client.images.pull(ref.rsplit(":", 1)[0], tag="ok",
                                       auth_config=secure_registry.auth())
    assert any(d.endswith(digest) for d in pulled.attrs["RepoDigests"]), pulled.attrs
    assert_secret_nowhere(secure_registry.password, secure_registry.user, sample / "out", proc)
    assert leftovers() == []


def test_gate_wrong_password_pushes_nothing(sample: Path, secure_registry: Any,
                                            monkeypatch: pytest.MonkeyPatch,
                                            untag: list[str]) -> None:
    """A wrong password: exit 2, one line naming the registry, nothing pushed, not retried, and
    neither password anywhere in the output."""
    wrong = f"wrong-{uuid.uuid4().hex}"
    ref = f"{secure_registry.host}/imagegate/sample-denied:bad"
    proc = run_gate(sample, ref, monkeypatch, secure_registry.env(password=wrong), untag)
    assert proc.returncode == 2, proc.stdout[-3000:]
    assert f"authentication failed for {secure_registry.host}\n" in proc.stdout, proc.stdout[-2000:]
    assert "push attempt" not in proc.stdout and "Traceback" not in proc.stdout + proc.stderr
    stages = {s["name"]: s for s in result(sample / "out")["stages"]}
    assert stages["push"]["status"] == "error"
    assert stages["push"]["message"] == f"authentication failed for {secure_registry.host}"
    assert not result(sample / "out")["pushed"]
    assert secure_registry.tags("imagegate/sample-denied") == []
    for secret in (wrong, secure_registry.password):
        assert_secret_nowhere(secret, secure_registry.user, sample / "out", proc)


def test_push_registry_down_retries_then_names_it(secure_registry: Any, tiny_image: str) -> None:
    """Nothing listens: three attempts with backoff, then RegistryUnavailable (the gate's exit
    2, as test_gate_wrong_password_pushes_nothing shows for a push error) naming the registry;
    the password in no line. Pushed directly (the push stage of a gate), one gate fewer."""
    lines: list[str] = []
    with refused_port() as port:  # held, never listening: refused, not a hang, and nobody else's
        down = f"127.0.0.1:{port}"
        with pytest.raises(RegistryUnavailable) as raised:
            push(client(), tiny_image, f"{down}/imagegate/tiny:down", log=lines.append,
                 environ=secure_registry.env())
    said = "\n".join([*lines, raised.value.message, raised.value.detail])
    assert raised.value.exit_code == 2
    assert re.search(rf"registry {down} unavailable after 3 attempts: .*connection refused",
                     raised.value.message), said
    assert "push attempt 1/3 failed" in said and "push attempt 2/3 failed" in said
    assert "push attempt 3/3" not in said and "retrying in 2s" in said
    assert secure_registry.password not in said


FAULTS: dict[str, tuple[Callable[[str, str], bool], str]] = {
    # the manifest PUT, after every layer is up: the engine gives up, imagegate retries the push
    "manifest-put": (lambda method, path: method == "PUT" and "/manifests/" in path,
                     "push attempt 1/3 failed (received unexpected HTTP status: 503"),
    # a layer upload starting: the engine's own upload retry ("Retrying in 5 seconds") absorbs it
    "blob-upload": (lambda method, path: method == "POST" and "/blobs/uploads/" in path,
                    "the engine is retrying its upload (Retrying in "),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_push_transient_5xx_is_retried(fault: str, secure_registry: Any, tiny_image: str,
                                       trust_in_engine: Callable[[str], Path]) -> None:
    """A 503 mid-push (through a proxy in front of the registry): retried, pushed, and the
    registry serves the digest the push reported. Pushed directly (the push stage of a gate,
    on an image whose one layer no registry has yet), one gate fewer each."""
    rule, says = FAULTS[fault]
    lines: list[str] = []
    with FaultProxy(secure_registry, rule) as proxy:
        trust_in_engine(proxy.host)
        repo = f"imagegate/tiny-{fault}"
        pushed = push(client(), tiny_image, f"{proxy.host}/{repo}:retried", log=lines.append,
                      environ=secure_registry.env())
    assert len(proxy.faults) == 1, proxy.seen
    assert any(says in line for line in lines), lines
    assert secure_registry.digest(repo, "retried") == pushed.digest
    assert not [line for line in lines if secure_registry.password in line]


# -- the docker config's credentials, through the SDK (push.push directly, a tiny image) -------


@pytest.fixture
def tiny_image(docker_client: Any, imagegate_session: str) -> Iterator[str]:
    """A one-file image (imported, nothing pulled), labelled with the session; removed after."""
    data = uuid.uuid4().hex.encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    answer = docker_client.api.import_image_from_data(
        buf.getvalue(), repository="imagegate-test/tiny", tag=data.decode()[:12],
        changes=[f'LABEL imagegate.session="{imagegate_session}"'])
    image_id = re.findall(r"sha256:[0-9a-f]{64}", str(answer))[-1]
    yield image_id
    docker_client.images.remove(image_id, force=True, noprune=True)


def docker_config(where: Path, data: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """A docker config dir holding ``data`` as config.json, pointed at by DOCKER_CONFIG."""
    where.mkdir()
    (where / "config.json").write_text(json.dumps(data))
    monkeypatch.setenv("DOCKER_CONFIG", str(where))


@pytest.mark.parametrize("password_ok", [True, False], ids=["logged-in", "wrong-login"])
def test_push_with_docker_login_config(password_ok: bool, secure_registry: Any, tiny_image: str,
                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No IMAGEGATE_REGISTRY_* variables: `docker login`'s config.json entry is what the SDK
    sends (a wrong one is refused as such)."""
    password = secure_registry.password if password_ok else "not-the-password"
    login = base64.b64encode(f"{secure_registry.user}:{password}".encode()).decode()
    docker_config(tmp_path / "docker", {"auths": {secure_registry.host: {"auth": login}}},
                  monkeypatch)
    ref = f"{secure_registry.host}/imagegate/tiny:login"
    if not password_ok:
        with pytest.raises(RegistryAuthFailed, match="authentication failed for"):
            push(client(), tiny_image, ref, log=lambda _: None, environ={})
        return
    lines: list[str] = []
    pushed = push(client(), tiny_image, ref, log=lines.append, environ={})
    assert secure_registry.digest("imagegate/tiny", "login") == pushed.digest
    assert "the docker config" in lines[0]


def test_push_with_credential_helper(secure_registry: Any, tiny_image: str, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """config.json's credHelpers names a helper for this registry: the SDK runs it (`get`,
    the server on stdin) and pushes with what it answers."""
    helper_dir = tmp_path / "bin"
    helper_dir.mkdir()
    asked = tmp_path / "asked"
    helper = helper_dir / "docker-credential-igtest"
    helper.write_text(
        "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread -r server\n"
        f"echo \"$server\" >> '{asked}'\n"
        f"printf '{{\"ServerURL\":\"%s\",\"Username\":\"{secure_registry.user}\","
        f"\"Secret\":\"{secure_registry.password}\"}}' \"$server\"\n")
    helper.chmod(0o700)
    monkeypatch.setenv("PATH", f"{helper_dir}:{os.environ['PATH']}")
    docker_config(tmp_path / "docker", {"credHelpers": {secure_registry.host: "igtest"}},
                  monkeypatch)
    pushed = push(client(), tiny_image, f"{secure_registry.host}/imagegate/tiny:helper",
                  log=lambda _: None, environ={})
    assert secure_registry.digest("imagegate/tiny", "helper") == pushed.digest
    assert secure_registry.host in asked.read_text().split()


# -- a registry that fails on purpose ------------------------------------------------------------


class FaultProxy:
    """A TLS proxy on 127.0.0.1 in front of the registry that answers 503 to the first request
    ``fail(method, path)`` selects and passes every other one through untouched.

    One request per connection (it asks the registry to close after answering), so each
    request's line is seen; bodies, chunked or not, are piped as bytes. asyncio, on a thread of
    its own: one thread drives both directions of each TLS connection (OpenSSL objects must not
    be read and written from two threads at once).
    """

    def __init__(self, registry: Any, fail: Callable[[str, str], bool], times: int = 1) -> None:
        self.registry, self.fail, self.left = registry, fail, times
        self.seen: list[str] = []
        self.faults: list[str] = []
        self.host = ""
        self.tls_in = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls_in.load_cert_chain(registry.cert, registry.key)
        self.tls_out = ssl.create_default_context(cafile=str(registry.ca))
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.stop: asyncio.Event  # made on the loop's thread
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._main(),),
                                       daemon=True)

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        assert self.ready.wait(10), "the proxy did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(timeout=10)

    async def _main(self) -> None:
        """Listen on an ephemeral 127.0.0.1 port until stopped."""
        self.stop = asyncio.Event()
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls_in)
        self.host = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        self.ready.set()
        async with server:
            await self.stop.wait()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One request: a 503, or through to the registry and back."""
        upstream: asyncio.StreamWriter | None = None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            method, path = head.decode("latin-1").split(" ", 2)[:2]
            self.seen.append(f"{method} {path}")
            if self.left > 0 and self.fail(method, path):
                self.left -= 1
                self.faults.append(f"{method} {path}")
                length = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
                await reader.readexactly(int(length.group(1)) if length else 0)  # read, not reset
                writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
                await writer.drain()
                return
            name, port = self.registry.host.split(":")
            from_registry, upstream = await asyncio.open_connection(
                name, int(port), ssl=self.tls_out, server_hostname=name)
            upstream.write(_close_after(head))
            sending = asyncio.ensure_future(_pipe(reader, upstream))
            await _pipe(from_registry, writer)  # until the registry closes, having answered
            sending.cancel()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            return
        finally:
            for stream in (upstream, writer):
                if stream is not None:
                    stream.close()


def _close_after(head: bytes) -> bytes:
    """The request head asking the server to close the connection after its answer."""
    lines = [line for line in head.split(b"\r\n")[:-2]
             if not line.lower().startswith((b"connection:", b"keep-alive:"))]
    return b"\r\n".join([*lines, b"Connection: close", b"", b""])


async def _pipe(source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
    """Copy bytes until ``source`` ends (or either side breaks)."""
    try:
        while chunk := await source.read(65536):
            target.write(chunk)
            await target.drain()
    except (OSError, asyncio.CancelledError):
        return
