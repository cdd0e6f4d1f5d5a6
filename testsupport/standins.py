"""Local stand-ins for stock images nothing can pull here: ``python:3.11-slim``, ``redis:7-alpine``.

The sample projects under ``tests_stack/projects/`` are written as people write them, against the
official images. These machines reach no registry, so the tests make images under the same names
that behave the same way for such projects:

- ``python:3.11-slim``: a debootstrap ``minbase`` of the host's Debian suite with python3, pip,
  venv and adduser; ``python``/``pip`` on PATH and no PEP 668 marker, so ``pip install`` works as
  root as in the official image. The finished root filesystem is cached as a tarball keyed by the
  recipe, so making the image again after ``docker rmi`` takes seconds, not a debootstrap.
- ``redis:7-alpine``: the local ``imagegate/redis`` base (made from Debian packages by
  ``imagegate base redis``) plus a busybox shell and the official entrypoint's argument handling.

Stand-ins carry ``imagegate.standin=<tag>`` and ``imagegate.managed=false``, so ``imagegate prune
--images`` keeps them; an image under the same name that is not a stand-in (a real one loaded with
``docker load``) is always left alone. Command line: ``python -m testsupport.standins
[python|redis|all] [--verify]``.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from imagegate import base
from imagegate.base import local_image
from imagegate.engine import (
    IMAGE_LABEL,
    SESSION_LABEL,
    STATE_DIR,
    cleanup_session,
    client,
    new_session_id,
    session_labels,
)
from imagegate.errors import CommandFailed, ImagegateError
from imagegate.proc import run, wait_until

Log = Callable[[str], None]

PYTHON_SLIM = "python:3.11-slim"
REDIS_ALPINE = "redis:7-alpine"
#: Every stand-in carries this label, valued with the tag it stands in for.
STANDIN_LABEL = "imagegate.standin"
#: A digest of everything that decides a stand-in; a stand-in with another key is remade.
KEY_LABEL = "imagegate.standin.key"
#: Bump when how a stand-in image is made changes (config, labels): existing ones are remade.
REVISION = "2"
#: Bump when how the python rootfs is made changes: the cached tarball is debootstrapped again.
ROOTFS_REVISION = "1"
CACHE_DIR = STATE_DIR / "standins"
MIRROR = "http://deb.debian.org/debian"
PYTHON_INCLUDE = ("python3", "python3-pip", "python3-venv", "adduser")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
#: The official image's config (its PYTHON_VERSION is added from the rootfs).
PYTHON_CHANGES = (
    "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["python3"]',
)
#: busybox applets linked in the Redis stand-in: what compose healthchecks and `sh -c` commands use.
REDIS_APPLETS = ("sh", "cat", "echo", "env", "grep", "head", "id", "ls", "ps", "sleep", "test", "tr")

PEM = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)

#: The official image's entrypoint, minus its chown/gosu step (the base already runs as redis):
#: options alone (`command: --appendonly yes`) or a config file become arguments of
#: redis-server. The official binary is built with protected mode off; Debian's is not, so it is
#: switched off here unless the command line or the config file sets it.
REDIS_ENTRYPOINT = r"""#!/bin/sh
set -e
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi
if [ "$1" = "redis-server" ]; then
	case " $* " in
	*" --protected-mode "*) ;;
	*)
		conf=""
		if [ "${2%.conf}" != "${2:-}" ]; then conf="$2"; fi
		if [ -z "$conf" ] || ! grep -qs '^[[:space:]]*protected-mode' "$conf"; then
			set -- "$@" --protected-mode no
		fi
		;;
	esac
