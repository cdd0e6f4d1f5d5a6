"""Locked requirements → a hash-checked wheelhouse for the *base image's* Python.

Builds have no network, so every wheel is downloaded on the host first. pip evaluates environment
markers for the interpreter that runs it, not for the image, so markers are stripped for the
download (every pin is fetched whatever its marker) and evaluated by the install inside the build.
Version, ABI and platform tags are read from the base image itself.

A pin published without a wheel for the target (an sdist only, e.g. Flask-Mail 0.9.1) is built
here, from the sdist whose sha256 the lock pins (pip checks it on download):

- pure Python (no C/C++/Cython sources in the sdist): ``pip wheel --no-deps`` on the host gives a
  ``py3-none-any`` wheel;
- with extensions: ``pip wheel --no-index --no-deps`` in a container of the build base
  (``imagegate/python-build``: the runtime base's Debian Python plus gcc and the headers, so the
  same ABI), with no network: the sdist and its build requirements' wheels are copied in.

The built wheel's own sha256 is recorded beside it, in ``built.lock`` in the wheelhouse: the image
installs that file first (``--no-deps --require-hashes``), then the app's lock, where pip finds those
pins already installed. Built wheels are cached per target under the sdist's sha256.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import io
import json
import re
import shutil
import sys
import tarfile
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagegate.engine import STATE_DIR, write_atomic
from imagegate.errors import CommandFailed, WheelhouseError
from imagegate.proc import run

PROBE = (
    "import platform, sys, sysconfig; "
    "print(sys.implementation.name, '%d.%d.%d' % sys.version_info[:3], "
    "sysconfig.get_platform(), *platform.libc_ver())"
)


@dataclass(frozen=True)
class Target:
    """The Python an image runs: what wheels it can install."""

    implementation: str  # "cp"
    version: str  # "3.11.2"
    arch: str  # "x86_64"
    libc: str  # "glibc"
    libc_version: str  # "2.36"

    @property
    def abi(self) -> str:
        """The CPython ABI tag, e.g. ``cp311``."""
        major, minor, _ = self.version.split(".")
        return f"{self.implementation}{major}{minor}"

    @property
    def key(self) -> str:
        """A cache directory name: one wheelhouse per ABI and glibc."""
        return f"{self.abi}-{self.libc}{self.libc_version}-{self.arch}"

    def platforms(self) -> list[str]:
        """Every manylinux tag this glibc accepts, newest first."""
        glibc_minor = int(self.libc_version.split(".")[1])
        tags = [f"manylinux_2_{m}_{self.arch}" for m in range(glibc_minor, 16, -1)]
        return [*tags, f"manylinux2014_{self.arch}", f"manylinux2010_{self.arch}",
                f"manylinux1_{self.arch}"]


@dataclass(frozen=True)
class Pin:
    """One line of a hashed lock file."""

    name: str
    version: str
    marker: str
    hashes: frozenset[str]

    @property
    def normalized(self) -> str:
        """The name as wheel files spell it (PEP 503 then underscores)."""
        return re.sub(r"[-_.]+", "_", self.name).lower()


def detect_target(image: str, cli: Any, labels: dict[str, str]) -> Target:
    """Run the image's own python (no network, never pulled) and read its tags; remembered per
    image id (an image's content never changes under its id) in the state dir, so the gate's
    every build does not start a container for it (~0.3 s)."""
    try:
        image_id = str(cli.images.get(image).id)
    except Exception:
        image_id = ""
    known = STATE_DIR / "targets" / f"{image_id.replace(':', '-')}.json"
    if image_id:
        with contextlib.suppress(OSError, ValueError, TypeError):
            return Target(**json.loads(known.read_text()))
    target = _run_for_target(image, cli, labels)
    if image_id:
        with contextlib.suppress(OSError):
            write_atomic(known, json.dumps(dataclasses.asdict(target)))
    return target


def _run_for_target(image: str, cli: Any, labels: dict[str, str]) -> Target:
    """:func:`detect_target`, not remembered."""
    try:
        out = cli.containers.run(
            image, ["python3", "-c", PROBE], remove=True, network_mode="none", labels=labels,
            entrypoint=[], user="0",
        ).decode().split()
    except Exception as exc:
        raise WheelhouseError(
            f"cannot run python3 in base image {image} to read its tags: {str(exc)[:200]}"
        ) from None
    impl, version, plat, libc, libc_version = [*out, "", "", "", "", ""][:5]
    if impl != "cpython" or libc != "glibc":
        raise WheelhouseError(
            f"base image {image} runs {impl} on {libc or 'an unknown libc'}: "
            "only CPython on glibc (manylinux wheels) is supported"
        )
    return Target("cp", version, plat.split("-", 1)[1], libc, libc_version)


def parse_lock(path: Path) -> list[Pin]:
    """Pins of a ``--generate-hashes`` lock; a pin without a hash is an error (no unchecked wheel)."""
    if not path.is_file():
        raise WheelhouseError(f"{path}: lock file not found")
    text = re.sub(r"\\\n", " ", path.read_text())
    pins = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        hashes = frozenset(re.findall(r"--hash=sha256:([0-9a-f]{64})", line))
        spec = line.split("--hash", 1)[0].strip()
        req, _, marker = spec.partition(";")
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s]+)", req.strip())
        if not m:
            raise WheelhouseError(f"{path}:{lineno}: not an exact `name==version` pin: {req!r}")
        if not hashes:
            raise WheelhouseError(f"{path}:{lineno}: {m.group(1)} has no --hash (lock with hashes)")
        pins.append(Pin(m.group(1), m.group(2), marker.strip(), hashes))
    if not pins:
        raise WheelhouseError(f"{path}: no pinned requirements")
    return pins


#: Written into the wheelhouse: the wheels built from sdists, each pinned to its own sha256.
BUILT_LOCK = "built.lock"
#: Files whose presence in an sdist means compiled extensions (built on the target, not the host).
EXTENSION_SOURCES = re.compile(r"\.(c|cc|cpp|cxx|pyx|pxd|f|f90|rs)$|(^|/)Cargo\.toml$")
#: What pip builds an sdist with when it has no ``[build-system]`` (plus wheel, for old setuptools).
DEFAULT_BUILD_REQUIRES = ("setuptools>=40.8.0", "wheel")
#: ``compile(sdist, deps_dir) -> wheel``: builds an sdist with extensions for the target.
Compile = Callable[[Path, Path], Path]


@dataclass(frozen=True)
class Built:
    """A wheel the wheelhouse built from a locked sdist."""

    pin: Pin
    sdist: str  # the sdist's file name
    sdist_sha256: str  # one of the lock's hashes: pip checked it on download
    wheel: Path
    sha256: str  # the built wheel's own hash (the image's install checks it)
    how: str  # "pure Python, built on the host" / "C extension, built in … with no network"

    @property
    def line(self) -> str:
        """The gate's line about it."""
        return (f"wheelhouse: built {self.pin.name}=={self.pin.version} from source ({self.how}): "
                f"{self.sdist} sha256:{self.sdist_sha256[:12]}… (the lock's) → {self.wheel.name} "
                f"sha256:{self.sha256[:12]}…")


def ensure_wheelhouse(
    locks: Iterable[Path], target: Target, dest: Path, *, log: Callable[[str], None] = print,
    compile: Compile | None = None,
) -> list[Path]:
    """Fill ``dest`` with exactly the wheels the locks pin for ``target``; return their paths.

    Wheels are cached per target; only pins with no matching (hash-verified) wheel are downloaded,
    a wheel where the target has one, else the sdist, which is built (see the module docstring;
    ``compile`` builds the ones with extensions, None: they are an error). ``dest`` also gets
    :data:`BUILT_LOCK` (empty of pins when nothing was built).
    Runs side by side (two gates, or test workers, on one project) take turns on a lock and leave
    a wheelhouse that is already right untouched: a build reading it is never disturbed.
    """
    pins = [pin for lock in locks for pin in parse_lock(lock)]
    cache = STATE_DIR / "wheels" / target.key
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(dest):
        found: dict[Pin, Path | Built | None] = {
            pin: _cached_wheel(cache, pin) or _built_wheel(cache, pin) for pin in pins}
        missing = [pin for pin, wheel in found.items() if wheel is None]
        if missing:
            log(f"wheelhouse: downloading {len(missing)} wheels for {target.key}")
            _download(missing, target, cache)
            for pin in missing:
                found[pin] = _cached_wheel(cache, pin) or _build(pin, cache, target, log=log,
                                                                 compile=compile)
        lost = [f"{p.name}=={p.version}" for p, w in found.items() if w is None]
        if lost:
            raise WheelhouseError(
                f"no wheel or sdist matching the locked hashes for {target.key}: {', '.join(lost)}"
            )
        built = [w for w in found.values() if isinstance(w, Built)]
        for item in built:
            log(item.line)
        wheels = {w.wheel.name if isinstance(w, Built) else w.name:
                  w.wheel if isinstance(w, Built) else w
                  for w in found.values() if w is not None}
        _sync(wheels, dest, {BUILT_LOCK: built_lock(built)})
    return [dest / name for name in wheels]


def built_lock(built: Iterable[Built]) -> str:
    """The text of :data:`BUILT_LOCK`: each built wheel pinned to its own hash, the sdist it came
    from (and the lock's hash it matched) in a comment above it."""
    lines = ["# Wheels imagegate's wheelhouse built from sdists (no wheel for this target). The",
             "# image installs them first (--no-deps --require-hashes), then the app's lock.", ""]
    for item in sorted(built, key=lambda b: b.pin.normalized):
        marker = f" ; {item.pin.marker}" if item.pin.marker else ""
        lines += [f"# {item.sdist} sha256:{item.sdist_sha256} (the lock's), {item.how}",
                  f"{item.pin.name}=={item.pin.version}{marker} --hash=sha256:{item.sha256}"]
    return "\n".join(lines) + "\n"


def sdist_name(filename: str) -> tuple[str, str] | None:
    """(normalized name, version) of an sdist file name, or None when it is not one."""
    found = re.fullmatch(r"(.+)-([0-9][^-]*)\.(?:tar\.gz|zip|tar\.bz2|tgz)", filename)
    if not found:
        return None
    return re.sub(r"[-_.]+", "_", found.group(1)).lower(), found.group(2)


def has_extensions(sdist: Path) -> bool:
    """The sdist holds C/C++/Cython/Fortran/Rust sources: its wheel is built for one platform."""
    return any(EXTENSION_SOURCES.search(name) for name in _members(sdist))


def build_requires(sdist: Path) -> list[str]:
    """The sdist's ``[build-system].requires`` (pip's default when it declares none)."""
    for name in _members(sdist):
        if name.count("/") == 1 and name.endswith("/pyproject.toml"):
            try:
                data = tomllib.loads(_read_member(sdist, name).decode())
            except (tomllib.TOMLDecodeError, UnicodeDecodeError):
                break
            requires = data.get("build-system", {}).get("requires")
            if requires:
                return [str(r) for r in requires]
            break
    return list(DEFAULT_BUILD_REQUIRES)


def _members(sdist: Path) -> list[str]:
    """The file names inside an sdist (tar or zip)."""
    if sdist.name.endswith(".zip"):
        import zipfile

        with zipfile.ZipFile(sdist) as zf:
            return zf.namelist()
    with tarfile.open(sdist) as tf:
        return tf.getnames()


def _read_member(sdist: Path, name: str) -> bytes:
    """One file of an sdist."""
    if sdist.name.endswith(".zip"):
        import zipfile

        with zipfile.ZipFile(sdist) as zf:
            return zf.read(name)
    with tarfile.open(sdist) as tf:
        member = tf.extractfile(name)
        return member.read() if member else b""


def _sha256(path: Path) -> str:
    """A file's sha256, hex."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cached_sdist(cache: Path, pin: Pin) -> tuple[Path, str] | None:
    """The sdist of ``pin`` in the cache whose sha256 the lock allows, and that hash."""
    for path in sorted(cache.iterdir()):
        if path.is_file() and sdist_name(path.name) == (pin.normalized, pin.version):
            digest = _sha256(path)
            if digest in pin.hashes:
                return path, digest
    return None


def _built_wheel(cache: Path, pin: Pin) -> Built | None:
    """A wheel built earlier from an sdist the lock allows (cached under the sdist's hash)."""
    for digest in sorted(pin.hashes):
        meta = cache / "built" / digest / "built.json"
        if not meta.is_file():
            continue
        info = json.loads(meta.read_text())
        wheel = meta.parent / info["wheel"]
        if wheel.is_file() and _sha256(wheel) == info["sha256"]:
            return Built(pin, info["sdist"], digest, wheel, info["sha256"], info["how"])
    return None


def _build(pin: Pin, cache: Path, target: Target, *, log: Callable[[str], None],
           compile: Compile | None) -> Built | None:
    """Build the locked sdist of ``pin`` (None when there is none in the cache)."""
    found = _cached_sdist(cache, pin)
    if found is None:
        return None
    sdist, digest = found
    out = cache / "built" / digest
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    if has_extensions(sdist):
        if compile is None:
            raise WheelhouseError(
                f"{pin.name}=={pin.version} has no wheel for {target.key} and its sdist has "
                "extensions: it can only be built on the target's base (imagegate build / gate "
                "do that)")
        deps = cache / "build-deps"
        log(f"wheelhouse: {pin.name}=={pin.version} has no wheel for {target.key}: building its "
            f"sdist (extensions) on the target, with no network")
        _download_build_deps(build_requires(sdist), target, deps)
        made = compile(sdist, deps)
        wheel = out / made.name
        shutil.move(str(made), wheel)
        how = "C extension, built on the target's build base with no network"
    else:
        log(f"wheelhouse: {pin.name}=={pin.version} has no wheel for {target.key}: building its "
            "sdist (pure Python) on the host")
        wheel = _pip_wheel_here(sdist, out)
        if not wheel.name.endswith("-none-any.whl"):
            raise WheelhouseError(f"{sdist.name} built {wheel.name} on the host, not a pure-"
                                  "Python wheel: its extensions must be built on the target")
        how = "pure Python, built on the host"
    info = {"sdist": sdist.name, "wheel": wheel.name, "sha256": _sha256(wheel), "how": how}
    (out / "built.json").write_text(json.dumps(info, indent=1))
    return Built(pin, sdist.name, digest, wheel, info["sha256"], how)


def _pip_wheel_here(sdist: Path, out: Path) -> Path:
    """``pip wheel --no-deps`` of one sdist on the host (its build requirements come from the
    index, in pip's isolated build environment); the wheel's path."""
    with tempfile.TemporaryDirectory(prefix="imagegate-wheel-") as tmp:
        try:
            run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
                 "--no-deps", "--no-cache-dir", "--wheel-dir", tmp, str(sdist)], timeout=600)
        except CommandFailed as exc:
            raise WheelhouseError(f"pip wheel {sdist.name} failed: {exc.message}") from None
        made = sorted(Path(tmp).glob("*.whl"))
        if len(made) != 1:
            raise WheelhouseError(f"pip wheel {sdist.name} made {len(made)} wheels, not one")
        return Path(shutil.move(str(made[0]), out / made[0].name))


