"""A slim-equivalent Python base, made locally: Debian minbase + python3 (like ``python:3.x-slim``).

``python:3.9-slim`` is what the seed's users start from, but nothing is pulled here, so the closest
local stand-in is a debootstrap ``minbase`` of the same Debian suite with python3, pip and venv.
It is a benchmark fixture, not a product base: it is made only by ``bench/``, once, and reused.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from imagegate.build import base
from imagegate.engine import IMAGE_LABEL
from imagegate.proc import run

from .common import BENCH_LABEL, Log

SLIM_REPO = "imagegate/bench-slim"
PACKAGES = ("python3", "python3-pip", "python3-venv")
MIRROR = "http://deb.debian.org/debian"


def slim_ref() -> str:
    """``imagegate/bench-slim:<suite>`` for this host's Debian suite."""
    return f"{SLIM_REPO}:{base.codename()}"


def ensure_slim_base(cli: Any, log: Log = print) -> tuple[str, bool]:
    """Return (ref, made_now): the slim-equivalent base, made with debootstrap if it is missing."""
    import docker.errors

    ref = slim_ref()
    try:
        cli.images.get(ref)
        return ref, False
    except docker.errors.ImageNotFound:
        pass
    suite = base.codename()
    log(f"{ref}: debootstrap --variant=minbase {suite} + {', '.join(PACKAGES)} (about a minute)")
    with tempfile.TemporaryDirectory(prefix="imagegate-bench-slim-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", suite,
             str(rootfs), MIRROR], timeout=900)
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / junk).glob("*"):
                if entry.is_file():
                    entry.unlink()  # what the official images clean up too
        tarball = Path(tmp) / "rootfs.tar"
        run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(tarball), "."], timeout=600)
        changes = [
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV LANG=C.UTF-8",
            'CMD ["python3"]',
            f'LABEL {IMAGE_LABEL}="true" {BENCH_LABEL}="slim-base"',
        ]
        run(["docker", "import", *(a for c in changes for a in ("--change", c)), str(tarball),
             ref], timeout=600)
    log(f"{ref}: {cli.images.get(ref).attrs['Size'] / 1e6:.0f} MB")
    return ref, True