fi
exec "$@"
"""

REDIS_DOCKERFILE = """\
FROM {base}
# Alpine has a shell; healthchecks with CMD-SHELL and `sh -c` commands need one. Debian's busybox,
# taken from its .deb, with the few applets such commands use.
COPY busybox /bin/busybox
COPY applets/ /bin/
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /data
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
# ENTRYPOINT resets the base's CMD: restate it (all interfaces, no protected mode, data in /data).
CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--dir", "/data"]
"""


@dataclass(frozen=True)
class Standin:
    """One stand-in after :func:`ensure`: where it came from and what it cost."""

    tag: str
    image_id: str
    made: bool
    size: int
    seconds: float

    def line(self) -> str:
        """One line for a log: tag, made or present, id, size, seconds."""
        state = "made" if self.made else "present"
        return (f"{self.tag}: {state} {self.image_id.removeprefix('sha256:')[:12]} "
                f"{self.size / 1e6:.1f} MB in {self.seconds:.1f} s")


# --------------------------------------------------------------------------- python:3.11-slim

def ensure_python_slim(tag: str = PYTHON_SLIM, *, log: Log = print) -> str:
    """Make sure ``tag`` exists locally, making a Debian stand-in for the official image if not.

    Returns ``tag``. See :func:`python_slim` for what the stand-in is.
    """
    return python_slim(tag, log=log).tag


def python_slim(tag: str = PYTHON_SLIM, *, log: Log = print) -> Standin:
    """``tag`` as an image that behaves like ``python:3.x-slim`` for a Dockerfile written for it.

    A debootstrap ``minbase`` of the host's suite with python3, pip, venv and adduser, trimmed,
    imported with the official image's PATH/LANG/CMD. Made from the cached rootfs tarball when
    there is one (seconds), otherwise debootstrapped first (about 40 s, needs root and the mirror).
    """
    started = time.monotonic()
    cli = client()
    suite = base.codename()
    rootfs_key = _digest(ROOTFS_REVISION, suite, MIRROR, *PYTHON_INCLUDE,
                         _file_digest(HOST_CA_BUNDLE))
    key = _digest(REVISION, rootfs_key, *PYTHON_CHANGES)
    with _locked(tag):
        existing = _usable(cli, tag, key, log)
        if existing is not None:
            return _standin(existing, tag, made=False, started=started)
        tarball = CACHE_DIR / f"python-{suite}-{rootfs_key}.tar"
        meta = tarball.with_suffix(".json")
        if tarball.is_file() and meta.is_file():
            log(f"{tag}: importing the cached rootfs {tarball}")
        else:
            _python_rootfs(tarball, meta, suite, log)
        info = json.loads(meta.read_text())
        changes = [
            *PYTHON_CHANGES,
            f"ENV PYTHON_VERSION={info['python_version']}",
            *(f"LABEL {k}={json.dumps(v)}" for k, v in _labels(tag, key).items()),
        ]
        made_from = f"{suite} minbase + {', '.join(PYTHON_INCLUDE)}"
        argv = ["docker", "import", *(a for c in changes for a in ("--change", c)),
                "--message", f"imagegate stand-in for {tag}: {made_from}", str(tarball), tag]
        run(argv, timeout=600)
        return _standin(cli.images.get(tag), tag, made=True, started=started)


def _python_rootfs(tarball: Path, meta: Path, suite: str, log: Log) -> None:
    """debootstrap the stand-in's root filesystem, finish it, and cache it as ``tarball``."""
    if os.geteuid() != 0:
        raise ImagegateError("making the python:3.11-slim stand-in needs root (debootstrap, chroot)")
    _need_debootstrap(log)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    log(f"debootstrap --variant=minbase {suite} + {','.join(PYTHON_INCLUDE)} (about 40 s)")
    # Under the cache dir, not /tmp: same filesystem as the tarball (atomic rename), and a /tmp
    # mounted noexec would break the chroot.
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir=CACHE_DIR) as tmp:
        rootfs = Path(tmp) / "rootfs"
        run(["debootstrap", "--variant=minbase", f"--include={','.join(PYTHON_INCLUDE)}", suite,
             str(rootfs), MIRROR], timeout=900)
        version = run(["chroot", str(rootfs), "python3", "-c",
                       "import platform; print(platform.python_version())"],
                      timeout=60).stdout.strip()
        _finish_python(rootfs)
        partial = Path(tmp) / "rootfs.tar"
        run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(partial), "."], timeout=600)
        os.replace(partial, tarball)
    meta.write_text(json.dumps({"python_version": version, "suite": suite,
                                "include": list(PYTHON_INCLUDE)}) + "\n")


