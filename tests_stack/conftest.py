"""Fixtures for this app's stack suite: variant files, a faults-enabled project, HTTP helpers."""

from __future__ import annotations

import contextlib
import fcntl
import secrets
import shutil
import subprocess
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from imagegate.engine import labelled_objects, stale_sessions
from imagegate.proc import wait_until
from imagegate.pytest_plugin import xdist_worker
from imagegate.run.stack import Stack, running_stack
from testsupport.fixtures import (  # noqa: F401
    nginx_image,
    postgres_image,
    python_slim_image,
    redis_alpine_image,
)
from testsupport.ports import listening_port
from testsupport.tls import issue, make_ca

VARIANTS = Path(__file__).parent / "variants"


@pytest.fixture(scope="session")
def variants() -> Path:
    """The directory of this suite's compose variant files."""
    return VARIANTS


@pytest.fixture
def project_copy(tmp_path: Path, stack_files: list[Path]) -> Callable[..., Path]:
    """Copy the main compose file, plus named variant files, into ``tmp_path``; return it.

    ``project_copy("env_override.yml", dotenv="greeting.env")`` also writes ``.env`` there.
    """
    def make(*names: str, dotenv: str | None = None) -> Path:
        shutil.copy(stack_files[0], tmp_path / stack_files[0].name)
        for name in names:
            shutil.copy(VARIANTS / name, tmp_path / name)
        if dotenv:
            shutil.copy(VARIANTS / dotenv, tmp_path / ".env")
        return tmp_path

    return make


@pytest.fixture(scope="module")
def fault_stack(docker_client: Any, imagegate_settings: Any, imagegate_session: str,
                stack_files: list[Path], stack_env: dict[str, str]) -> Iterator[Stack]:
    """The main stack plus variants/faults.yml (the /_fault routes), one per test module."""
    with running_stack(
        [*stack_files, VARIANTS / "faults.yml"], project=f"{imagegate_session}-faults",
        project_dir=imagegate_settings.project_dir, env=stack_env, session=imagegate_session,
        wait_timeout=imagegate_settings.wait_timeout, default_port=imagegate_settings.web_port,
    ) as running:
        yield running


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's docker-registry on an ephemeral 127.0.0.1 port; stopped by PID afterwards."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail("docker-registry is not installed (apt-get install docker-registry)",
                    pytrace=False)
    root = tmp_path_factory.mktemp("registry")
    config = root / "config.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\n"
                      "http:\n  addr: 127.0.0.1:0\nlog:\n  level: warn\n")
    with open(root / "registry.log", "wb") as log:
        proc = subprocess.Popen([binary, "serve", str(config)], stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        port = listening_port(proc.pid)
        wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/v2/", timeout=1).ok,
                   timeout=20, what="registry answering")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@dataclass(frozen=True)
