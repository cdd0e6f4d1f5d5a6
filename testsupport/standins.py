"""Local stand-ins for stock images nothing can pull here.

The sample projects under ``tests_stack/projects/`` are written as people write them, against the
official images. These machines reach no registry, so the tests make images under the same names
that behave the same way for such projects:

- ``python:3.11-slim``: a debootstrap ``minbase`` of the host's Debian suite with python3, pip,
  venv and adduser; ``python``/``pip`` on PATH and no PEP 668 marker, so ``pip install`` works as
  root as in the official image. The finished root filesystem is cached as a tarball keyed by the
  recipe, so making the image again after ``docker rmi`` takes seconds, not a debootstrap.
- ``redis:7-alpine``: the local ``imagegate/redis`` base (made from Debian packages by
  ``imagegate base redis``) plus a busybox shell and the official entrypoint's argument handling.
- ``postgres:16``: Debian's ``postgresql-15`` apt-installed on the ``python:3.11-slim`` stand-in,
  with an entrypoint honouring the official image's contract (``POSTGRES_PASSWORD``/``_USER``/
  ``_DB`` and their ``_FILE`` forms, ``PGDATA``, ``/docker-entrypoint-initdb.d``).
- ``nginx:1.25``: Debian's ``nginx-light`` on the same base, configured as the official image
  is: servers from ``/etc/nginx/conf.d/*.conf``, logs on stdout/stderr, ``daemon off``.

The last two are Dockerfile builds whose ``apt-get`` reaches the Debian mirror (through the
proxy, with the CA the base carries); each takes seconds, so nothing beyond the image is cached.

Stand-ins carry ``imagegate.standin=<tag>`` and ``imagegate.managed=false``, so ``imagegate prune
--images`` keeps them; an image under the same name that is not a stand-in (a real one loaded with
``docker load``) is always left alone. Command line: ``python -m testsupport.standins
[python|redis|postgres|nginx|all] [--verify]``.
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

from imagegate.build import base
from imagegate.build.base import local_image
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
from imagegate.proc import StopWaiting, run, wait_until

Log = Callable[[str], None]

PYTHON_SLIM = "python:3.11-slim"
REDIS_ALPINE = "redis:7-alpine"
POSTGRES = "postgres:16"
NGINX = "nginx:1.25"
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


def _classic_build(cli: Any, ctx: Path, tag: str, labels: dict[str, str], *,
                   network_mode: str = "none", timeout: int = 300) -> str:
    """Build ``ctx`` with the classic builder, never pulling; return the image id.

    No network unless ``network_mode`` says otherwise (``default`` for a build that apt-gets).
    """
    image_id = ""
    log: list[str] = []
    for chunk in cli.api.build(path=str(ctx), tag=tag, labels=labels, pull=False, rm=True,
                               forcerm=True, network_mode=network_mode, decode=True,
                               timeout=timeout):
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


# --------------------------------------------------------------------------- postgres:16, nginx:1.25

#: Debian's PostgreSQL major version (bookworm ships 15; the official tag says 16).
PG_MAJOR = "15"

POSTGRES_DOCKERFILE = """\
FROM {base}
# Debian's PostgreSQL stands in for the official build: the same environment contract, port,
# volume and client tools. The server binaries go first on PATH (initdb, pg_ctl, pg_isready) as
# in the official image; /usr/bin/pg_isready would be Debian's perl wrapper.
ENV PG_MAJOR={major}
ENV PATH=/usr/lib/postgresql/{major}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# postgresql-common first, told not to create a "main" cluster: the entrypoint makes PGDATA. The
# config sample listens on every address, so every cluster initdb makes here does.
RUN set -eux; \\
    export DEBIAN_FRONTEND=noninteractive; \\
    apt-get update; \\
    apt-get install -y --no-install-recommends postgresql-common; \\
    sed -ri 's/^#?(create_main_cluster)[[:space:]]*=.*$/\\1 = false/' \\
        /etc/postgresql-common/createcluster.conf; \\
    apt-get install -y --no-install-recommends postgresql-{major}; \\
    apt-get clean; \\
    rm -rf /var/lib/apt/lists/*; \\
    sed -ri "s/^#?(listen_addresses)[[:space:]]*=[[:space:]]*'[^']*'/\\1 = '*'/" \\
        /usr/share/postgresql/{major}/postgresql.conf.sample; \\
    grep -q "^listen_addresses = '\\*'" /usr/share/postgresql/{major}/postgresql.conf.sample; \\
    install -d -o postgres -g postgres -m 3777 /var/run/postgresql
ENV PGDATA=/var/lib/postgresql/data
RUN set -eux; install -d -o postgres -g postgres -m 1777 "$PGDATA"
VOLUME /var/lib/postgresql/data
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENTRYPOINT ["docker-entrypoint.sh"]
# postgres shuts down fast (and cleanly) on SIGINT; SIGTERM waits for every client to leave.
STOPSIGNAL SIGINT
EXPOSE 5432
CMD ["postgres"]
"""

#: The official image's entrypoint contract in POSIX sh: as root, own PGDATA and drop to
#: postgres; on an empty PGDATA, initdb with the superuser and password from the environment,
#: password logins over TCP (scram-sha-256), the database created and init scripts run on a
#: socket-only server; then postgres itself. Anything but postgres (psql, sh) runs as asked.
POSTGRES_ENTRYPOINT = r"""#!/bin/sh
set -eu

# VAR, or VAR_FILE naming a file that holds it (Docker secrets); default $2.
file_env() {
	eval "value=\${$1:-}"
	eval "file=\${$1_FILE:-}"
	if [ -n "$value" ] && [ -n "$file" ]; then
		echo >&2 "error: both $1 and $1_FILE are set (but are exclusive)"
		exit 1
	fi
	if [ -n "$file" ]; then
		value="$(cat "$file")"
	elif [ -z "$value" ]; then
		value="${2:-}"
	fi
	export "$1=$value"
	unset "$1_FILE"
}

# options alone (`command: -c max_connections=200`) are options of postgres
case "${1:-}" in -*) set -- postgres "$@" ;; esac

if [ "${1:-}" != postgres ]; then
	exec "$@"
fi

export PGDATA="${PGDATA:-/var/lib/postgresql/data}"
if [ "$(id -u)" = 0 ]; then
	mkdir -p "$PGDATA"
	find "$PGDATA" \! -user postgres -exec chown postgres:postgres {} +
	chmod 700 "$PGDATA"
	install -d -o postgres -g postgres -m 3777 /var/run/postgresql
	exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
mkdir -p "$PGDATA"
chmod 700 "$PGDATA" 2>/dev/null || :

if [ -s "$PGDATA/PG_VERSION" ]; then
	echo "PostgreSQL Database directory appears to contain a database; Skipping initialization"
	exec "$@"
fi

file_env POSTGRES_PASSWORD
file_env POSTGRES_USER postgres
file_env POSTGRES_DB "$POSTGRES_USER"
file_env POSTGRES_INITDB_ARGS
auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"

if [ -z "$POSTGRES_PASSWORD" ] && [ "$auth" != trust ]; then
	cat >&2 <<'EOM'
Error: Database is uninitialized and superuser password is not specified.
       Set POSTGRES_PASSWORD to a non-empty value for the superuser, for
       example "-e POSTGRES_PASSWORD=password" on "docker run".

       POSTGRES_HOST_AUTH_METHOD=trust would allow every connection
       without a password instead. This is *not* recommended.

       What "trust" means: https://www.postgresql.org/docs/current/auth-trust.html
EOM
	exit 1
fi

# The password reaches initdb in a file only the postgres user can read, removed at once.
pwfile=""
if [ -n "$POSTGRES_PASSWORD" ]; then
	pwfile="$(mktemp)"
	printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
fi
# POSTGRES_INITDB_ARGS is split into words, as the official image does.
# shellcheck disable=SC2086
initdb -D "$PGDATA" -U "$POSTGRES_USER" ${pwfile:+--pwfile="$pwfile"} \
	--auth-local=trust --auth-host=scram-sha-256 $POSTGRES_INITDB_ARGS
[ -z "$pwfile" ] || rm -f "$pwfile"
printf '\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"

# Unix socket only while setting up: nobody can connect over TCP to a half-made database.
pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p ${PGPORT:-5432}" -w start
if [ "$POSTGRES_DB" != postgres ]; then
	createdb -U "$POSTGRES_USER" -- "$POSTGRES_DB"
fi
sql() { psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" -f -; }
for f in /docker-entrypoint-initdb.d/*; do
	[ -e "$f" ] || continue
	case "$f" in
	*.sh) echo "$0: running $f"; . "$f" ;;
	*.sql) echo "$0: running $f"; sql <"$f" ;;
	*.sql.gz) echo "$0: running $f"; gunzip -c "$f" | sql ;;
	*) echo "$0: ignoring $f" ;;
	esac
done
pg_ctl -D "$PGDATA" -m fast -w stop
echo
echo "PostgreSQL init process complete; ready for start up."
echo
exec "$@"
"""

NGINX_DOCKERFILE = """\
FROM {base}
# Debian's nginx, laid out as the official image is: no sites-*, no distribution modules, a
# system user nginx for the workers, the default page in /usr/share/nginx/html, and the log
# files pointing at the container's stdout and stderr (for a config that names them).
RUN set -eux; \\
    export DEBIAN_FRONTEND=noninteractive; \\
    apt-get update; \\
    apt-get install -y --no-install-recommends nginx-light; \\
    apt-get clean; \\
    rm -rf /var/lib/apt/lists/*; \\
    rm -rf /etc/nginx/sites-available /etc/nginx/sites-enabled /etc/nginx/modules-enabled \\
        /var/www/html; \\
    adduser --system --group --no-create-home --home /nonexistent nginx; \\
    mkdir -p /etc/nginx/conf.d /usr/share/nginx/html; \\
    ln -sf /dev/stdout /var/log/nginx/access.log; \\
    ln -sf /dev/stderr /var/log/nginx/error.log
COPY nginx.conf /etc/nginx/nginx.conf
COPY default.conf /etc/nginx/conf.d/default.conf
COPY index.html /usr/share/nginx/html/index.html
EXPOSE 80
# SIGQUIT lets the workers finish the requests they hold.
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
"""

#: The main config: every server comes from conf.d, so a project that removes default.conf and
#: copies its own there replaces the site whole.
NGINX_CONF = r"""user nginx;
worker_processes auto;
pid /run/nginx.pid;
error_log /dev/stderr notice;

events {
    worker_connections 1024;
}

http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;

    log_format main '$remote_addr - $remote_user [$time_local] "$request" '
                    '$status $body_bytes_sent "$http_referer" '
                    '"$http_user_agent" "$http_x_forwarded_for"';
    access_log /dev/stdout main;

    sendfile on;
    keepalive_timeout 65;

    include /etc/nginx/conf.d/*.conf;
}
"""

NGINX_DEFAULT_CONF = """server {
    listen 80;
    server_name localhost;

    location / {
        root /usr/share/nginx/html;
        index index.html;
    }
}
"""

NGINX_INDEX = """<!DOCTYPE html>
<html>
<head><title>Welcome to nginx!</title></head>
<body>
<h1>Welcome to nginx!</h1>
<p>The imagegate stand-in for nginx:1.25 is serving this page from /usr/share/nginx/html.</p>
</body>
</html>
"""


def ensure_postgres(tag: str = POSTGRES, *, log: Log = print) -> str:
    """Make sure ``tag`` exists locally, building a Debian stand-in for ``postgres:16`` if not."""
    return postgres(tag, log=log).tag


def postgres(tag: str = POSTGRES, *, log: Log = print) -> Standin:
    """``tag`` as an image that behaves like ``postgres:16`` when compose just names it.

    Debian's ``postgresql-15`` (:data:`PG_MAJOR`) apt-installed on the ``python:3.11-slim``
    stand-in (made first when missing), with the entrypoint of :data:`POSTGRES_ENTRYPOINT`.
    About 15 s.
    """
    dockerfile = POSTGRES_DOCKERFILE.format(base=PYTHON_SLIM, major=PG_MAJOR)
    return _apt_standin(tag, dockerfile, {"docker-entrypoint.sh": POSTGRES_ENTRYPOINT}, log)


def ensure_nginx(tag: str = NGINX, *, log: Log = print) -> str:
    """Make sure ``tag`` exists locally, building a Debian stand-in for ``nginx:1.25`` if not."""
    return nginx(tag, log=log).tag


def nginx(tag: str = NGINX, *, log: Log = print) -> Standin:
    """``tag`` as an image that behaves like ``nginx:1.25``, also as the base of a project's own.

    Debian's ``nginx-light`` on the ``python:3.11-slim`` stand-in (so ``/bin/sh`` and ``rm``
    are there for ``RUN rm /etc/nginx/conf.d/default.conf``). A few seconds.
    """
    dockerfile = NGINX_DOCKERFILE.format(base=PYTHON_SLIM)
    files = {"nginx.conf": NGINX_CONF, "default.conf": NGINX_DEFAULT_CONF,
             "index.html": NGINX_INDEX}
    return _apt_standin(tag, dockerfile, files, log)


def _apt_standin(tag: str, dockerfile: str, files: dict[str, str], log: Log) -> Standin:
    """Build ``dockerfile`` with ``files`` as ``tag`` unless a stand-in of this recipe exists.

    The key covers the recipe and the base image's id, so a remade base remakes this too. The
    build has the network (apt reaches the mirror through the proxy) and never pulls.
    """
    started = time.monotonic()
    cli = client()
    with _locked(tag):
        python_slim(PYTHON_SLIM, log=log)
        base_id = str(cli.images.get(PYTHON_SLIM).id)
        key = _digest(REVISION, base_id, dockerfile, *(f"{n}\n{t}" for n, t in sorted(files.items())))
        existing = _usable(cli, tag, key, log)
        if existing is not None:
            return _standin(existing, tag, made=False, started=started)
        log(f"{tag}: building from Debian packages on {PYTHON_SLIM}")
        outdated = local_image(cli, tag)  # a stand-in of an older recipe, if any
        with tempfile.TemporaryDirectory(prefix="imagegate-standin-") as tmp:
            ctx = Path(tmp)
            (ctx / "Dockerfile").write_text(dockerfile)
            for name, text in files.items():
                (ctx / name).write_text(text)
                if text.startswith("#!"):
                    (ctx / name).chmod(0o755)
            image_id = _classic_build(cli, ctx, tag, _labels(tag, key), network_mode="default",
                                      timeout=900)
        if outdated is not None and outdated.id != image_id:
            _remove_untagged(cli, str(outdated.id))
        return _standin(cli.images.get(image_id), tag, made=True, started=started)


def _remove_untagged(cli: Any, image_id: str) -> None:
    """Remove an outdated stand-in the new build untagged, unless something still uses it.

    Left alone when it still has a tag, or when a container or a child image holds it.
    """
    import docker.errors

    try:
        if not cli.images.get(image_id).tags:
            cli.images.remove(image_id, noprune=False)
    except docker.errors.APIError:
        pass  # in use (a container, an image built FROM it) or already gone


def verify_postgres(tag: str = POSTGRES, *, timeout: float = 120) -> str:
    """Start ``tag`` as compose would and log in with the password from a second container.

    On a user network of its own, the server is started with POSTGRES_USER/PASSWORD/DB set;
    once ``pg_isready`` answers over TCP, a client container runs ``psql -h db`` with the
    password (it must get in, to the named database) and with a wrong one (it must be refused:
    host logins need the password). Returns what the login saw.
    """
    cli = client()
    session = new_session_id()
    labels = session_labels(session)
    # Client containers are not --rm: removed with the rest by cleanup_session, containers
    # before the network (an auto-removal still under way would keep the network busy).
    label_args = [a for k, v in labels.items() for a in ("--label", f"{k}={v}")]
    secret = hashlib.sha256(session.encode()).hexdigest()[:20]
    try:
        net = cli.networks.create(f"{session}-pg", labels=labels)
        ctr = cli.containers.create(tag, labels=labels, environment={
            "POSTGRES_USER": "gate", "POSTGRES_PASSWORD": secret, "POSTGRES_DB": "gatedb"})
        net.connect(ctr, aliases=["db"])
        ctr.start()

        def ready() -> bool:
            ctr.reload()
            if ctr.status != "running":
                raise StopWaiting(f"{tag} exited: {ctr.logs(tail=20).decode(errors='replace')}")
            return int(ctr.exec_run(["pg_isready", "-h", "127.0.0.1", "-U", "gate"]).exit_code) == 0

        wait_until(ready, timeout=timeout, interval=0.3, what=f"{tag} accepting TCP connections")

        def psql(password: str) -> Any:
            return run(["docker", "run", "--pull", "never", "--network", net.name, *label_args,
                        "-e", f"PGPASSWORD={password}", tag, "psql", "-h", "db", "-U", "gate",
                        "-d", "gatedb", "-tAc", "select current_user || '@' || current_database()"],
                       timeout=60, check=False)

        good = psql(secret)
        if good.returncode != 0 or good.stdout.strip() != "gate@gatedb":
            raise ImagegateError(f"{tag}: password login over TCP failed",
                                 detail=good.stdout + good.stderr)
        bad = psql(secret + "x")
        if bad.returncode == 0 or "password authentication failed" not in bad.stderr:
            raise ImagegateError(f"{tag}: a wrong password was not refused",
                                 detail=bad.stdout + bad.stderr)
        return f"psql -h db: {good.stdout.strip()}, wrong password refused"
    finally:
        cleanup_session(session, cli)


def verify_nginx(tag: str = NGINX, *, timeout: float = 60) -> str:
    """Start ``tag`` as compose would and GET / on port 80 from a second container.

    Returns the status and the page's title; the access log line must be on the container's
    stdout.
    """
    cli = client()
    session = new_session_id()
    labels = session_labels(session)
    label_args = [a for k, v in labels.items() for a in ("--label", f"{k}={v}")]
    try:
        net = cli.networks.create(f"{session}-nginx", labels=labels)
        ctr = cli.containers.create(tag, labels=labels)
        net.connect(ctr, aliases=["proxy"])
        ctr.start()
        probe = ("import re, urllib.request as u\n"
                 "r = u.urlopen('http://proxy/', timeout=5)\n"
                 "print(r.status, re.search(r'<title>(.*?)</title>', r.read().decode()).group(1))")

        def get() -> str:
            out = run(["docker", "run", "--pull", "never", "--network", net.name, *label_args,
                       PYTHON_SLIM, "python", "-c", probe], timeout=60)
            return out.stdout.strip()

        answer = wait_until(get, timeout=timeout, interval=0.5, what=f"{tag} answering on 80")
        logged = ctr.logs(stdout=True, stderr=False).decode(errors="replace")
        if '"GET / HTTP/1.1" 200' not in logged:
            raise ImagegateError(f"{tag}: no access log line on stdout", detail=logged[-2000:])
        return f"GET / -> {answer}, logged on stdout"
    finally:
        cleanup_session(session, cli)


# --------------------------------------------------------------------------- shared

#: Each stand-in by its short name: how it is made and how it is proved.
KINDS: dict[str, tuple[Callable[..., Standin], Callable[[str], str]]] = {
    "python": (python_slim, verify_python_slim),
    "redis": (redis_alpine, verify_redis_alpine),
    "postgres": (postgres, verify_postgres),
    "nginx": (nginx, verify_nginx),
}


def ensure(kind: str, *, log: Log = print) -> Standin:
    """The stand-in named by ``kind`` (python, redis, postgres or nginx) under its default tag."""
    if kind not in KINDS:
        raise ImagegateError(f"unknown stand-in {kind!r}: use {', '.join(KINDS)} or all")
    return KINDS[kind][0](log=log)


def ensure_all(log: Log = print) -> list[Standin]:
    """Every stand-in (python:3.11-slim, redis:7-alpine, postgres:16, nginx:1.25), made where
    missing."""
    return [ensure(kind, log=log) for kind in KINDS]


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
    """``python -m testsupport.standins [python|redis|postgres|nginx|all] [--verify]``: one line
    per image."""
    parser = argparse.ArgumentParser(prog="python -m testsupport.standins", description=__doc__
                                     .split("\n\n")[0])
    parser.add_argument("kind", nargs="?", default="all", choices=["all", *KINDS])
    parser.add_argument("--verify", action="store_true",
                        help="also prove them: pip download flask from python, PONG from redis, "
                             "a password login over TCP to postgres, GET / from nginx")
    args = parser.parse_args(argv)

    def log(msg: str) -> None:
        print(f"  {msg}", file=sys.stderr)

    try:
        kinds = list(KINDS) if args.kind == "all" else [args.kind]
        for kind in kinds:
            result = ensure(kind, log=log)
            print(result.line(), file=out, flush=True)
            if args.verify:
                check = KINDS[kind][1]
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