def _finish_python(rootfs: Path) -> None:
    """What makes a Debian minbase act like the official slim image, and its trimming."""
    stdlib = sorted((rootfs / "usr/lib").glob("python3.*"))[-1].name  # e.g. python3.11
    # The official image installs python and pip in /usr/local/bin; Debian has python3 and pip3.
    for name, target in (("python", "/usr/bin/python3"), ("pip", "/usr/bin/pip3")):
        link = rootfs / "usr/local/bin" / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(target)
    # PEP 668: Debian marks its Python externally managed, so `pip install` as root refuses. The
    # official image's Python is its own, unmarked; Dockerfiles written for it rely on that.
    for marker in rootfs.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
        marker.unlink()
    # The official image's purelib is /usr/local/lib/python3.X/site-packages, and multi-stage
    # recipes copy installed packages there; Debian's is .../dist-packages (where pip still
    # installs here). Make the official path a site dir too (its .pth files processed).
    official = f"/usr/local/lib/{stdlib}/site-packages"
    (rootfs / official.lstrip("/")).mkdir(parents=True, exist_ok=True)
    (rootfs / f"usr/local/lib/{stdlib}/dist-packages").mkdir(parents=True, exist_ok=True)
    (rootfs / "usr/lib/python3/dist-packages/imagegate-standin-site-packages.pth").write_text(
        f"import site; site.addsitedir({official!r})\n"
    )
    _install_host_ca(rootfs)
    # What the official images clean up: package lists, downloaded .debs, apt's binary caches,
    # logs, documentation (copyright files kept). The host's name and resolver do not belong in
    # an image: the engine provides both at run time.
    for rel in ("var/lib/apt/lists", "var/cache/apt", "var/log", "usr/share/man", "usr/share/info"):
        for path in sorted((rootfs / rel).rglob("*"), reverse=True):
            if path.is_file() or path.is_symlink():
                path.unlink()
    (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
    (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
    for path in (rootfs / "usr/share/doc").rglob("*"):
        if (path.is_file() or path.is_symlink()) and path.name != "copyright":
            path.unlink()
    for rel in ("etc/hostname", "etc/resolv.conf"):
        (rootfs / rel).unlink(missing_ok=True)
        (rootfs / rel).touch()


def _install_host_ca(rootfs: Path) -> None:
    """Give the stand-in the host's CA bundle, so pip and apt reach their mirrors from builds.

    Test fixture only: build containers on these machines reach PyPI and Debian through a
    TLS-intercepting proxy whose CA is in the host's bundle and nowhere else. A company base
    image carries its proxy CA the same way; the product's own bases never do. Debian's pip is
    patched to use the system store (/etc/ssl/certs/ca-certificates.crt), not certifi's copy.
    The CAs the host has beyond Debian's set also go to /usr/local/share/ca-certificates, so a
    Dockerfile that runs update-ca-certificates keeps them.
    """
    if not HOST_CA_BUNDLE.is_file():
        return
    bundle = rootfs / "etc/ssl/certs/ca-certificates.crt"
    debian = {_normal(pem) for pem in PEM.findall(bundle.read_text())} if bundle.is_file() else set()
    extra = [pem for pem in PEM.findall(HOST_CA_BUNDLE.read_text()) if _normal(pem) not in debian]
    local = rootfs / "usr/local/share/ca-certificates"
    local.mkdir(parents=True, exist_ok=True)
    for n, pem in enumerate(extra, 1):
        (local / f"imagegate-host-{n}.crt").write_text(pem + "\n")
    bundle.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(HOST_CA_BUNDLE, bundle)


def _normal(pem: str) -> str:
    """A PEM block with whitespace removed, for comparing bundles."""
    return "".join(pem.split())


def _need_debootstrap(log: Log) -> None:
    """apt-get install debootstrap when it is missing (updating the lists if the install fails)."""
    if shutil.which("debootstrap"):
        return
    log("apt-get install debootstrap")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    try:
        run(["apt-get", "install", "-y", "-qq", "debootstrap"], timeout=600, env=env)
    except CommandFailed:
        run(["apt-get", "update", "-qq"], timeout=600, env=env)
        run(["apt-get", "install", "-y", "-qq", "debootstrap"], timeout=600, env=env)


def verify_python_slim(tag: str = PYTHON_SLIM, *, timeout: float = 180) -> str:
    """``pip download flask`` in a container on the default network; return pip's last line.

    Proves the stand-in's pip trusts its system CA store (so the proxy's CA is honoured) and that
    PyPI is reachable from containers. :class:`CommandFailed` when it is not.
    """
    session = new_session_id()
    try:
        out = run(["docker", "run", "--rm", "--pull", "never", "--label", f"{SESSION_LABEL}={session}",
                   tag, "pip", "download", "--no-deps", "-d", "/tmp", "flask"], timeout=timeout)
    finally:
        cleanup_session(session)  # only matters when the client timed out with the container up
    return (out.stdout.strip().splitlines() or ["(no output)"])[-1]


# --------------------------------------------------------------------------- redis:7-alpine

def ensure_redis_alpine(tag: str = REDIS_ALPINE, *, log: Log = print) -> str:
    """Make sure ``tag`` exists locally, building it from the local Redis base if not; return it."""
    return redis_alpine(tag, log=log).tag


def redis_alpine(tag: str = REDIS_ALPINE, *, log: Log = print) -> Standin:
    """``tag`` as an image that behaves like ``redis:7-alpine`` when compose just names it.

    Built with the classic builder, nothing pulled, from ``imagegate/redis:7-<suite>`` (made
    first when missing). The base already starts redis-server on 0.0.0.0:6379 without protected
    mode, exposes 6379 and has redis-cli; it has no shell and no entrypoint, which is added here.
    Remade when the base image changes.
    """
    started = time.monotonic()
    cli = client()
    recipe = base.recipes("redis")[0]
    with _locked(tag):
        base_image = local_image(cli, recipe.ref)
        if base_image is None:
            log(f"{recipe.ref}: missing, making it (`imagegate base redis`)")
            base.ensure_base(recipe, log=log)
            base_image = cli.images.get(recipe.ref)
        busybox_version = base.resolve(("busybox",))["busybox"]
        dockerfile = REDIS_DOCKERFILE.format(base=recipe.ref)
        key = _digest(REVISION, base_image.id, busybox_version, dockerfile, REDIS_ENTRYPOINT,
                      *REDIS_APPLETS)
        existing = _usable(cli, tag, key, log)
        if existing is not None:
            return _standin(existing, tag, made=False, started=started)
        deb = base.download({"busybox": busybox_version}, log=log)["busybox"]
        with tempfile.TemporaryDirectory(prefix="imagegate-standin-redis-") as tmp:
            ctx = Path(tmp)
            _redis_context(ctx, deb, dockerfile)
            image_id = _classic_build(cli, ctx, tag, _labels(tag, key))
        return _standin(cli.images.get(image_id), tag, made=True, started=started)


def _redis_context(ctx: Path, deb: Path, dockerfile: str) -> None:
    """The build context: Dockerfile, busybox from its .deb, applet links, entrypoint."""
    unpacked = ctx / "deb"
    run(["dpkg-deb", "-x", str(deb), str(unpacked)], timeout=120)
    busybox = next(p for p in (unpacked / "bin/busybox", unpacked / "usr/bin/busybox") if p.exists())
    shutil.copy2(busybox, ctx / "busybox")
    shutil.rmtree(unpacked)
    applets = ctx / "applets"
    applets.mkdir()
    for name in REDIS_APPLETS:
        (applets / name).symlink_to("busybox")  # COPY keeps symlinks as symlinks
    entry = ctx / "docker-entrypoint.sh"
    entry.write_text(REDIS_ENTRYPOINT)
    entry.chmod(0o755)
    (ctx / "Dockerfile").write_text(dockerfile)


def _classic_build(cli: Any, ctx: Path, tag: str, labels: dict[str, str]) -> str:
    """Build ``ctx`` with the classic builder, never pulling; return the image id."""
    image_id = ""
    log: list[str] = []
    for chunk in cli.api.build(path=str(ctx), tag=tag, labels=labels, pull=False, rm=True,
                               forcerm=True, network_mode="none", decode=True, timeout=300):
        if "error" in chunk:
            raise ImagegateError(f"building {tag} failed: {str(chunk['error']).strip()}",
                                 detail="\n".join(log[-20:]))
        log.extend(str(chunk.get("stream", "")).splitlines())
        image_id = str(chunk.get("aux", {}).get("ID", image_id))
    if not image_id:
        raise ImagegateError(f"building {tag} returned no image id", detail="\n".join(log[-20:]))
    return image_id


def verify_redis_alpine(tag: str = REDIS_ALPINE, *, timeout: float = 30) -> str:
    """Start ``tag`` as compose would (no command) and ``redis-cli ping`` it; return the reply.

    Also runs the ping through ``sh -c``, as a CMD-SHELL healthcheck would.
    """
    cli = client()
    session = new_session_id()
    try:
        # create + start, not containers.run: the SDK's run pulls when the image is missing.
        ctr = cli.containers.create(tag, labels=session_labels(session))
        ctr.start()

        def pong() -> str | None:
            res = ctr.exec_run(["sh", "-c", "redis-cli -h 127.0.0.1 ping"])
            text = res.output.decode(errors="replace").strip()
            return text if res.exit_code == 0 and text == "PONG" else None

        return wait_until(pong, timeout=timeout, interval=0.2, what=f"{tag} answering PONG")
    finally:
        cleanup_session(session, cli)


# --------------------------------------------------------------------------- shared

def ensure(kind: str, *, log: Log = print) -> Standin:
    """The stand-in named by ``kind`` (``python`` or ``redis``) under its default tag."""
    makers: dict[str, Callable[..., Standin]] = {"python": python_slim, "redis": redis_alpine}
    if kind not in makers:
        raise ImagegateError(f"unknown stand-in {kind!r}: use python, redis or all")
    return makers[kind](log=log)


def ensure_all(log: Log = print) -> list[Standin]:
    """Every stand-in (python:3.11-slim, redis:7-alpine), made where missing."""
    return [ensure(kind, log=log) for kind in ("python", "redis")]


def _usable(cli: Any, tag: str, key: str, log: Log) -> Any | None:
    """The local image ``tag`` if it can be used as it is, else None (and it will be made).

    A real image under the name is always used; a stand-in only if its key matches the current
    recipe. A stand-in is an image whose stand-in label names its own tag: images built FROM a
    stand-in inherit the label, with another tag's name.
    """
    image = local_image(cli, tag)
    if image is None:
        return None
    labels = image.labels or {}
    if labels.get(STANDIN_LABEL) != tag or labels.get(KEY_LABEL) == key:
        return image
    log(f"{tag}: stand-in recipe or base changed, remaking it")
    return None


def _labels(tag: str, key: str) -> dict[str, str]:
    """The stand-in's labels; ``imagegate.managed=false`` overrides what the Redis base passes down.

    Deliberately no OCI labels (title, description…): the official images carry none, and every
    image built FROM a stand-in inherits its labels, which would satisfy a label check falsely.
    """
    return {STANDIN_LABEL: tag, KEY_LABEL: key, IMAGE_LABEL: "false"}


def _standin(image: Any, tag: str, *, made: bool, started: float) -> Standin:
    """A :class:`Standin` for ``image``."""
    return Standin(tag=tag, image_id=str(image.id), made=made,
                   size=int(image.attrs.get("Size", 0)), seconds=time.monotonic() - started)


def _digest(*parts: str) -> str:
    """A short digest of ``parts``, in order."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _file_digest(path: Path) -> str:
    """A file's sha256, or ``-`` when it does not exist."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "-"


@contextmanager
def _locked(tag: str, timeout: float = 900) -> Iterator[None]:
    """Hold a per-tag file lock, so parallel test sessions make a stand-in once."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    path = CACHE_DIR / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', tag)}.lock"
    with open(path, "w") as fh:

        def acquired() -> bool:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises while another holds it
            return True

        wait_until(acquired, timeout=timeout, interval=0.5, what=f"the lock on {path}")
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    """``python -m testsupport.standins [python|redis|all] [--verify]``: one line per image."""
    parser = argparse.ArgumentParser(prog="python -m testsupport.standins", description=__doc__
                                     .split("\n\n")[0])
    parser.add_argument("kind", nargs="?", default="all", choices=["all", "python", "redis"])
    parser.add_argument("--verify", action="store_true",
                        help="also prove them: pip download flask from python, PONG from redis")
    args = parser.parse_args(argv)

    def log(msg: str) -> None:
        print(f"  {msg}", file=sys.stderr)

    try:
        kinds = ["python", "redis"] if args.kind == "all" else [args.kind]
        for kind in kinds:
            result = ensure(kind, log=log)
            print(result.line(), file=out, flush=True)
            if args.verify:
                check = verify_python_slim if kind == "python" else verify_redis_alpine
                began = time.monotonic()
                print(f"{result.tag}: verified ({check(result.tag)}) in "
                      f"{time.monotonic() - began:.1f} s", file=out, flush=True)
    except ImagegateError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.detail:
            print(exc.detail.strip()[-2000:], file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
