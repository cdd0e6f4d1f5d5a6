"""Make the base images offline from Debian packages: no registry, no `docker pull`, ever.

Each recipe names root packages; their runtime dependency closure is resolved with apt-cache,
fetched with ``apt-get download``, unpacked with ``dpkg-deb -x`` into one root filesystem, trimmed
(docs, locales, tests), given a passwd/group and CA bundle, and ``docker import``-ed. The image is
labelled with a digest of the exact package set, so a second run with the same packages is a no-op.

The CA bundle is never the build host's (which may hold a TLS-intercepting proxy's CA): it is
Debian's ``ca-certificates`` set, concatenated from the .deb as update-ca-certificates would, plus
only the PEM files the project declares in ``extra_ca_certs``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagegate.engine import IMAGE_LABEL, STATE_DIR, client, write_atomic
from imagegate.errors import BaseImageError, CommandFailed, UsageError
from imagegate.proc import run

#: Bump when the way a rootfs is assembled changes, so cached images are rebuilt.
RECIPE_REVISION = "8"
DIGEST_LABEL = "imagegate.base.digest"
KIND_LABEL = "imagegate.base"
#: The version of Debian's ca-certificates whose set the base's CA bundle holds.
CA_LABEL = "imagegate.base.ca-certificates"
DEB_CACHE = STATE_DIR / "debs"
CA_PACKAGE = "ca-certificates"
CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"
#: Where the .deb keeps the Mozilla set, one PEM file per CA.
CA_DIR = "usr/share/ca-certificates/mozilla"
PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]*?)-----END CERTIFICATE-----")

#: Installation machinery, never needed at run time: resolution stops here.
NOT_RUNTIME = {
    "adduser", "cdebconf", "debconf", "debconf-2.0", "dpkg", "init-system-helpers", "install-info",
    "lsb-base", "mailcap", "mime-support", "passwd", "perl", "perl-base", "perl:any",
    "perl-modules-5.36", "readline-common", "sensible-utils", "sysvinit-utils", "tar",
    "usr-is-merged", "usrmerge", "libpam-modules", "libpam-modules-bin", "libpam0g",
    "libsemanage2", "libsemanage-common", "libselinux1", "libaudit1", "libaudit-common",
    "tzdata", "libdebian-installer4", "libnewt0.52", "libslang2", "libtextwrap1",
    "debianutils", "logrotate", "gcc-12-base",
}
#: Trimmed from every rootfs: documentation, translations, and Python parts no service imports.
PRUNE = [
    "usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian",
    "usr/share/bug", "usr/share/bash-completion", "usr/share/zsh", "usr/share/gdb",
    "usr/share/python3", "etc/init.d", "etc/logrotate.d", "etc/default", "usr/lib/systemd",
    "lib/systemd", "usr/lib/x86_64-linux-gnu/gconv",  # iconv modules: nothing here uses iconv
]
PY_PRUNE = [
    "test", "idlelib", "tkinter", "turtledemo", "lib2to3", "ensurepip", "pydoc_data",
    "distutils/tests", "unittest/test", "sqlite3/test", "ctypes/test",
]
#: Libraries the Python stdlib links only for modules a service never imports: Berkeley DB
#: (``_dbm``), ncurses/readline (``_curses``, ``readline``: interactive terminals) and libnsl/libtirpc
#: (``nis``, which pulls in Kerberos). Left out with those modules: the base went from 48.5 to 43.1 MB.
PY_LEAVE_OUT = ("libdb5.3", "libncursesw6", "libtinfo6", "libreadline8", "libnsl2", "libtirpc3")
#: Extension modules removed with them, and CPython's own test modules (lib-dynload).
PY_DROP_MODULES = (
    "_dbm", "_curses", "_curses_panel", "readline", "nis",
    "_testcapi", "_testbuffer", "_testclinic", "_testimportmultiple", "_testinternalcapi",
    "_testmultiphase", "_xxtestfuzz", "_ctypes_test", "xxlimited", "xxlimited_35",
)
APP_UID = 10001
#: The local repository of each base kind (the tag comes from the suite).
REPOS = {"python": "imagegate/python", "redis": "imagegate/redis"}
#: The build base: the python base's packages plus a C toolchain and Python's headers, where the
#: wheelhouse builds sdists with extensions (same Debian Python: same ABI). Never an app's base,
#: made on demand (not part of ``all``).
BUILD_REPO = "imagegate/python-build"
#: gcc's sanitizer and profiling runtimes: Depends of gcc-12, needed only with -fsanitize/-pg.
BUILD_LEAVE_OUT = ("libasan8", "liblsan0", "libtsan2", "libubsan1", "libgprofng0")
#: busybox applets not linked: package managers and downloaders have no place in a runtime image.
NO_APPLETS = {"dpkg", "dpkg-deb", "rpm", "rpm2cpio", "wget", "ftpget", "ftpput", "tftp", "tftpd",
              "httpd", "telnet", "telnetd", "nc", "udhcpc", "udhcpd", "ftpd"}


@dataclass(frozen=True)
class Recipe:
    """How one base image is made: root packages, image config, and a rootfs finishing step."""

    kind: str
    repo: str
    roots: tuple[str, ...]
    changes: tuple[str, ...]
    finish: Callable[[Path, Recipe], None]
    users: tuple[tuple[str, int], ...] = ()
    #: Packages from which only these paths are taken (e.g. getent from libc-bin).
    partial: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: Dependencies not taken (and not followed): what needs them is removed by ``finish``.
    leave_out: tuple[str, ...] = ()
    tag: str = "latest"

    @property
    def ref(self) -> str:
        """The local image reference, e.g. ``imagegate/python:3.11-bookworm``."""
        return f"{self.repo}:{self.tag}"


@dataclass(frozen=True)
class BaseResult:
    """What :func:`ensure_base` did for one recipe."""

    ref: str
    image_id: str
    digest: str
    packages: int
    built: bool
    size: int


def codename() -> str:
    """The host's Debian codename (bookworm): the suite the packages come from."""
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip('"')
    raise BaseImageError("/etc/os-release has no VERSION_CODENAME: not a Debian host")


