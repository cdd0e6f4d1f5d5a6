"""Facts about a running container, read from outside it: no shell, ps, ss or getent needed.

Each fact is read the most direct way that works and falls back in order:

1. this host's ``/proc/<pid>`` of the container's processes, when the engine is local (its PIDs
   are ours: checked by finding the container id in ``/proc/<pid>/cgroup``);
2. the engine's API: ``docker top`` (the engine host's ``ps``), ``get_archive`` (files);
3. ``docker exec`` of an argv list (never a shell string), with the image's own tools.

What cannot be known — the image lacks the tool, the interpreter is not there, the engine is
remote — comes back as a :class:`Skip` carrying the reason, never as an exception and never as a
pass or a failure. :class:`Skip` refuses to be used as a bool, so a caller cannot mistake it for
either: test ``isinstance(result, Skip)`` first.
"""

from __future__ import annotations

import contextlib
import functools
import io
import ipaddress
import os
import posixpath
import py_compile
import re
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from imagegate.engine import STATE_DIR, write_atomic
from imagegate.run.container import engine_reason
from imagegate.text import one_line

PIP_ZIP = "/tmp/imagegate-pip.zip"
#: Where pip's zip goes when the root filesystem is read-only (tmpfs mounts, /dev/shm last).
PIP_ZIP_DIRS = ("/tmp", "/run", "/dev/shm")
#: Reads stdin into ``<first writable dir of argv>/imagegate-pip.zip`` and says where.
#: Writes argv[1] bytes of stdin to the first writable of argv[2:]; reads exactly that many, so
#: the sender never has to half-close (a TLS connection to the engine cannot).
WRITE_STDIN = (
    "import os, sys\n"
    "data = sys.stdin.buffer.read(int(sys.argv[1]))\n"
    "for d in sys.argv[2:]:\n"
    "    path = os.path.join(d, 'imagegate-pip.zip')\n"
    "    try:\n"
    "        with open(path, 'wb') as f:\n"
    "            f.write(data)\n"
    "    except OSError:\n"
    "        continue\n"
    "    sys.stdout.write('IMAGEGATE-WROTE ' + path + '\\n')\n"
    "    sys.exit(0)\n"
    "sys.exit(1)\n"
)
LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's ``st`` column
PYTHON = re.compile(r"^python(?:\d+(?:\.\d+)*)?$")
#: A Python one-liner listing what the current user can write under ``argv[1]``.
WRITABLE_SCRIPT = (
    "import os, sys\n"
    "for d, ds, fs in os.walk(sys.argv[1]):\n"
    "    for p in [d] + [os.path.join(d, n) for n in fs]:\n"
    "        if not os.path.islink(p) and os.access(p, os.W_OK):\n"
    "            print(p)\n"
)


@dataclass(frozen=True)
class Skip:
    """A fact that could not be read here, and why (for a pytest skip or a skipped Finding)."""

    reason: str

    def __bool__(self) -> bool:
        """A Skip is neither true nor false: callers must test ``isinstance(x, Skip)``."""
        raise TypeError(f"a Skip is neither true nor false (skipped: {self.reason}); "
                        "test isinstance(result, Skip) first")

    def __str__(self) -> str:
        """The reason."""
        return self.reason


class Proc(NamedTuple):
    """One process of the container: host PID, effective uid, command line."""

    pid: int
    uid: int
    command: str


@dataclass(frozen=True)
class Socket:
    """One listening TCP socket: local address (``0.0.0.0``, ``::``, ``127.0.0.1``) and port."""

    address: str
    port: int

    @property
    def loopback_only(self) -> bool:
        """True when only the container itself can connect (127.0.0.1, ::1)."""
        return ipaddress.ip_address(self.address).is_loopback


# --- where the container's processes are -------------------------------------------------------


def host_pid(container: Any) -> int | Skip:
    """The PID of the container's main process as this host sees it, or why it cannot be used.

    Usable when the engine is local (``DOCKER_HOST`` unset or ``unix://``) and this host's
    ``/proc/<pid>`` really is the container's process: its cgroup names the container id (an
    engine in another PID namespace, e.g. a socket shared into a CI container, fails this).
    """
    host = os.environ.get("DOCKER_HOST", "")
    if host and not host.startswith("unix://"):
        return Skip(f"the engine is remote (DOCKER_HOST={host}): its /proc is not ours")
    container.reload()
    state = container.attrs.get("State") or {}
    pid = int(state.get("Pid") or 0)
    if not state.get("Running") or not pid:
        return Skip(f"container {container.id[:12]} is not running "
                    f"(status {state.get('Status')})")
    try:
        cgroup = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError as exc:
        return Skip(f"/proc/{pid}/cgroup is not readable here ({exc.strerror or exc})")
    if container.id not in cgroup:
        return Skip(f"/proc/{pid} on this host is not the container's process "
                    "(the engine runs in another PID namespace)")
    return pid