class SecureRegistry:
    """A registry that wants TLS and a login, as users' registries do (see ``secure_registry``)."""

    host: str  # 127.0.0.1:PORT
    user: str
    password: str = field(repr=False)
    ca: Path  # signed the registry's certificate; the engine gets it via certs.d
    cert: Path  # the registry's certificate (IP:127.0.0.1) and key, for a proxy in front of it
    key: Path

    def env(self, password: str | None = None) -> dict[str, str]:
        """IMAGEGATE_REGISTRY_USER/PASSWORD for a gate (``password``: a wrong one instead)."""
        return {"IMAGEGATE_REGISTRY_USER": self.user,
                "IMAGEGATE_REGISTRY_PASSWORD": self.password if password is None else password}

    def auth(self) -> dict[str, str]:
        """The SDK's ``auth_config`` for pulls the tests make themselves."""
        return {"username": self.user, "password": self.password}

    def api(self, path: str, method: str = "GET", **headers: str) -> requests.Response:
        """A registry API call over TLS checked against the test CA, logged in."""
        return requests.request(method, f"https://{self.host}/v2/{path}", timeout=10,
                                auth=(self.user, self.password), verify=str(self.ca),
                                headers=headers)

    def tags(self, repo: str) -> list[str]:
        """The tags the registry holds for ``repo`` (none when it never heard of it)."""
        answer = self.api(f"{repo}/tags/list")
        if answer.status_code == 404:
            return []
        answer.raise_for_status()
        return list(answer.json().get("tags") or [])

    def digest(self, repo: str, tag: str) -> str:
        """The manifest digest the registry serves for ``repo:tag`` (asked over HTTPS, not
        through the engine)."""
        answer = self.api(f"{repo}/manifests/{tag}", "HEAD", Accept=", ".join([
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.oci.image.manifest.v1+json"]))
        answer.raise_for_status()
        return answer.headers["Docker-Content-Digest"]


@contextlib.contextmanager
def engine_trusts(host: str, ca: Path) -> Iterator[Path]:
    """``/etc/docker/certs.d/HOST/ca.crt`` for the duration, as `docker login` docs have users do
    for a private CA; removed after (and certs.d itself when this made it)."""
    certs_d = Path("/etc/docker/certs.d")
    made_root = not certs_d.exists()
    folder = certs_d / host
    try:
        folder.mkdir(parents=True, exist_ok=True)  # a killed run may have left it
        shutil.copyfile(ca, folder / "ca.crt")
    except OSError as exc:
        pytest.fail(f"cannot write {folder} (the engine's per-registry CAs): {exc}",
                    pytrace=False)
    try:
        yield folder / "ca.crt"
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if made_root:
            with contextlib.suppress(OSError):
                certs_d.rmdir()


def make_tls(where: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate for IP 127.0.0.1, its key), made by the openssl CLI."""
    make_ca(where, "imagegate test registry CA", "ca.crt", "ca.key")
    issue(where, "server", "/CN=127.0.0.1",
          "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
          ca=("ca.crt", "ca.key"), cert="server.crt", key="server.key")
    return where / "ca.crt", where / "server.crt", where / "server.key"


def bcrypt_htpasswd(user: str, password: str) -> str:
    """An htpasswd line with a bcrypt hash (all distribution accepts): Python's crypt module
    (libxcrypt's bcrypt; Python ≤ 3.12), else `htpasswd -iB` from apache2-utils, the password
    on its stdin (never in argv). Cost 4, the least: the registry checks it on every request,
    and at the default cost 12 that is a quarter second each on a busy machine."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt
        hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
        if hashed and hashed.startswith("$2"):
            return f"{user}:{hashed}"
    except ImportError:
        pass
    htpasswd = shutil.which("htpasswd")
    if htpasswd is None:
        pytest.fail("no bcrypt here: apt-get install apache2-utils (htpasswd)", pytrace=False)
    return subprocess.run([htpasswd, "-niB", "-C", "4", user], input=password, capture_output=True,
                          text=True, check=True, timeout=30).stdout.strip()


@pytest.fixture(scope="session")
def secure_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureRegistry]:
    """Debian's docker-registry on an ephemeral 127.0.0.1 port wanting TLS (a CA and certificate
    made here) and an htpasswd (bcrypt) login; stopped by PID afterwards.

    The engine is given the CA as a real setup would (``/etc/docker/certs.d/HOST/ca.crt``), but
    it neither verifies TLS for 127.0.0.0/8 (a default insecure-registry range) nor reads certs.d
    for registries it does not verify: TLS and the login are exercised for real here, the
    engine's certificate check is not (this fixture's own readiness probe does check it).
    """
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail("docker-registry is not installed (apt-get install docker-registry)",
                    pytrace=False)
    root = tmp_path_factory.mktemp("secure-registry")
    ca, cert, key = make_tls(root)
    user, password = "gate", f"ig-pw-{secrets.token_hex(12)}"
    (root / "htpasswd").write_text(bcrypt_htpasswd(user, password) + "\n")
    config = root / "config.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\n"
        f"http:\n  addr: 127.0.0.1:0\n  tls:\n    certificate: {cert}\n    key: {key}\n"
        f"auth:\n  htpasswd:\n    realm: imagegate-test\n    path: {root}/htpasswd\n"
        "log:\n  level: warn\n")
    with open(root / "registry.log", "wb") as log:
        proc = subprocess.Popen([binary, "serve", str(config)], stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        host = f"127.0.0.1:{listening_port(proc.pid)}"
        registry = SecureRegistry(host, user, password, ca, cert, key)
        with engine_trusts(host, ca):
            wait_until(lambda: registry.api("").ok, timeout=20, what="TLS registry answering")
            yield registry
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture
def trust_in_engine(secure_registry: SecureRegistry) -> Iterator[Callable[[str], Path]]:
    """``trust_in_engine(host)``: the test registry's CA in certs.d for another host (a proxy in
    front of the registry) until the test ends."""
    with contextlib.ExitStack() as stack:
        yield lambda host: stack.enter_context(engine_trusts(host, secure_registry.ca))


@pytest.fixture(scope="session")
def killed_registry(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory,
                    ) -> Path:
    """Where tests record the sessions they kill on purpose: one directory for the whole run,
    shared by the xdist workers (their base temp dirs sit side by side in it)."""
    base = tmp_path_factory.getbasetemp()
    registry = (base.parent if xdist_worker(pytestconfig) else base) / "killed-sessions"
    registry.mkdir(exist_ok=True)
    return registry


@pytest.fixture(autouse=True)
def prune_lock(request: pytest.FixtureRequest, killed_registry: Path) -> Iterator[None]:
    """Every stack test holds the run's prune lock shared; a test marked ``prunes`` (it runs
    ``imagegate prune``, which removes what dead sessions left and the untagged labelled images)
    holds it alone. So no prune on one xdist worker removes another test's leak before its
    ``leftovers() == []``, takes the session another test killed before that test's own prune
    reports it, or deletes an untagged labelled image another test is about to use."""
    exclusive = request.node.get_closest_marker("prunes") is not None
    with open(killed_registry.parent / "prune.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield


@pytest.fixture
def killed_on_purpose(killed_registry: Path) -> Callable[[str], None]:
    """``killed_on_purpose(prefix)``: this test is about to kill the sessions ``prefix*`` and
    remove what they leave itself; another worker's leak check must not count them."""
    return lambda prefix: (killed_registry / prefix).touch()


@pytest.fixture
def leftovers(docker_client: Any, killed_registry: Path) -> Callable[[], list[str]]:
    """Labelled objects left by sessions whose process has ended since the test started.

    Other runs may be live on the same engine; an object whose owner is still running is not a
    leftover, one whose owner has exited is — unless a test (on another worker) killed that
    session on purpose and prunes it itself (:func:`killed_on_purpose`).
    """
    before = stale_sessions(docker_client)

    def left() -> list[str]:
        killed = tuple(p.name for p in killed_registry.iterdir())
        return sorted(obj for session in stale_sessions(docker_client) - before
                      if not session.startswith(killed)
                      for obj in labelled_objects(session, docker_client))

    return left


@pytest.fixture
def own_fault_stack(stack_factory: Any, stack_files: list[Path]) -> Stack:
    """A stack of its own for one fault test: the main compose file plus variants/faults.yml,
    up and healthy when the test starts whatever the test before it broke, and taken down
    after it (``stack_factory``: the tested image, ports on 127.0.0.1)."""
    started: Stack = stack_factory([*stack_files, VARIANTS / "faults.yml"])
    return started


SAMPLE = Path(__file__).parent / "sample_project"


@pytest.fixture
def sample(tmp_path: Path, imagegate_settings: Any) -> Path:
    """A fresh copy of the sample project, with this repo's hashed locks for its wheelhouse."""
    project = tmp_path / "sample"
    shutil.copytree(SAMPLE, project)
    for lock in imagegate_settings.locks:
        shutil.copy2(imagegate_settings.path(lock), project / lock)
    return project
