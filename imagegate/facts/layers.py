"""The final filesystem of an image, read from ``docker save`` without running anything.

A saved image is a tar holding ``manifest.json``, the image config and one tar per layer, bottom
first. Applying the layers in order with overlay's whiteouts — ``.wh.NAME`` deletes NAME from the
layers below, ``.wh..wh..opq`` empties a directory of what the layers below put there — gives the
filesystem a container starts with. Only metadata is kept per path, plus the content of the few
small files a caller asks for (``keep``); layer tars are streamed, never held in memory.
"""

from __future__ import annotations

import json
import posixpath
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
TYPES = {
    tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.CONTTYPE: "file",
    tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink",
    tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block", tarfile.FIFOTYPE: "fifo",
}

#: ``keep(path, size)`` says how much of a regular file's content to hold in memory: False (or
#: 0) none, True all of it, a positive int that many leading bytes (a script's ``#!`` line).
Keep = Callable[[str, int], bool | int]


def keep_nothing(path: str, size: int) -> bool:
    """The default ``keep``: metadata only."""
    return False


@dataclass(frozen=True)
class FileInfo:
    """One path of the final filesystem: what it is, who owns it, and which layer put it there."""

    path: str  # absolute, no trailing slash: "/etc/passwd"
    type: str  # file, dir, symlink, hardlink, char, block, fifo
    mode: int  # permission bits with setuid/setgid/sticky: 0o4755
    uid: int = 0
    gid: int = 0
    size: int = 0
    layer: int = 0  # index into the image's layers, 0 = bottom
    linkname: str = ""
    content: bytes | None = None  # only for the files ``keep`` asked for (maybe just a head)

    @property
    def name(self) -> str:
        """The last path component."""
        return posixpath.basename(self.path)


@dataclass(frozen=True)
class SavedImage:
    """What :func:`read_saved` found: the image config from the save, and the merged files."""

    config: dict[str, Any]
    layers: tuple[str, ...]
    files: dict[str, FileInfo]


def normalize(name: str) -> str:
    """A tar member name as an absolute path: ``./usr/bin/`` → ``/usr/bin``."""
    return posixpath.normpath("/" + name.lstrip("/"))


def apply_layer(files: dict[str, FileInfo], layer: tarfile.TarFile, index: int,
                keep: Keep = keep_nothing) -> None:
    """Apply one layer tar (streamed, in member order) on top of ``files``, in place."""
    for member in layer:
        path = normalize(member.name)
        if path == "/":
            continue
        parent, base = posixpath.split(path)
        if base == OPAQUE:
            _remove_below(files, parent, index, keep_root=True)
            continue
        if base.startswith(WHITEOUT):
            _remove_below(files, posixpath.join(parent, base[len(WHITEOUT):]), index)
            continue
        kind = TYPES.get(member.type, "file")
        old = files.get(path)
        if old is not None and old.type == "dir" and kind != "dir":
            _remove_below(files, path, index)  # a non-directory hides everything under it
        content = None
        wanted = keep(path, member.size) if kind == "file" else False
        if wanted:
            handle = layer.extractfile(member)
            if handle is not None:
                content = handle.read() if wanted is True else handle.read(int(wanted))
        size = member.size
        if kind == "hardlink":
            target = files.get(normalize(member.linkname))
            size = target.size if target is not None else 0
            content = target.content if target is not None else None  # same file, same bytes
        files[path] = FileInfo(path, kind, member.mode, member.uid, member.gid, size, index,
                               member.linkname, content)


def merge_layers(layers: Iterable[IO[bytes]], keep: Keep = keep_nothing) -> dict[str, FileInfo]:
    """The final filesystem of ``layers`` (open layer tars, bottom first, plain or compressed)."""
    files: dict[str, FileInfo] = {}
    for index, stream in enumerate(layers):
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            apply_layer(files, tar, index, keep)
    return files


def read_saved(path: Path, keep: Keep = keep_nothing) -> SavedImage:
    """Read a ``docker save`` tar (Docker's layout or OCI's): config, layer names, final files."""
    with tarfile.open(path, mode="r:") as outer:
        manifest = json.load(_member(outer, "manifest.json"))
        if not manifest:
            raise ValueError(f"{path}: manifest.json lists no image")
        entry = manifest[0]
        config = json.load(_member(outer, entry["Config"]))
        names = tuple(entry.get("Layers") or ())
        files = merge_layers(_open_each(outer, names), keep)
    return SavedImage(config, names, files)


def _open_each(outer: tarfile.TarFile, names: Iterable[str]) -> Iterator[IO[bytes]]:
    """Each named member of ``outer`` as a file object (symlinked duplicates followed)."""
    for name in names:
        yield _member(outer, name)


def _member(outer: tarfile.TarFile, name: str) -> IO[bytes]:
    """One member of the save tar, or a ValueError naming what is missing."""
    try:
        handle = outer.extractfile(name)
    except KeyError:
        handle = None
    if handle is None:
        raise ValueError(f"the saved image has no {name}")
    return handle


def _remove_below(files: dict[str, FileInfo], path: str, index: int,
                  keep_root: bool = False) -> None:
    """Delete ``path`` and everything under it that layers below ``index`` put there."""
    if not keep_root:
        old = files.get(path)
        if old is not None and old.layer < index:
            del files[path]
        if old is not None and old.type != "dir":
            return  # nothing can be under a file: skip the scan
    prefix = path.rstrip("/") + "/"
    for key in [k for k, f in files.items() if k.startswith(prefix) and f.layer < index]:
        del files[key]