def debian_python() -> str:
    """The suite's default Python (``3.11`` on bookworm), read from python3-minimal's dependencies."""
    def ask() -> str:
        found = re.search(r"python(3\.\d+)-minimal", _apt_cache(["depends", "python3-minimal"]))
        if not found:
            raise BaseImageError("apt-cache cannot find python3-minimal: run `apt-get update` first")
        return found.group(1)

    return _apt_answer("python3-minimal", ask)


def recipes(which: str = "all") -> list[Recipe]:
    """The recipes this host's Debian suite supports: ``python``, ``redis`` or ``all`` (both),
    or ``python-build`` (the build base for sdists with extensions)."""
    suite = codename()
    out: list[Recipe] = []
    if which in ("python", "all"):
        py = debian_python()
        out.append(Recipe(
            kind="python", repo=REPOS["python"], tag=f"{py}-{suite}",
            roots=(f"python{py}-minimal", f"libpython{py}-stdlib", "busybox", "media-types"),
            partial={"libc-bin": ("usr/bin/getent",)},
            leave_out=PY_LEAVE_OUT,
            users=(("app", APP_UID),),
            changes=(
                "ENV PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                "ENV LANG=C.UTF-8",
                "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
                'CMD ["python3"]',
            ),
            finish=_finish_python,
        ))
    if which in ("redis", "all"):
        out.append(Recipe(
            kind="redis", repo=REPOS["redis"], tag=f"7-{suite}",
            roots=("redis-server",),
            users=(("redis", 999),),
            changes=(
                "ENV PATH=/usr/bin:/bin",
                "USER 999:999",
                "WORKDIR /data",
                "EXPOSE 6379",
                'CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", '
                '"--dir", "/data"]',
            ),
            finish=_finish_redis,
        ))
    if which == "python-build":
        py = debian_python()
        out.append(Recipe(
            kind="python-build", repo=BUILD_REPO, tag=f"{py}-{suite}",
            roots=(f"python{py}-minimal", f"libpython{py}-stdlib", "busybox", "media-types",
                   "gcc", "libc6-dev", f"libpython{py}-dev"),
            leave_out=(*PY_LEAVE_OUT, *BUILD_LEAVE_OUT),
            changes=(
                "ENV PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                "ENV LANG=C.UTF-8",
                'CMD ["python3"]',
            ),
            finish=_finish_python,
        ))
    if not out:
        raise BaseImageError(f"unknown base image kind {which!r}: use python, redis, "
                             "python-build or all")
    return out