def host_pids(container: Any) -> list[int] | Skip:
    """Every PID of the container's processes on this host (main process first)."""
    main = host_pid(container)
    if isinstance(main, Skip):
        return main
    try:
        ns = os.readlink(f"/proc/{main}/ns/pid")
    except OSError as exc:
        return Skip(f"cannot read /proc/{main}/ns/pid ({exc.strerror or exc})")
    peers = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != main:
            try:
                if os.readlink(entry / "ns" / "pid") == ns:
                    peers.append(int(entry.name))
            except OSError:  # gone, or not ours to look at
                continue
    return [main, *sorted(peers)]


# --- listening sockets -----------------------------------------------------------------------


def listening_sockets(container: Any) -> set[Socket] | Skip:
    """The TCP sockets listening in the container's network namespace.

    Read from the host's ``/proc/<pid>/net/tcp`` and ``tcp6`` of the main process; for a
    remote engine from ``cat /proc/net/tcp /proc/net/tcp6`` run in the container (if it has a
    ``cat``); else a :class:`Skip` naming both reasons.
    """
    pid = host_pid(container)
    if not isinstance(pid, Skip):
        text = ""
        for name in ("tcp", "tcp6"):
            with contextlib.suppress(OSError, StopIteration, ValueError):
                text += Path(f"/proc/{pid}/net/{name}").read_text()
        if "local_address" in text:
            return parse_proc_net_tcp(text)
        why = f"/proc/{pid}/net/tcp is not readable"
    else:
        why = pid.reason
    result = _exec(container, ["cat", "/proc/net/tcp", "/proc/net/tcp6"])
    if isinstance(result, Skip):
        return Skip(f"{why}; and {result.reason}")
    rc, out = result
    if "local_address" in out:  # tcp6 may be missing (IPv6 off): cat then exits 1
        return parse_proc_net_tcp(out)
    return Skip(f"{why}; and `cat /proc/net/tcp` in the container exited {rc}: "
                f"{_last_line(out)}")


def listening_ports(container: Any) -> set[int] | Skip:
    """The TCP ports something listens on in the container (any address)."""
    sockets = listening_sockets(container)
    if isinstance(sockets, Skip):
        return sockets
    return {s.port for s in sockets}


def parse_proc_net_tcp(text: str) -> set[Socket]:
    """The LISTEN sockets of ``/proc/net/tcp`` / ``tcp6`` text (header lines skipped)."""
    found = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[3] != LISTEN or ":" not in fields[1]:
            continue
        address, _, port = fields[1].rpartition(":")
        try:
            found.add(Socket(_hex_address(address), int(port, 16)))
        except ValueError:
            continue
    return found


def _hex_address(text: str) -> str:
    """``0100007F`` → ``127.0.0.1``; 32 hex digits → an IPv6 address (kernel word order)."""
    raw = bytes.fromhex(text)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    if len(raw) == 16:
        words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
        return str(ipaddress.IPv6Address(words))
    raise ValueError(text)


# --- processes and users -----------------------------------------------------------------------


def process_uids(container: Any) -> list[Proc] | Skip:
    """Every process of the container with its effective uid: ``[(pid, uid, command)]``.

    From ``docker top`` with ``-o pid,uid,args`` (the engine host's ps: nothing needed in the
    image), else from this host's ``/proc/<pid>/status`` of the container's processes. PIDs are
    host PIDs.
    """
    try:
        top = container.top(ps_args="-o pid,uid,args")
        procs = _parse_top(top)
        if procs:
            return procs
        why = f"docker top gave no usable rows ({top.get('Titles')})"
    except Exception as exc:  # the engine host's ps may lack -o, or the container stopped
        why = f"docker top failed: {one_line(engine_reason(exc))}"
    pids = host_pids(container)
    if isinstance(pids, Skip):
        return Skip(f"{why}; and {pids.reason}")
    out = []
    for pid in pids:
        with contextlib.suppress(OSError, StopIteration, ValueError):
            status = Path(f"/proc/{pid}/status").read_text()
            uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
            out.append(Proc(pid, int(uid_line.split()[2]), " ".join(_cmdline(pid))))
    return out or Skip(f"{why}; and no /proc/<pid>/status was readable")