def _download_build_deps(requires: list[str], target: Target, deps: Path) -> None:
    """Wheels for the target of pip and an sdist's build requirements (with their dependencies):
    the offline build finds them with ``--find-links``."""
    deps.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
        "--only-binary=:all:", "--dest", str(deps), *_target_args(target), "pip", *requires,
    ]
    try:
        run(cmd, timeout=600)
    except CommandFailed as exc:
        raise WheelhouseError(
            f"pip download of the build requirements ({', '.join(requires)}) for {target.key} "
            f"failed: {exc.message}") from None


def compile_in_container(cli: Any, image: str, labels: dict[str, str], sdist: Path,
                         deps: Path, *, timeout: float = 900) -> Path:
    """Build ``sdist`` into a wheel in a container of ``image`` (the build base) with no network:
    the sdist and the wheels in ``deps`` are copied in, the wheel copied out (no bind mount: the
    engine may be remote). Returns the wheel, in a temporary directory of its own."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.add(sdist, arcname=f"src/{sdist.name}")
        for wheel in sorted(deps.glob("*.whl")):
            tf.add(wheel, arcname=f"src/deps/{wheel.name}")
    pip = sorted(deps.glob("pip-*.whl"))
    if not pip:
        raise WheelhouseError(f"no pip wheel in {deps} to build {sdist.name} with")
    argv = ["python3", f"/src/deps/{pip[-1].name}/pip", "wheel", "--no-index", "--find-links",
            "/src/deps", "--no-deps", "--no-cache-dir", "--disable-pip-version-check",
            "--wheel-dir", "/out", f"/src/{sdist.name}"]
    container = cli.containers.create(image, argv, network_mode="none", labels=labels,
                                      user="0", entrypoint=[], working_dir="/src",
                                      environment={"HOME": "/tmp"})
    try:
        container.put_archive("/", buf.getvalue())
        container.start()
        status = container.wait(timeout=timeout).get("StatusCode", 1)
        if status != 0:
            tail = container.logs().decode(errors="replace").strip().splitlines()[-15:]
            raise WheelhouseError(f"building {sdist.name} in {image} (no network) failed with "
                                  f"exit {status}: " + " | ".join(tail))
        stream, _ = container.get_archive("/out")
        data = b"".join(stream)
    finally:
        container.remove(force=True)
    out = Path(tempfile.mkdtemp(prefix="imagegate-built-"))
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        wheels = [m for m in tf.getmembers() if m.isfile() and m.name.endswith(".whl")]
        if len(wheels) != 1:
            raise WheelhouseError(f"building {sdist.name} made {len(wheels)} wheels, not one")
        member = tf.extractfile(wheels[0])
        assert member is not None
        path = out / Path(wheels[0].name).name
        path.write_bytes(member.read())
    return path


@contextlib.contextmanager
def _locked(dest: Path) -> Iterator[None]:
    """An exclusive lock on ``dest`` (a file under the state dir, not in the user's project)."""
    key = hashlib.sha256(str(dest.resolve()).encode()).hexdigest()[:16]
    path = STATE_DIR / "locks" / f"wheelhouse-{key}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _sync(wheels: dict[str, Path], dest: Path, texts: dict[str, str] | None = None) -> None:
    """Make ``dest`` hold exactly ``wheels`` (and the files ``texts`` gives): strays removed, a
    wheel copied only when it is missing or differs (size or mtime; ``copy2`` keeps the cache's
    mtime, so the build cache sees the same files), a text written only when it differs."""
    texts = texts or {}
    if dest.exists() and not dest.is_dir():
        dest.unlink()
    dest.mkdir(parents=True, exist_ok=True)
    for entry in dest.iterdir():
        if entry.name not in wheels and entry.name not in texts:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    for name, text in texts.items():
        path = dest / name
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
    for name, wheel in wheels.items():
        target = dest / name
        have, want = (target.lstat() if target.exists() else None), wheel.stat()
        if have is None or (have.st_size, int(have.st_mtime)) != (want.st_size, int(want.st_mtime)):
            shutil.copy2(wheel, target)


def _target_args(target: Target) -> list[str]:
    """pip's arguments naming the target's interpreter and platforms."""
    return ["--implementation", target.implementation, "--python-version", target.version,
            "--abi", target.abi, "--abi", "abi3", "--abi", "none",
            *(arg for plat in target.platforms() for arg in ("--platform", plat))]


def _download(pins: list[Pin], target: Target, cache: Path) -> None:
    """``pip download`` the pins for the target's tags, hash-checked, markers stripped: a wheel
    where the target has one, else the sdist (``--no-deps`` lets pip take it; it is built)."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as req:
        for pin in pins:
            hashes = " ".join(f"--hash=sha256:{h}" for h in sorted(pin.hashes))
            req.write(f"{pin.name}=={pin.version} {hashes}\n")
    cmd = [
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
        "--no-deps", "--prefer-binary", "--require-hashes", "--dest", str(cache),
        *_target_args(target), "-r", req.name,
    ]
    try:
        run(cmd, timeout=600)
    except CommandFailed as exc:
        raise WheelhouseError(f"pip download for {target.key} failed: {exc.message}") from None
    finally:
        Path(req.name).unlink(missing_ok=True)


def _cached_wheel(cache: Path, pin: Pin) -> Path | None:
    """A wheel of ``pin`` in the cache whose sha256 is one the lock allows."""
    for wheel in cache.glob("*.whl"):
        name, _, rest = wheel.name.partition("-")
        if name.lower() != pin.normalized or not rest.startswith(f"{pin.version}-"):
            continue
        if hashlib.sha256(wheel.read_bytes()).hexdigest() in pin.hashes:
            return wheel
    return None