def resolve(roots: tuple[str, ...], extra: tuple[str, ...] = (),
            leave_out: tuple[str, ...] = ()) -> dict[str, str]:
    """The runtime dependency closure of ``roots`` as {package: candidate version}.

    Follows Depends and Pre-Depends (first alternative), stops at installation machinery and at
    ``leave_out``. The answer only changes when apt's package lists do, so it is cached against
    their mtime.
    """
    stamp = _lists_stamp()
    key = hashlib.sha256(
        f"{RECIPE_REVISION}|{roots}|{extra}|{leave_out}|{stamp}".encode()).hexdigest()[:16]
    cache = STATE_DIR / "resolve" / f"{key}.json"
    if stamp and cache.is_file():
        return dict(json.loads(cache.read_text()))
    found = _resolve(roots, extra, frozenset(leave_out))
    write_atomic(cache, json.dumps(found))
    return found


def ca_version() -> str:
    """apt's candidate version of ca-certificates (cached: see :func:`_apt_answer`)."""
    return _apt_answer(CA_PACKAGE, lambda: _versions([CA_PACKAGE])[CA_PACKAGE])


def _apt_answer(name: str, ask: Callable[[], str]) -> str:
    """An answer of apt-cache, cached against the package lists' mtime like :func:`resolve`:
    apt-cache takes seconds on a busy machine, and every gate asks."""
    stamp = _lists_stamp()
    cache = STATE_DIR / "resolve" / f"{name}-{stamp}.txt"
    if stamp and cache.is_file():
        return cache.read_text().strip()
    answer = ask()
    write_atomic(cache, answer)
    return answer


def _lists_stamp() -> int:
    """When apt's package lists last changed (0 when there are none)."""
    lists = Path("/var/lib/apt/lists")
    return max((f.stat().st_mtime_ns for f in lists.glob("*Packages*")), default=0)


def _resolve(roots: tuple[str, ...], extra: tuple[str, ...],
             leave_out: frozenset[str] = frozenset()) -> dict[str, str]:
    """:func:`resolve` without the cache: apt-cache depends --recurse, then candidate versions."""
    out = _apt_cache([
        "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
        "--no-breaks", "--no-replaces", "--no-enhances", *roots, *extra,
    ])
    graph: dict[str, list[str]] = {}
    current = ""
    skip_alt = False
    for line in out.splitlines():
        if not line.startswith(" "):
            current = line.strip()
            graph.setdefault(current, [])
            continue
        stripped = line.strip()
        alt_follows = stripped.startswith("|")
        kind, _, dep = stripped.lstrip("|").partition(": ")
        if kind not in ("Depends", "PreDepends"):
            continue
        if not skip_alt:
            graph[current].append(dep.strip())
        skip_alt = alt_follows  # the next line is an alternative of this one: take only the first
    seen: set[str] = set()
    todo = [*roots, *extra]
    while todo:
        pkg = todo.pop()
        if pkg in seen or pkg in NOT_RUNTIME or pkg in leave_out or pkg.startswith("<"):
            continue
        seen.add(pkg)
        todo.extend(graph.get(pkg, []))
    return _versions(sorted(seen))


def package_digest(recipe: Recipe, packages: dict[str, str], trust: str = "") -> str:
    """A digest of everything that decides the image: recipe, revision, exact package versions
    and the CA bundle's inputs (``trust``: see :meth:`Trust.key`)."""
    h = hashlib.sha256()
    h.update(f"{RECIPE_REVISION}\n{recipe.kind}\n{recipe.ref}\n".encode())
    h.update("\n".join(recipe.changes).encode())
    for name, version in sorted(packages.items()):
        h.update(f"{name}={version}\n".encode())
    h.update(trust.encode())
    return h.hexdigest()[:16]