def _parse_top(top: dict[str, Any]) -> list[Proc]:
    """``docker top`` output (Titles + Processes) as Procs; [] when the columns are not there."""
    titles = [str(t).upper() for t in top.get("Titles") or []]
    try:
        ipid, iuid = titles.index("PID"), titles.index("UID")
    except ValueError:
        return []
    icmd = next((i for i, t in enumerate(titles) if t in ("COMMAND", "ARGS", "CMD")), -1)
    out = []
    for row in top.get("Processes") or []:
        if str(row[ipid]).isdigit() and str(row[iuid]).isdigit():
            out.append(Proc(int(row[ipid]), int(row[iuid]), str(row[icmd]) if icmd >= 0 else ""))
    return out


def exec_uid(container: Any) -> int | Skip:
    """The uid ``docker exec`` runs commands as (the container's ``Config.User``).

    A numeric user is taken as is; a name is looked up in the container's own /etc/passwd,
    read through the engine's archive API (no ``id`` or ``getent`` needed); no user is root.
    """
    user = str((container.attrs.get("Config") or {}).get("User") or "").strip()
    name = user.partition(":")[0]
    if not name:
        return 0
    if name.isdigit():
        return int(name)
    passwd = read_file(container, "/etc/passwd")
    if isinstance(passwd, Skip):
        return Skip(f"USER {name!r} cannot be resolved: {passwd.reason}")
    for line in passwd.decode(errors="replace").splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
            return int(fields[2])
    return Skip(f"USER {name!r} is not in the container's /etc/passwd")


def read_file(container: Any, path: str, *, limit: int = 1 << 20) -> bytes | Skip:
    """The content of ``path`` in the container (symlinks followed), via ``get_archive``."""
    seen: set[str] = set()
    while path not in seen and len(seen) < 10:
        seen.add(path)
        try:
            stream, _stat = container.get_archive(path)
        except Exception as exc:
            return Skip(f"the container has no readable {path} ({one_line(engine_reason(exc))})")
        data = b"".join(stream)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            member = tar.next()
            if member is None:
                return Skip(f"the engine returned an empty archive for {path}")
            if member.issym():
                path = posixpath.normpath(posixpath.join(posixpath.dirname(path),
                                                         member.linkname))
                continue
            handle = tar.extractfile(member)
            if handle is None or member.size > limit:
                return Skip(f"{path} is not a small regular file")
            return handle.read()
    return Skip(f"{path}: too many symlinks")


# --- the server's interpreter and what it can do -----------------------------------------------


def commands(container: Any) -> list[list[str]] | Skip:
    """The argv of each container process, main process first.

    Exact from this host's ``/proc/<pid>/cmdline``; else ``docker top``'s args split on spaces.
    """
    pids = host_pids(container)
    if not isinstance(pids, Skip):
        found = [argv for argv in (_cmdline(pid) for pid in pids) if argv]
        if found:
            return found
    try:
        top = container.top(ps_args="-o pid,args")
    except Exception as exc:
        reason = pids.reason if isinstance(pids, Skip) else "no readable /proc/<pid>/cmdline"
        return Skip(f"{reason}; and docker top failed: {one_line(engine_reason(exc))}")
    rows = sorted((int(r[0]), str(r[-1]).split()) for r in top.get("Processes") or []
                  if str(r[0]).isdigit())
    return [argv for _, argv in rows if argv] or Skip("docker top lists no processes")


def server_interpreter(container: Any) -> str | Skip:
    """The Python the server runs under, as the container would name it.

    argv[0] of the first Python process (PID 1 first): a gunicorn script whose first line is
    ``#!/opt/venv/bin/python3`` runs as ``/opt/venv/bin/python3 /opt/venv/bin/gunicorn …``, so
    probes use the venv's interpreter, not whichever python3 is first on PATH. A bare name
    (``python3``) is resolved on the process's PATH in the container's filesystem when this host
    can see it, else returned as is (``docker exec`` resolves it on the same PATH).
    """
    found = commands(container)
    if isinstance(found, Skip):
        return found
    for argv in found:
        if PYTHON.match(posixpath.basename(argv[0])):
            return _resolve_bare(container, argv[0])
    return Skip(f"no Python process in the container (its main process runs "
                f"{one_line(' '.join(found[0]), 80)!r})")


def pip_importable(container: Any, interpreter: str) -> bool | Skip:
    """Whether ``import pip`` works under ``interpreter`` in the container (exec, no shell).

    A :class:`Skip` when the interpreter is not there (exit 126/127) or the probe failed for
    another reason than a missing module.
    """
    result = run_python(container, interpreter, "-c", "import pip")
    if isinstance(result, Skip):
        return result
    rc, out = result
    if rc == 0:
        return True
    if rc == 1 and re.search(r"\b(?:ModuleNotFoundError|ImportError)\b", out):
        return False
    return Skip(f"`{interpreter} -c 'import pip'` exited {rc}: {_last_line(out)}")


