"""Locked requirements → a hash-checked wheelhouse for the *base image's* Python.

Builds have no network, so every wheel is downloaded on the host first. pip evaluates environment
markers for the interpreter that runs it, not for the image, so markers are stripped for the
download (every pin is fetched whatever its marker) and evaluated by the install inside the build.
Version, ABI and platform tags are read from the base image itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagegate.engine import STATE_DIR
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
    """Run the image's own python (no network, never pulled) and read its tags."""
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


def ensure_wheelhouse(
    locks: Iterable[Path], target: Target, dest: Path, *, log: Callable[[str], None] = print,
) -> list[Path]:
    """Fill ``dest`` with exactly the wheels the locks pin for ``target``; return their paths.

    Wheels are cached per target; only pins with no matching (hash-verified) wheel are downloaded.
    Runs side by side (two gates, or test workers, on one project) take turns on a lock and leave
    a wheelhouse that is already right untouched: a build reading it is never disturbed.
    """
    pins = [pin for lock in locks for pin in parse_lock(lock)]
    cache = STATE_DIR / "wheels" / target.key
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(dest):
        found = {pin: _cached_wheel(cache, pin) for pin in pins}
        missing = [pin for pin, wheel in found.items() if wheel is None]
        if missing:
            log(f"wheelhouse: downloading {len(missing)} wheels for {target.key}")
            _download(missing, target, cache)
            found = {pin: _cached_wheel(cache, pin) for pin in pins}
        lost = [f"{p.name}=={p.version}" for p, w in found.items() if w is None]
        if lost:
            raise WheelhouseError(
                f"no wheel matching the locked hashes for {target.key}: {', '.join(lost)}"
            )
        wheels = {w.name: w for w in found.values() if w is not None}
        _sync(wheels, dest)
    return [dest / name for name in wheels]


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


def _sync(wheels: dict[str, Path], dest: Path) -> None:
    """Make ``dest`` hold exactly ``wheels``: strays removed, a wheel copied only when it is
    missing or differs (size or mtime; ``copy2`` keeps the cache's mtime, so the build cache
    sees the same files)."""
    if dest.exists() and not dest.is_dir():
        dest.unlink()
    dest.mkdir(parents=True, exist_ok=True)
    for entry in dest.iterdir():
        if entry.name not in wheels:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    for name, wheel in wheels.items():
        target = dest / name
        have, want = (target.lstat() if target.exists() else None), wheel.stat()
        if have is None or (have.st_size, int(have.st_mtime)) != (want.st_size, int(want.st_mtime)):
            shutil.copy2(wheel, target)


def _download(pins: list[Pin], target: Target, cache: Path) -> None:
    """``pip download`` the pins for the target's tags, hash-checked, markers stripped."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as req:
        for pin in pins:
            hashes = " ".join(f"--hash=sha256:{h}" for h in sorted(pin.hashes))
            req.write(f"{pin.name}=={pin.version} {hashes}\n")
    cmd = [
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
        "--no-deps", "--only-binary=:all:", "--require-hashes", "--dest", str(cache),
        "--implementation", target.implementation, "--python-version", target.version,
        "--abi", target.abi, "--abi", "abi3", "--abi", "none",
        *(arg for plat in target.platforms() for arg in ("--platform", plat)),
        "-r", req.name,
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