def ensure_base(recipe: Recipe, *, force: bool = False, log: Callable[[str], None] = print,
                extra_ca: Sequence[Path] = ()) -> BaseResult:
    """Make ``recipe``'s image unless one with the same digest already exists.

    ``extra_ca`` (``settings.extra_ca_certs``, resolved to paths) are PEM files whose
    certificates join Debian's set in the CA bundle; the digest covers them and the
    ca-certificates version, so a changed extra or a new Debian set rebuilds the base.
    """
    cli = client()
    extras = load_extra_ca(extra_ca)  # a missing or unparsable file fails before any work
    packages = resolve(recipe.roots, tuple(recipe.partial), recipe.leave_out)
    trust = Trust(ca_version(), extras)
    digest = package_digest(recipe, packages, trust.key())
    existing = local_image(cli, recipe.ref)
    if existing is not None and not force:
        if (existing.labels or {}).get(DIGEST_LABEL) == digest:
            return BaseResult(recipe.ref, existing.id, digest, len(packages), False,
                              int(existing.attrs.get("Size", 0)))
        log(f"{recipe.ref}: packages or CA bundle inputs changed, rebuilding")
    log(f"{recipe.ref}: {len(packages)} Debian packages → rootfs")
    debs = download(packages, log=log)
    bundle = trust.bundle(debian_ca_certs(trust.debian_version, log=log))
    log(f"{recipe.ref}: CA bundle of {bundle.count(b'BEGIN CERTIFICATE')} certificates "
        f"({CA_PACKAGE} {trust.debian_version}, {len(extras)} extra file(s))")
    with tempfile.TemporaryDirectory(prefix=f"imagegate-{recipe.kind}-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        rootfs.mkdir()
        for name, deb in sorted(debs.items()):
            _unpack(deb, rootfs, recipe.partial.get(name))
        _common_finish(rootfs, recipe, bundle)
        recipe.finish(rootfs, recipe)
        _write_dpkg_status(rootfs, {n: d for n, d in debs.items() if n not in recipe.partial})
        image_id = _import(cli, rootfs, recipe, digest, {CA_LABEL: trust.debian_version})
    image = cli.images.get(image_id)
    size = int(image.attrs.get("Size", 0))
    log(f"{recipe.ref}: {image_id[7:19]} {size / 1e6:.1f} MB")
    return BaseResult(recipe.ref, image_id, digest, len(packages), True, size)


def download(packages: dict[str, str], *, log: Callable[[str], None] = print) -> dict[str, Path]:
    """``apt-get download`` each package=version into a cache; return {package: .deb path}."""
    DEB_CACHE.mkdir(parents=True, exist_ok=True)
    wanted = {name: f"{name}_{version.replace(':', '%3a')}_" for name, version in packages.items()}

    def cached() -> dict[str, Path]:
        found: dict[str, Path] = {}
        for deb in DEB_CACHE.glob("*.deb"):
            for name, prefix in wanted.items():
                if deb.name.startswith(prefix):
                    found[name] = deb
        return found

    have = cached()
    missing = [f"{n}={v}" for n, v in packages.items() if n not in have]
    if missing:
        log(f"apt-get download {len(missing)} packages")
        try:
            run(["apt-get", "download", "-q", *missing], cwd=DEB_CACHE, timeout=600)
        except CommandFailed as exc:
            raise BaseImageError(f"apt-get download failed: {exc.message}") from None
        have = cached()
    lost = sorted(set(packages) - set(have))
    if lost:
        raise BaseImageError(f"apt-get download did not produce: {', '.join(lost)}")
    return have


def _apt_cache(args: list[str]) -> str:
    """Run apt-cache; an empty package list becomes a clear error."""
    try:
        return run(["apt-cache", *args], timeout=120).stdout
    except CommandFailed as exc:
        raise BaseImageError(
            f"apt-cache {args[0]} failed ({exc.message}); run `apt-get update` first"
        ) from None


def _versions(names: list[str]) -> dict[str, str]:
    """Candidate versions of ``names`` from one ``apt-cache show`` call."""
    out = _apt_cache(["show", "--no-all-versions", *names])
    versions: dict[str, str] = {}
    name = ""
    for line in out.splitlines():
        if line.startswith("Package: "):
            name = line.split(": ", 1)[1]
        elif line.startswith("Version: ") and name:
            versions[name] = line.split(": ", 1)[1]
    missing = set(names) - set(versions)
    if missing:
        raise BaseImageError(f"no candidate version for {', '.join(sorted(missing))}")
    return versions


def _unpack(deb: Path, rootfs: Path, only: tuple[str, ...] | None) -> None:
    """``dpkg-deb -x`` a package into the rootfs, or just ``only`` of its paths."""
    if only is None:
        run(["dpkg-deb", "-x", str(deb), str(rootfs)], timeout=120)
        return
    with tempfile.TemporaryDirectory() as tmp:
        run(["dpkg-deb", "-x", str(deb), tmp], timeout=120)
        for rel in only:
            (rootfs / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(tmp) / rel, rootfs / rel)


def _common_finish(rootfs: Path, recipe: Recipe, ca_bundle: bytes) -> None:
    """Users, name service, the CA bundle (never the host's), /tmp, and the trimming every
    image gets."""
    for rel in PRUNE:
        shutil.rmtree(rootfs / rel, ignore_errors=True)
    etc = rootfs / "etc"
    etc.mkdir(exist_ok=True)
    passwd = ["root:x:0:0:root:/root:/bin/sh", "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin"]
    group = ["root:x:0:", "nogroup:x:65534:"]
    for name, uid in recipe.users:
        passwd.append(f"{name}:x:{uid}:{uid}:{name}:/nonexistent:/sbin/nologin")
        group.append(f"{name}:x:{uid}:")
    (etc / "passwd").write_text("\n".join(passwd) + "\n")
    (etc / "group").write_text("\n".join(group) + "\n")
    (etc / "nsswitch.conf").write_text("passwd: files\ngroup: files\nhosts: files dns\n")
    bundle = rootfs / CA_BUNDLE
    bundle.parent.mkdir(parents=True, exist_ok=True)
    bundle.write_bytes(ca_bundle)
    bundle.chmod(0o644)
    for rel, mode in (("tmp", 0o1777), ("root", 0o700), ("var/tmp", 0o1777)):
        (rootfs / rel).mkdir(parents=True, exist_ok=True)
        (rootfs / rel).chmod(mode)


def _finish_python(rootfs: Path, recipe: Recipe) -> None:
    """python3/python links, busybox applets, stdlib trimmed and byte-compiled in place."""
    libs = sorted((rootfs / "usr/lib").glob("python3.*"))
    if not libs:
        raise BaseImageError("the python packages unpacked no /usr/lib/python3.X")
    stdlib = libs[-1]
    for rel in PY_PRUNE:
        shutil.rmtree(stdlib / rel, ignore_errors=True)
    for cfg in stdlib.glob("config-*"):
        shutil.rmtree(cfg, ignore_errors=True)  # static libpython and Makefile: build-time only
    for module in PY_DROP_MODULES:  # their libraries are left out (PY_LEAVE_OUT), or test-only
        for so in (stdlib / "lib-dynload").glob(f"{module}.cpython-*.so"):
            so.unlink()
    shutil.rmtree(stdlib / "curses", ignore_errors=True)  # a wrapper of _curses, gone above
    binary = f"python{stdlib.name.removeprefix('python')}"
    for link in ("python3", "python"):
        (rootfs / "usr/bin" / link).unlink(missing_ok=True)
        (rootfs / "usr/bin" / link).symlink_to(binary)
    _busybox_applets(rootfs)
    # Byte-compile the stdlib with the image's own interpreter, so containers start without
    # compiling it in memory on every start (the root filesystem is read-only at run time).
    run(["chroot", str(rootfs), f"/usr/bin/{binary}", "-m", "compileall", "-q", "-j1",
         f"/usr/lib/{stdlib.name}"], timeout=300)


def _finish_redis(rootfs: Path, recipe: Recipe) -> None:
    """A /data directory owned by the redis user; the Debian config is not used."""
    data = rootfs / "data"
    data.mkdir(exist_ok=True)
    os.chown(data, 999, 999)
    data.chmod(0o750)
    shutil.rmtree(rootfs / "etc/redis", ignore_errors=True)


def _busybox_applets(rootfs: Path) -> None:
    """Link every busybox applet that no package already provides (sh, id, stat, ps, netstat…)."""
    busybox = rootfs / "bin/busybox"
    applets = run([str(busybox), "--list-full"], timeout=30).stdout.split()
    for rel in applets:
        target = rootfs / rel
        if (target.exists() or target.is_symlink() or target.name in NO_APPLETS
                or rel.endswith(("/busybox", "/python"))):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to("/bin/busybox")


def _write_dpkg_status(rootfs: Path, debs: dict[str, Path]) -> None:
    """A dpkg status file listing what the image holds, so scanners can see its packages."""
    entries = []
    for _, deb in sorted(debs.items()):
        fields = run(["dpkg-deb", "-f", str(deb), "Package", "Version", "Architecture", "Source"],
                     timeout=30).stdout.strip()
        entries.append(f"{fields}\nStatus: install ok installed\n")
    status = rootfs / "var/lib/dpkg/status"
    status.parent.mkdir(parents=True, exist_ok=True)
    status.write_text("\n".join(entries))


def _import(cli: Any, rootfs: Path, recipe: Recipe, digest: str,
            extra_labels: Mapping[str, str] = {}) -> str:
    """Tar the rootfs (numeric root ownership) and ``docker import`` it with config and labels."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for entry in sorted(rootfs.iterdir()):
            tar.add(entry, arcname=entry.name, filter=_keep_owner)
    labels = {
        IMAGE_LABEL: "true", KIND_LABEL: recipe.kind, DIGEST_LABEL: digest,
        "org.opencontainers.image.title": recipe.ref,
        "org.opencontainers.image.description": f"{recipe.kind} base made from Debian packages",
        **extra_labels,
    }
    changes = [*recipe.changes, *(f'LABEL {k}="{v}"' for k, v in labels.items())]
    resp = cli.api.import_image_from_data(
        buf.getvalue(), repository=recipe.repo, tag=recipe.tag, changes=changes,
    )
    text = resp if isinstance(resp, str) else str(resp)
    found = re.findall(r"sha256:[0-9a-f]{64}", text)
    if not found:
        raise BaseImageError(f"docker import of {recipe.ref} returned no image id: {text[:200]}")
    # podman's Docker API (4.3) drops import's tag (the image lands as REPO:latest): tag it
    cli.api.tag(found[-1], recipe.repo, recipe.tag)
    return found[-1]


def _keep_owner(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Numeric ownership as on disk, no user/group names from the host's databases."""
    info.uname = info.gname = ""
    return info


def local_image(cli: Any, ref: str) -> Any | None:
    """The local image ``ref`` or None; never pulls."""
    import docker.errors

    try:
        return cli.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


# -- the CA bundle: Debian's set plus the declared extras, never the host's ------------------------


@dataclass(frozen=True)
class ExtraCa:
    """One ``extra_ca_certs`` file: the path as given and the certificates (DER) found in it."""

    path: str
    certs: tuple[bytes, ...]


@dataclass(frozen=True)
class Trust:
    """What a base's CA bundle is made of: a version of Debian's ca-certificates, plus extras."""

    debian_version: str
    extras: tuple[ExtraCa, ...] = ()

    def key(self) -> str:
        """The bundle's inputs for :func:`package_digest`: the Debian version and each extra
        certificate's fingerprint (the file's other bytes, comments or keys, do not count)."""
        lines = [f"{CA_PACKAGE}={self.debian_version}"]
        lines += [f"extra {fingerprint(der)}" for extra in self.extras for der in extra.certs]
        return "\n".join(lines) + "\n"

    def bundle(self, debian: Sequence[tuple[str, bytes]]) -> bytes:
        """Debian's files concatenated as update-ca-certificates does (each ends in a newline),
        then each extra certificate re-encoded as PEM: only certificates leave the user's files."""
        out = bytearray()
        for _, text in debian:
            out += text if text.endswith(b"\n") else text + b"\n"
        for extra in self.extras:
            for der in extra.certs:
                out += to_pem(der)
        return bytes(out)


def load_extra_ca(paths: Sequence[Path]) -> tuple[ExtraCa, ...]:
    """Read each ``extra_ca_certs`` file; a missing one, or one holding no certificate that
    parses, is a one-line :class:`UsageError` naming it."""
    out = []
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise UsageError(f"extra_ca_certs: {path}: cannot read it ({exc.strerror})") from None
        try:
            certs = tuple(pem_certs(data))
            for der in certs:
                cert_subject(der)  # parses, or raises
        except ValueError as exc:
            raise UsageError(f"extra_ca_certs: {path}: not a PEM certificate ({exc})") from None
        if not certs:
            raise UsageError(f"extra_ca_certs: {path}: no PEM certificate in it "
                             "(expected -----BEGIN CERTIFICATE----- blocks)")
        out.append(ExtraCa(str(path), certs))
    return tuple(out)


def debian_ca_certs(version: str = "", *, log: Callable[[str], None] = print,
                    ) -> tuple[tuple[str, bytes], ...]:
    """Debian's CA set as ``(file name, PEM bytes)`` in the order update-ca-certificates
    concatenates them (its config lists them sorted, C locale), from the ``ca-certificates``
    .deb of ``version`` (apt's candidate when empty), fetched into the .deb cache if missing."""
    version = version or ca_version()
    return _deb_ca_files(download({CA_PACKAGE: version}, log=log)[CA_PACKAGE])


@functools.lru_cache(maxsize=4)
def _deb_ca_files(deb: Path) -> tuple[tuple[str, bytes], ...]:
    """The ``mozilla/*.crt`` files of a ca-certificates .deb, sorted by name (bytewise)."""
    with tempfile.TemporaryDirectory(prefix="imagegate-ca-") as tmp:
        run(["dpkg-deb", "-x", str(deb), tmp], timeout=120)
        files = sorted((Path(tmp) / CA_DIR).glob("*.crt"), key=lambda p: p.name.encode())
        found = tuple((f"mozilla/{f.name}", f.read_bytes()) for f in files)
    if not found:
        raise BaseImageError(f"{deb.name} has no {CA_DIR}/*.crt: not Debian's ca-certificates")
    return found


def pem_certs(data: bytes) -> list[bytes]:
    """The DER bytes of each ``-----BEGIN CERTIFICATE-----`` block in ``data``, in order;
    ValueError when a block is not base64."""
    return [base64.b64decode(b"".join(body.split()), validate=True)
            for body in PEM_CERT.findall(data)]


def to_pem(der: bytes) -> bytes:
    """One certificate as PEM, 64 base64 characters a line."""
    text = base64.b64encode(der)
    lines = [text[i:i + 64] for i in range(0, len(text), 64)]
    return b"-----BEGIN CERTIFICATE-----\n" + b"\n".join(lines) + b"\n-----END CERTIFICATE-----\n"


def fingerprint(der: bytes) -> str:
    """``sha256:<hex>`` of a certificate's DER bytes (what ``openssl x509 -fingerprint
    -sha256`` prints, without the colons)."""
    return "sha256:" + hashlib.sha256(der).hexdigest()


#: Attribute names of the DN parts CAs use (DER-encoded OIDs).
_DN_NAMES = {
    bytes.fromhex("550403"): "CN", bytes.fromhex("55040a"): "O", bytes.fromhex("55040b"): "OU",
    bytes.fromhex("550406"): "C", bytes.fromhex("550407"): "L", bytes.fromhex("550408"): "ST",
    bytes.fromhex("550405"): "serialNumber", bytes.fromhex("550461"): "organizationIdentifier",
    bytes.fromhex("2a864886f70d010901"): "emailAddress",
}
_DN_CODECS = {0x1E: "utf-16-be", 0x1C: "utf-32-be", 0x14: "latin-1"}  # BMP, Universal, T61


def cert_subject(der: bytes) -> str:
    """A certificate's subject as ``C=US, O=Example, CN=Example Root`` (DER order), read with a
    minimal DER walk (no crypto library here); ValueError when ``der`` is not a certificate."""
    try:
        cert = _der_children(der, *_der_at(der, 0)[1:])
        fields = _der_children(der, *cert[0][1:])  # tbsCertificate
        if fields[0][0] == 0xA0:  # [0] version
            fields = fields[1:]
        tag, start, end = fields[4]  # serial, signature, issuer, validity, subject
        if tag != 0x30:
            raise ValueError("subject is not a SEQUENCE")
        parts = []
        for _, rdn_start, rdn_end in _der_children(der, start, end):
            for _, atv_start, atv_end in _der_children(der, rdn_start, rdn_end):
                (_, o_start, o_end), (v_tag, v_start, v_end) = _der_children(
                    der, atv_start, atv_end)[:2]
                oid = der[o_start:o_end]
                name = _DN_NAMES.get(oid, "OID." + oid.hex())
                value = der[v_start:v_end].decode(_DN_CODECS.get(v_tag, "utf-8"),
                                                  errors="replace")
                parts.append(f"{name}={value}")
    except (IndexError, ValueError) as exc:
        raise ValueError(f"not an X.509 certificate: {exc}") from None
    return ", ".join(parts)


def _der_at(data: bytes, pos: int) -> tuple[int, int, int]:
    """``(tag, value start, value end)`` of the DER element at ``pos``."""
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if not 0 < count <= 4:
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise ValueError("truncated DER")
    return tag, pos, pos + length


def _der_children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """The DER elements inside ``data[start:end]``."""
    out = []
    while start < end:
        element = _der_at(data, start)
        out.append(element)
        start = element[2]
    return out