def pip_check(container: Any, interpreter: str) -> tuple[bool, str] | Skip:
    """``pip check`` of ``interpreter``'s environment, run from a pip copied in (not installed).

    Copies this host's pip, zipped, to ``/tmp/imagegate-pip.zip`` in the container and runs
    ``<interpreter> /tmp/imagegate-pip.zip/pip check``. Returns (clean, output); a
    :class:`Skip` when the zip cannot be copied in (read-only root filesystem, no /tmp), the
    interpreter is not there, or this pip cannot run under it.
    """
    where = PIP_ZIP
    try:
        if (container.attrs.get("HostConfig") or {}).get("ReadonlyRootfs"):
            # the engine refuses archives into it (after half a second): do not ask
            raise PermissionError("the container's root filesystem is read-only")
        container.put_archive(posixpath.dirname(PIP_ZIP), pip_zip())
    except Exception as exc:
        # A read-only root filesystem refuses archives even where a tmpfs is mounted: stream the
        # zip through an exec of the server's own interpreter into a tmpfs it can write.
        copied = _write_by_exec(container, interpreter, _pip_zip_bytes(), PIP_ZIP_DIRS)
        if isinstance(copied, Skip):
            return Skip(f"cannot copy pip into the container: {one_line(engine_reason(exc))}; "
                        f"{copied.reason}")
        where = copied
    result = run_python(container, interpreter, f"{where}/pip", "check",
                         "--disable-pip-version-check", "--no-input", "--no-cache-dir")
    if isinstance(result, Skip):
        return result
    rc, out = result
    if rc not in (0, 1) or "Traceback (most recent call last)" in out:
        return Skip(f"pip could not run under {interpreter} (exit {rc}): {_last_line(out)}")
    return rc == 0, out.strip()


def writable_paths(container: Any, workdir: str | None, interpreter: str) -> list[str] | Skip:
    """The paths under ``workdir`` the container's user can write (``os.access``, exec'd as the
    container's user with ``interpreter``); ``workdir`` None means the container's WORKDIR."""
    top = workdir or str((container.attrs.get("Config") or {}).get("WorkingDir") or "/")
    result = run_python(container, interpreter, "-I", "-c", WRITABLE_SCRIPT, top)
    if isinstance(result, Skip):
        return result
    rc, out = result
    if rc != 0:
        return Skip(f"the writability probe under {top} exited {rc}: {_last_line(out)}")
    return [line for line in out.splitlines() if line.startswith("/")]


@functools.lru_cache(maxsize=1)
def pip_zip() -> bytes:
    """This interpreter's pip package zipped (runnable as ``python pip.zip/pip``), in a tar
    holding one file, ``imagegate-pip.zip`` (for ``put_archive``).

    Each module is there as source and as bytecode compiled here (unchecked-hash .pyc files
    beside the .py, which zipimport tries first): an interpreter of this Python version imports
    pip without compiling it — seconds of a container's CPU on every gate — and any other
    version finds a bad magic number and falls back to the source. Made once per pip version
    and Python version, then read from the state dir.
    """
    import pip

    cache = STATE_DIR / "pip" / f"pip-{pip.__version__}-{sys.implementation.cache_tag}-1.tar"
    with contextlib.suppress(OSError):
        return cache.read_bytes()
    data = _pip_tar(Path(pip.__file__).parent)
    with contextlib.suppress(OSError):
        write_atomic(cache, data)
    return data


def _pip_zip_bytes() -> bytes:
    """The zip inside :func:`pip_zip`'s tar."""
    with tarfile.open(fileobj=io.BytesIO(pip_zip())) as tar:
        member = tar.extractfile(posixpath.basename(PIP_ZIP))
        assert member is not None
        return member.read()


def _write_by_exec(container: Any, interpreter: str, data: bytes,
                   dirs: Sequence[str]) -> str | Skip:
    """Write ``data`` into the first of ``dirs`` the container's user can write, through one
    exec of ``interpreter`` reading its stdin; the path written, or a Skip saying why not."""
    from imagegate.run.tunnel import ExecStream, split_frames

    try:
        stream = ExecStream.start(container, [interpreter, "-c", WRITE_STDIN, str(len(data)),
                                              *dirs])
        try:
            stream.sock.settimeout(60)
            # No half-close: SSLSocket.shutdown drops TLS and the reads below would see
            # ciphertext (IG-RUN-PIP-CHECK skipped after a minute on a TLS engine). The script
            # reads exactly len(data) bytes and exits; the engine then ends the stream.
            stream.sock.sendall(data)
            output = b""
            while chunk := stream.sock.recv(65536):
                output += chunk
        finally:
            stream.close()
        code = container.client.api.exec_inspect(stream.id).get("ExitCode")
    except Exception as exc:
        return Skip(f"cannot stream a file into the container: {one_line(engine_reason(exc))}")
    found = re.search(rb"IMAGEGATE-WROTE (\S+)",
                      b"".join(payload for _, payload in split_frames(output)[0]))
    if code != 0 or found is None:
        return Skip(f"no directory of {', '.join(dirs)} is writable by the container's user "
                    f"(exit {code})")
    return found.group(1).decode()


def _pip_tar(source: Path) -> bytes:
    """:func:`pip_zip` made from the pip package at ``source``."""
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w", zipfile.ZIP_DEFLATED) as zf, \
            tempfile.TemporaryDirectory(prefix="imagegate-pip-") as tmp:
        compiled = Path(tmp) / "module.pyc"
        for path in sorted(source.rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            arcname = Path("pip") / path.relative_to(source)
            zf.write(path, arcname)
            if path.suffix == ".py":
                py_compile.compile(str(path), cfile=str(compiled), dfile=f"{PIP_ZIP}/{arcname}",
                                   doraise=True,
                                   invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
                zf.write(compiled, arcname.with_suffix(".pyc"))
    tbuf = io.BytesIO()
    with tarfile.open(fileobj=tbuf, mode="w") as tar:
        info = tarfile.TarInfo(posixpath.basename(PIP_ZIP))
        info.size = len(zbuf.getvalue())
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(zbuf.getvalue()))
    return tbuf.getvalue()


# --- helpers -------------------------------------------------------------------------------------


def _exec(container: Any, argv: Sequence[str]) -> tuple[int, str] | Skip:
    """(exit code, output) of ``argv`` exec'd in the container as its user; Skip when the engine
    refuses (the container is not running)."""
    try:
        result = container.exec_run(list(argv), stdout=True, stderr=True)
    except Exception as exc:
        return Skip(f"cannot exec in the container: {one_line(engine_reason(exc))}")
    output = result.output or b""
    return int(result.exit_code if result.exit_code is not None else -1), \
        output.decode(errors="replace")


def run_python(container: Any, interpreter: str, *args: str) -> tuple[int, str] | Skip:
    """``interpreter args…`` exec'd in the container: (exit code, output), or a Skip when the
    exec failed or the interpreter is not there (never a pass or a failure of a check)."""
    result = _exec(container, [interpreter, *args])
    if isinstance(result, Skip):
        return result
    rc, out = result
    missing = _missing(interpreter, rc, out)
    return missing if missing is not None else (rc, out)


def _missing(program: str, rc: int, out: str) -> Skip | None:
    """A Skip when an exec failed because ``program`` is not there or cannot run."""
    lowered = out.lower()
    if rc in (126, 127) or "executable file not found" in lowered or (
            "no such file or directory" in lowered and program in out):
        reason = engine_reason(out) if "exec" in lowered else _last_line(out)
        return Skip(f"{program} cannot run in the container (exit {rc}: {reason})")
    return None


def _cmdline(pid: int) -> list[str]:
    """The argv of host process ``pid`` ([] when unreadable or a kernel thread)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _resolve_bare(container: Any, name: str) -> str:
    """``name`` when it has a slash; else the first PATH entry holding it in the container's
    filesystem (seen through this host's ``/proc/<pid>/root``), or ``name`` unchanged."""
    if "/" in name:
        return name
    pid = host_pid(container)
    if isinstance(pid, Skip):
        return name
    env = dict(item.partition("=")[::2] for item in
               (container.attrs.get("Config") or {}).get("Env") or [])
    root = f"/proc/{pid}/root"
    for folder in _split_path(env.get("PATH", "")):
        candidate = posixpath.join(folder, name)
        # lexists: a symlink's absolute target would resolve against this host's root
        if os.path.lexists(root + candidate):
            return candidate
    return name


def _split_path(value: str) -> Iterable[str]:
    """The absolute directories of a PATH value."""
    return [p for p in value.split(":") if p.startswith("/")]


def _last_line(text: str) -> str:
    """The last non-empty line of ``text``, shortened."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return one_line(lines[-1]) if lines else "(no output)"

