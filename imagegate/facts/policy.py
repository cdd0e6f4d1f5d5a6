"""Image policy: checks read from the image's metadata and saved layers, no shell in the image.

:class:`ImageFacts` gathers ``docker image inspect``, the history and the final filesystem
(:mod:`imagegate.facts.layers`) once; each check is a plain function ``(facts, settings) -> Finding``
registered in :data:`CHECKS` under a stable id, its docstring's first line describing it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import posixpath
import re
import shlex
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from imagegate.checks.catalogue import check as declare
from imagegate.checks.catalogue import family
from imagegate.config.settings import Settings
from imagegate.engine import STATE_DIR, write_atomic
from imagegate.facts import layers as layers_mod
from imagegate.facts.layers import FileInfo, Keep, read_saved
from imagegate.results.findings import Finding, credential_kind, secret_problem
from imagegate.text import one_line

Check = Callable[["ImageFacts", Settings], "Finding | list[Finding]"]
#: id → check function; the first docstring line is the check's description.
CHECKS = family("image")

#: Kept whole: the user tables, and the CA bundle (≈220 KB) IG-CA-BUNDLE reads.
TEXT_FILES = ("/etc/passwd", "/etc/group", "/etc/ssl/certs/ca-certificates.crt")
PEEK_LIMIT = 64 * 1024  # key files are a few KB; bigger files are not read
KEY_SUFFIXES = (".pem", ".key")
RECORD_LIMIT = 4 * 1024 * 1024  # a wheel's RECORD: one line per installed file
KEY_NAMES = {"id_rsa", "id_dsa", "id_ecdsa", "id_ed25519"}
DEV_DIRS = {"tests_unit", "tests_image", "tests_stack", ".pytest_cache", ".mypy_cache",
            ".ruff_cache"}
LIBRARY = re.compile(r"/(?:site|dist)-packages(?:/|$)|^/usr(?:/local)?/lib/python3")
REQUIRED_LABELS = ("title", "version", "revision", "created", "source")
SHELLS = {"/bin/sh", "sh", "/bin/bash", "bash", "/bin/ash", "ash", "/bin/dash", "dash"}
PAIR = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)=(\"[^\"]*\"|'[^']*'|\S+)")
SHOWN = 10


#: Docker's PATH for a container whose image sets none.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: Bytes kept of each file in a bin/sbin directory: enough for a ``#!`` line (Linux reads 256).
HEAD = 256
BIN_DIRS = ("bin", "sbin")
#: What IG-RUN-NO-BUILD-TOOLS looks for on PATH.
BUILD_TOOLS = ("gcc", "cc", "make", "pip", "pip3", "apt-get", "dpkg")
#: Linux runs a script's interpreter, and its interpreter, up to this deep.
MAX_INTERPRETERS = 4
MAX_SYMLINKS = 40  # as Linux's MAXSYMLINKS
PIP_PACKAGE = re.compile(r"/(?:site|dist)-packages/pip$")
#: Shell builtins that only set state: best effort looks past them for the first real command.
SHELL_SETUP = {"set", "cd", "export", "umask", "ulimit", ":", "true", "trap", "unset", "shift",
               "echo", "printf", "readonly", "local", "wait"}
#: Shell syntax that makes "the first command" unknowable without running the shell.
SHELL_OPAQUE = {"if", "for", "while", "until", "case", "{", "(", "[", "[[", "test", "!", ".",
                "source", "eval", "exec", "command", "builtin", "function", "select"}


def keep_for_checks(path: str, size: int) -> bool | int:
    """The file contents the checks read: passwd/group and small key-like files whole, and the
    first 256 bytes of each file in a */bin or */sbin directory (a script's ``#!`` line), which
    bounds the memory to 256 bytes a file."""
    if path in TEXT_FILES:
        return True
    if size <= PEEK_LIMIT and path.endswith(KEY_SUFFIXES):
        return True
    if size <= RECORD_LIMIT and path.endswith(".dist-info/RECORD"):
        return True  # which installed distribution ships a file (IG-PACKAGED-KEYS)
    if posixpath.basename(posixpath.dirname(path)) in BIN_DIRS:
        return HEAD
    return False


def keep_for_image(config: Mapping[str, Any]) -> Keep:
    """:func:`keep_for_checks` plus the head of the image's own ENTRYPOINT/CMD program when it
    is named by path (``/docker-entrypoint.sh``, ``./run``), wherever it lives."""
    argv = _argv(config)[1]
    workdir = str(config.get("WorkingDir") or "/")
    named = ({posixpath.normpath(posixpath.join(workdir, argv[0]))}
             if argv and "/" in argv[0] else set())

    def keep(path: str, size: int) -> bool | int:
        wanted = keep_for_checks(path, size)
        return wanted if wanted or path not in named else HEAD
    return keep


#: Where :meth:`ImageFacts.load` keeps the files it read, by layer digests; the newest are kept.
FACTS_CACHE = STATE_DIR / "facts"
FACTS_KEPT = 32


def _files_key(attrs: Mapping[str, Any]) -> str | None:
    """What decides an image's files as read here: its layers' digests, the program its config
    names (see :func:`keep_for_image`) and this reading code. None without layer digests."""
    layers = (attrs.get("RootFS") or {}).get("Layers") or []
    if not layers:
        return None
    config = attrs.get("Config") or {}
    h = hashlib.sha256()
    for source in (Path(__file__), Path(layers_mod.__file__)):
        h.update(source.read_bytes())
    h.update(json.dumps([layers, _argv(config)[1][:1], config.get("WorkingDir") or "/"]).encode())
    return h.hexdigest()[:32]


def _cached_files(key: str | None) -> dict[str, FileInfo] | None:
    """The files cached under ``key``, or None (no key, no entry, or an unreadable one)."""
    if key is None:
        return None
    entry = FACTS_CACHE / f"{key}.json"
    try:
        rows = json.loads(entry.read_text())
    except (OSError, ValueError):
        return None
    with contextlib.suppress(OSError):
        os.utime(entry)  # recently used: kept by the pruning below
    return {path: FileInfo(path, kind, mode, uid, gid, size, layer, link,
                           base64.b64decode(content) if content is not None else None)
            for path, kind, mode, uid, gid, size, layer, link, content in rows}


def _cache_files(key: str | None, files: Mapping[str, FileInfo]) -> None:
    """Store ``files`` under ``key`` (atomically: a gate beside this one reads whole files only),
    then drop all but the FACTS_KEPT newest entries. A cache that cannot be written is skipped."""
    if key is None:
        return
    rows = [[f.path, f.type, f.mode, f.uid, f.gid, f.size, f.layer, f.linkname,
             base64.b64encode(f.content).decode() if f.content is not None else None]
            for f in files.values()]
    with contextlib.suppress(OSError):
        write_atomic(FACTS_CACHE / f"{key}.json", json.dumps(rows, separators=(",", ":")))
        entries = sorted(FACTS_CACHE.glob("*.json"), key=lambda p: p.stat().st_mtime,
                         reverse=True)
        for stale in entries[FACTS_KEPT:]:
            stale.unlink(missing_ok=True)


@dataclass(frozen=True)
class ImageFacts:
    """Everything the checks look at, gathered once per image."""

    ref: str
    attrs: Mapping[str, Any]
    history: tuple[Mapping[str, Any], ...]
    files: Mapping[str, FileInfo] = field(default_factory=dict)
    load_seconds: float = 0.0

    @classmethod
    def load(cls, cli: Any, image_ref: str) -> ImageFacts:
        """Inspect ``image_ref`` on ``cli``'s engine; read its saved layers (streamed to disk).

        The files are cached by the image's layer digests (content hashes: the same layers
        always hold the same files), so a gate on an unchanged image, or one that differs only
        in metadata such as a revision label, does not export and read the layers again.
        """
        started = time.monotonic()
        image = cli.images.get(image_ref)
        key = _files_key(image.attrs)
        files = _cached_files(key)
        if files is None:
            keep = keep_for_image(image.attrs.get("Config") or {})
            with tempfile.TemporaryDirectory(prefix="imagegate-save-") as tmp:
                saved = Path(tmp) / "image.tar"
                with open(saved, "wb") as out:
                    for chunk in image.save(chunk_size=1 << 20, named=False):
                        out.write(chunk)
                files = read_saved(saved, keep).files
            _cache_files(key, files)
        return cls(image_ref, image.attrs, tuple(image.history()), files,
                   time.monotonic() - started)

    @classmethod
    def from_parts(cls, attrs: Mapping[str, Any], history: Iterable[Mapping[str, Any]] = (),
                   files: Iterable[FileInfo] | Mapping[str, FileInfo] = (),
                   ref: str = "test") -> ImageFacts:
        """Facts from an inspect dict, a history list and files: what unit tests build."""
        found = dict(files) if isinstance(files, Mapping) else {f.path: f for f in files}
        return cls(ref, attrs, tuple(history), found)

    @property
    def config(self) -> Mapping[str, Any]:
        """The image's ``Config`` (user, env, cmd, healthcheck, labels …)."""
        return self.attrs.get("Config") or {}

    @property
    def user(self) -> str:
        """``Config.User`` as written (``10001:10001``, ``app``, or empty for root)."""
        return str(self.config.get("User") or "").strip()

    @property
    def env(self) -> dict[str, str]:
        """``Config.Env`` as a dict."""
        return dict(str(item).partition("=")[::2] for item in self.config.get("Env") or [])

    @property
    def path_dirs(self) -> list[str]:
        """The directories of the container's PATH (Docker's default when the image sets none)."""
        value = self.env.get("PATH", DEFAULT_PATH)
        return [d for d in value.split(":") if d.startswith("/")]

    @property
    def workdir(self) -> str:
        """``Config.WorkingDir``, ``/`` when unset."""
        return str(self.config.get("WorkingDir") or "/")

    def text(self, path: str) -> str:
        """The kept content of ``path`` as text, "" when absent or not kept."""
        info = self.files.get(path)
        return info.content.decode(errors="replace") if info and info.content else ""

    def runtime_ids(self) -> tuple[int | None, set[int], str]:
        """(uid, gids, problem) the container runs with, resolved like the engine does.

        A name is looked up in the image's own /etc/passwd; ``problem`` says why the uid could
        not be resolved (uid is then None).
        """
        name, _, group = self.user.partition(":")
        passwd = _table(self.text("/etc/passwd"))
        groups = _table(self.text("/etc/group"))
        if not name:
            return 0, {0}, ""
        # passwd: name:x:uid:gid:…   group: name:x:gid:member,member
        if name.isdigit():
            uid = int(name)
            entry = next((row for row in passwd.values() if row[2] == name), None)
        elif name in passwd and passwd[name][2].isdigit():
            entry = passwd[name]
            uid = int(entry[2])
        else:
            why = ("is not in the image's /etc/passwd" if "/etc/passwd" in self.files
                   else "cannot be resolved: the image has no /etc/passwd")
            return None, set(), f"USER {name!r} {why}"
        if group.isdigit():
            return uid, {int(group)}, ""
        if group:
            row = groups.get(group)
            if row is None or not row[2].isdigit():
                return None, set(), f"USER group {group!r} is not in the image's /etc/group"
            return uid, {int(row[2])}, ""
        gids = {int(entry[3])} if entry and len(entry) > 3 and entry[3].isdigit() else {0}
        login = entry[0] if entry else ""
        gids |= {int(row[2]) for row in groups.values()
                 if login and len(row) > 3 and login in row[3].split(",") and row[2].isdigit()}
        return uid, gids, ""


def check(check_id: str, **spec: Any) -> Callable[[Check], Check]:
    """Declare image check ``check_id`` on its function: its catalogue row (``spec``: title,
    stage, evidence, severities; see :func:`imagegate.checks.catalogue.check`), and the function
    the generic image suite runs on the image's facts."""
    return declare(check_id, facts="image", **spec)


def describe(check_id: str) -> str:
    """The one-line description of a registered check."""
    return (CHECKS[check_id].__doc__ or "").strip().splitlines()[0]


def run_checks(facts: ImageFacts, settings: Settings) -> list[Finding]:
    """Every registered check not on ``settings.ignore``; a crashing check becomes a failure."""
    out: list[Finding] = []
    for check_id, fn in CHECKS.items():
        if settings.ignored(check_id):
            continue
        try:
            result = fn(facts, settings)
        except Exception as exc:  # one broken check must not hide the others' results
            result = Finding(check_id, False, f"check crashed: {type(exc).__name__}: {exc}",
                             detail=traceback.format_exc())
        out.extend(result if isinstance(result, list) else [result])
    return [f for f in out if not settings.ignored(f.check_id)]


@check("IG-USER-NONROOT", title="the image's USER is a non-root user it can resolve",
       stage="image", evidence="image", baseline="warning", category="security")
def user_nonroot(facts: ImageFacts, settings: Settings) -> Finding:
    """The image runs as a non-root user the image itself can resolve."""
    cid, where = "IG-USER-NONROOT", "Config.User"
    if not facts.user:
        return Finding(cid, False, "Config.User is empty: the container runs as root "
                       "(expected a non-root USER, e.g. 10001:10001)", where)
    uid, _, problem = facts.runtime_ids()
    if uid is None:
        return Finding(cid, False, f"{problem}: the engine cannot start it", where)
    if uid == 0:
        return Finding(cid, False, f"USER {facts.user!r} is uid 0, i.e. root "
                       "(expected a non-root UID)", where)
    return Finding(cid, True, f"runs as uid {uid} (USER {facts.user})", where)


@check("IG-USER-NUMERIC", title='USER is a numeric UID (runAsNonRoot can verify it)',
       stage="image", evidence="image", baseline="warning", category="security")
def user_numeric(facts: ImageFacts, settings: Settings) -> Finding:
    """USER is a numeric UID, so Kubernetes runAsNonRoot can verify it."""
    cid, where = "IG-USER-NUMERIC", "Config.User"
    name = facts.user.partition(":")[0]
    if name.isdigit():
        return Finding(cid, True, f"USER {facts.user} is numeric", where)
    seen = f"USER {facts.user!r} is a name" if name else "no USER is set"
    return Finding(cid, False, f"{seen}: runAsNonRoot can only verify a numeric UID "
                   "(expected e.g. USER 10001:10001)", where)


@check("IG-HEALTHCHECK", title='the image has an exec-form HEALTHCHECK', stage="image",
       evidence="image", baseline="warning", category="reliability")
def healthcheck(facts: ImageFacts, settings: Settings) -> Finding:
    """A HEALTHCHECK in exec form (CMD, not CMD-SHELL, not NONE)."""
    cid, where = "IG-HEALTHCHECK", "Config.Healthcheck"
    test = list((facts.config.get("Healthcheck") or {}).get("Test") or [])
    expected = '(expected HEALTHCHECK CMD ["…"])'
    if not test:
        return Finding(cid, False, f"no HEALTHCHECK {expected}", where)
    if test[0] == "NONE":
        return Finding(cid, False, f"HEALTHCHECK NONE disables the health check {expected}", where)
    if test[0] == "CMD-SHELL":
        return Finding(cid, False, f"HEALTHCHECK is shell form ({one_line(' '.join(test[1:]), 40)}): "
                       f"it needs /bin/sh {expected}", where)
    return Finding(cid, True, f"HEALTHCHECK {one_line(' '.join(test[1:]), 40)}", where)


@check("IG-CMD-EXEC", title='CMD/ENTRYPOINT is exec form (PID 1 gets the signals)', stage="image",
       evidence="image", baseline="warning", category="reliability")
def cmd_exec(facts: ImageFacts, settings: Settings) -> Finding:
    """CMD/ENTRYPOINT in exec form, not wrapped in /bin/sh -c (PID 1 gets the signals)."""
    cid = "IG-CMD-EXEC"
    entrypoint = list(facts.config.get("Entrypoint") or [])
    cmd = list(facts.config.get("Cmd") or [])
    key, argv = ("Entrypoint", entrypoint) if entrypoint else ("Cmd", cmd)
    where = f"Config.{key}"
    if not argv:
        return Finding(cid, False, "no CMD or ENTRYPOINT (expected an exec-form CMD)", where)
    if argv[0] in SHELLS and len(argv) > 1 and argv[1] == "-c":
        return Finding(cid, False, f"{key} is shell form ({one_line(' '.join(argv), 40)}): /bin/sh is "
                       "PID 1 and swallows SIGTERM (expected exec form [\"…\"])", where)
    return Finding(cid, True, f"{key} {one_line(' '.join(argv), 40)}", where)


@check("IG-CMD-EXISTS", title='the CMD/ENTRYPOINT executable exists in the image', stage="image",
       evidence="layers", baseline="error", category="reliability")
def cmd_exists(facts: ImageFacts, settings: Settings) -> Finding:
    """The ENTRYPOINT/CMD program exists in the image, is executable, and so is its interpreter."""
    cid = "IG-CMD-EXISTS"
    key, argv = _argv(facts.config)
    where = f"Config.{key.title()}"
    if not argv:
        return Finding(cid, True, "no CMD or ENTRYPOINT: nothing to look for", where,
                       skipped="no CMD or ENTRYPOINT (IG-CMD-EXEC reports it)")
    found = find_program(facts, argv[0])
    if found.problem:
        return Finding(cid, False, f'{key} runs "{argv[0]}", which {found.problem}', where)
    shown = f'{key} runs "{argv[0]}" ({found.describe()})'
    if posixpath.basename(argv[0]) in {posixpath.basename(x) for x in SHELLS} \
            and len(argv) > 2 and argv[1] == "-c":
        word = first_command(argv[2])
        if word is None:
            return Finding(cid, True, f"{shown}; its command's first program is not "
                           "knowable without running it", where)
        inner = find_program(facts, word)
        if inner.problem:
            return Finding(cid, False, f'{key} runs "{argv[0]} -c {one_line(argv[2], 30)}", '
                           f'whose command "{word}" {inner.problem}', where)
        shown += f'; its command "{word}" ({inner.describe()})'
    return Finding(cid, True, one_line(shown, 200), where)


@check("IG-PORT-EXPOSED", title='the web port is EXPOSEd', stage="image", evidence="image",
       baseline="warning", category="maintainability")
def port_exposed(facts: ImageFacts, settings: Settings) -> Finding:
    """The web port is EXPOSEd (settings.web_port/tcp)."""
    want = f"{settings.web_port}/tcp"
    ports = sorted(facts.config.get("ExposedPorts") or {})
    ok = want in ports
    seen = ", ".join(ports) or "none"
    return Finding("IG-PORT-EXPOSED", ok, f"expected {want} exposed; exposed: {seen}",
                   "Config.ExposedPorts")


@check("IG-LABELS", title='OCI labels title, version, revision, created, source', stage="image",
       evidence="image", baseline="warning", category="maintainability")
def labels(facts: ImageFacts, settings: Settings) -> Finding:
    """OCI labels title, version, revision (git sha), created (RFC 3339), source (URL)."""
    have = facts.config.get("Labels") or {}
    problems = []
    for short in REQUIRED_LABELS:
        key = f"org.opencontainers.image.{short}"
        value = str(have.get(key) or "").strip()
        if not value:
            problems.append(f"{key} missing")
        elif short == "revision" and not re.fullmatch(r"[0-9a-f]{7,40}", value):
            problems.append(f"revision {value!r} is not a 7-40 hex git sha")
        elif short == "created" and not _rfc3339(value):
            problems.append(f"created {value!r} is not RFC 3339")
        elif short == "source" and not _url(value):
            problems.append(f"source {value!r} is not a URL")
    if problems:
        return Finding("IG-LABELS", False, "; ".join(problems), "Config.Labels")
    return Finding("IG-LABELS", True, "OCI labels present and well-formed", "Config.Labels")


@check("IG-SIZE-BUDGET", title='the image is within its size budget', stage="image",
       evidence="image", baseline="warning", user_set="size_budget_mb", category="maintainability")
def size_budget(facts: ImageFacts, settings: Settings) -> Finding:
    """The image size is within settings.size_budget_mb."""
    size = int(facts.attrs.get("Size") or 0)
    budget = settings.size_budget_mb * 1e6
    seen = f"{size / 1e6:.1f} MB, budget {settings.size_budget_mb:g} MB"
    if size <= budget:
        return Finding("IG-SIZE-BUDGET", True, f"image is {seen}", "Image.Size")
    top = sorted(facts.history, key=lambda h: -int(h.get("Size") or 0))[:5]
    layers = [f"{int(h.get('Size') or 0) / 1e6:.1f} MB {created_by(h)}" for h in top]
    return Finding("IG-SIZE-BUDGET", False,
                   f"image is {seen}; largest layers: " + "; ".join(layers), "Image.Size",
                   detail="\n".join(layers))


@check("IG-LAYER-BUDGET", title='the image is within its layer budget', stage="image",
       evidence="image", baseline="warning", user_set="layer_budget", category="maintainability")
def layer_budget(facts: ImageFacts, settings: Settings) -> Finding:
    """The number of filesystem layers is within settings.layer_budget."""
    layers = (facts.attrs.get("RootFS") or {}).get("Layers")
    count = len(layers) if layers is not None else sum(
        1 for h in facts.history if int(h.get("Size") or 0) > 0)
    ok = count <= settings.layer_budget
    return Finding("IG-LAYER-BUDGET", ok,
                   f"{count} filesystem layers, budget {settings.layer_budget}", "RootFS.Layers")


@check("IG-NO-SETUID", title='no setuid/setgid files', stage="image", evidence="layers",
       baseline="warning", category="security")
def no_setuid(facts: ImageFacts, settings: Settings) -> Finding:
    """No file carries the setuid or setgid bit."""
    found = [f"{f.path} ({f.mode & 0o7777:o})" for f in _sorted(facts)
             if f.type in ("file", "hardlink") and f.mode & 0o6000]
    return _listing("IG-NO-SETUID", found, "setuid/setgid files", "no setuid/setgid files")


def _secret_files(facts: ImageFacts) -> tuple[list[str], list[str]]:
    """The private-key-like files of the image: (the project's own, ``path (dist version)`` of
    those an installed distribution lists in its ``RECORD``)."""
    owners = packaged_files(facts)
    found = [f.path for f in _sorted(facts) if _secret_file(f)]
    return ([path for path in found if path not in owners],
            [f"{path} ({owners[path]})" for path in found if path in owners])


@check("IG-NO-SECRET-FILES", title='no .env, .git or private keys in the image', stage="image",
       evidence="layers", baseline="error", category="security")
def no_secret_files(facts: ImageFacts, settings: Settings) -> Finding:
    """No .env, .git, SSH private keys or *.pem/*.key files holding a PRIVATE KEY — of the
    project's own: a key an installed distribution ships is IG-PACKAGED-KEYS advice."""
    own, packaged = _secret_files(facts)
    return _listing("IG-NO-SECRET-FILES", _topmost(own), "secret files",
                    "no .env, .git or private key files"
                    + (f" of the project's own ({len(packaged)} shipped by installed "
                       "packages: IG-PACKAGED-KEYS)" if packaged else ""))


@check("IG-PACKAGED-KEYS", title="private keys in the image belong to no installed package's "
       "test fixtures (advice: public, not the project's secrets)", stage="image",
       evidence="layers", baseline="warning", hardened="warning")
def packaged_keys(facts: ImageFacts, settings: Settings) -> Finding:
    """No private key file shipped by an installed distribution (listed in its ``RECORD``: a
    library's test certificate, public): advice naming the package."""
    _, packaged = _secret_files(facts)
    if not packaged:
        return Finding("IG-PACKAGED-KEYS", True,
                       "no private key files shipped by installed packages")
    return Finding(
        "IG-PACKAGED-KEYS", False, f"{len(packaged)} private key files are shipped by "
        f"installed packages (public test fixtures, not this project's secrets): "
        + ", ".join(packaged[:SHOWN]) + (f" (+{len(packaged) - SHOWN} more)"
                                         if len(packaged) > SHOWN else "")
        + "; leave the package's tests out of the image if you can",
        packaged[0].split(" ")[0], detail="\n".join(packaged))


def packaged_files(facts: ImageFacts) -> dict[str, str]:
    """Every file an installed Python distribution lists in its ``RECORD``: path → ``name
    version`` of the distribution."""
    owners: dict[str, str] = {}
    for path, info in facts.files.items():
        if not path.endswith(".dist-info/RECORD") or not info.content:
            continue
        dist_info = posixpath.dirname(path)
        site = posixpath.dirname(dist_info)
        name, _, version = posixpath.basename(dist_info)[:-len(".dist-info")].partition("-")
        for line in info.content.decode(errors="replace").splitlines():
            listed = line.split(",", 1)[0].strip()
            if listed:
                owners[posixpath.normpath(posixpath.join(site, listed))] = f"{name} {version}"
    return owners


@check("IG-NO-TEST-OR-CACHE", title='no test suites or tool caches in the image', stage="image",
       evidence="layers", baseline="warning", category="maintainability")
def no_test_or_cache(facts: ImageFacts, settings: Settings) -> Finding:
    """No test suites, tool caches, pip or apt caches in the image (library tests are fine)."""
    found = [f.path for f in _sorted(facts) if _test_or_cache(f)]
    return _listing("IG-NO-TEST-OR-CACHE", _topmost(found), "test or cache paths",
                    "no test suites or caches")


@check("IG-NO-SECRET-ENV", title='no secrets in ENV, build args or history', stage="image",
       evidence="image", baseline="error", category="security")
def no_secret_env(facts: ImageFacts, settings: Settings) -> Finding:
    """No secret-looking ENV or build ARG values in the config or the layer history."""
    problems: list[str] = []
    for item in facts.config.get("Env") or []:
        name, _, value = str(item).partition("=")
        problem = secret_problem(name, value)
        if problem:
            problems.append(f"Config.Env {problem}")
    for index, entry in enumerate(facts.history):
        line = str(entry.get("CreatedBy") or entry.get("created_by") or "")
        found = [secret_problem(n, v) for n, v in PAIR.findall(line)]
        kind = credential_kind(line)
        found += [f"it holds {kind}"] if kind and not any(found) else []
        problems += [f"history[{index}] {p}" for p in found if p]
    problems = list(dict.fromkeys(problems))
    if not problems:
        return Finding("IG-NO-SECRET-ENV", True, "no secrets in env or history", "Config.Env")
    shown = "; ".join(problems[:SHOWN]) + (f" (+{len(problems) - SHOWN} more)"
                                            if len(problems) > SHOWN else "")
    return Finding("IG-NO-SECRET-ENV", False, f"expected no secrets in env/history: {shown}",
                   "Config.Env", detail="\n".join(problems))


@check("IG-APP-NOT-WRITABLE", title='the runtime user cannot write its WORKDIR', stage="image",
       evidence="layers", baseline="warning", category="security")
def app_not_writable(facts: ImageFacts, settings: Settings) -> Finding:
    """Nothing under WORKDIR is writable by the runtime user (owner, group or world)."""
    cid = "IG-APP-NOT-WRITABLE"
    workdir = str(facts.config.get("WorkingDir") or "").rstrip("/")
    if not workdir:
        return Finding(cid, True, "no WORKDIR (or /): no app directory to check", "WorkingDir")
    uid, gids, problem = facts.runtime_ids()
    if uid is None:
        return Finding(cid, False, f"{problem}: cannot tell who could write", workdir)
    if uid == 0:
        return Finding(cid, False, f"runs as root, which can write all of {workdir} "
                       "(expected a non-root USER)", workdir)
    found = []
    for f in _sorted(facts):
        if f.type == "symlink" or not (f.path == workdir or f.path.startswith(workdir + "/")):
            continue
        if f.uid == uid or (f.gid in gids and f.mode & 0o020) or f.mode & 0o002:
            found.append(f"{f.path} ({f.uid}:{f.gid} {f.mode & 0o7777:o})")
    return _listing(cid, found, f"paths under {workdir} writable by uid {uid}",
                    f"nothing under {workdir} is writable by uid {uid}")


# --- the image's filesystem as the engine and the kernel resolve it ------------------------------


@dataclass(frozen=True)
class Resolved:
    """Where a path leads in the image: the final path after symlinks, what is there, the links
    followed (``/usr/bin/python3 → python3.11``), and the problem when it leads nowhere."""

    path: str
    final: str
    info: FileInfo | None
    links: tuple[str, ...] = ()
    problem: str = ""  # "" when ``info`` is there

    @property
    def executable(self) -> bool:
        """A regular file with an exec bit (anyone's)."""
        return (self.info is not None and self.info.type in ("file", "hardlink")
                and bool(self.info.mode & 0o111))


def resolve_path(facts: ImageFacts, path: str) -> Resolved:
    """Follow ``path`` through the image's symlinks, component by component (absolute and
    relative targets, symlinked directories such as a merged-usr ``/bin``), loop-safe."""
    pending = [p for p in path.split("/") if p][::-1]  # next component last
    current, links = "/", list[str]()
    while pending:
        part = pending.pop()
        if part == ".":
            continue
        if part == "..":
            current = posixpath.dirname(current)
            continue
        candidate = posixpath.join(current, part)
        info = facts.files.get(candidate)
        if info is not None and info.type == "symlink":
            if len(links) >= MAX_SYMLINKS:
                return Resolved(path, candidate, None, tuple(links),
                                f"is a symlink loop ({'; '.join(links[:3])} …)")
            links.append(f"{candidate} → {info.linkname}")
            pending.extend([p for p in info.linkname.split("/") if p][::-1])
            if info.linkname.startswith("/"):
                current = "/"
            continue
        if info is not None and info.type != "dir" and pending:
            return Resolved(path, candidate, None, tuple(links),
                            f"is not there ({candidate} is not a directory)")
        current = candidate
    info = facts.files.get(current)
    if info is not None:
        return Resolved(path, current, info, tuple(links))
    if links:
        return Resolved(path, current, None, tuple(links),
                        f"is a dangling symlink ({'; '.join(links)}; {current} does not exist)")
    return Resolved(path, current, None, (), "is not in the image")


@dataclass(frozen=True)
class Program:
    """A program as the engine would find it: the path found (on PATH or as given), where it
    leads, the script interpreter it needs (when it is a ``#!`` script), or the problem."""

    name: str
    path: str = ""
    resolved: Resolved | None = None
    interpreter: Program | None = None
    problem: str = ""  # one phrase after "which …": "is not in the image (searched PATH …)"
    runs: Program | None = None  # for ``env``: the program it was asked to run

    def describe(self) -> str:
        """``/opt/venv/bin/gunicorn, a script for /opt/venv/bin/python3 → /usr/bin/python3.11``."""
        final = self.resolved.final if self.resolved else self.path
        text = self.path if final == self.path else f"{self.path} → {final}"
        if self.runs is not None:
            text += f" running {self.runs.name} = {self.runs.describe()}"
        if self.interpreter is not None:
            text += f", a script for {self.interpreter.describe()}"
        return text


def find_program(facts: ImageFacts, name: str, *, search: bool = True,
                 depth: int = 0) -> Program:
    """Find ``name`` the way the engine (or, for a ``#!`` interpreter, the kernel) would.

    A name with a slash is taken as a path (relative to WORKDIR); a bare name is searched on the
    image's PATH (``search``), skipping entries that are not executable files as Go's
    ``exec.LookPath`` does. The found file must have an exec bit the runtime user can use; a
    script's interpreter must be found too (``#!/usr/bin/env python3``: env, then python3 on
    PATH), up to Linux's four levels.
    """
    if "/" in name or not search:
        path = posixpath.normpath(posixpath.join(facts.workdir, name))
        return _program_at(facts, name, path, depth)
    searched = ":".join(facts.path_dirs) or "(empty)"
    broken = ""
    for folder in facts.path_dirs:
        path = posixpath.join(folder, name)
        resolved = resolve_path(facts, path)
        if resolved.executable:
            return _program_at(facts, name, path, depth, resolved)
        if not broken and resolved.problem != "is not in the image":
            broken = f"; {path} {resolved.problem or _not_executable(resolved)}"
    return Program(name, problem=f"is not in the image (searched PATH {searched}{broken})")


def _program_at(facts: ImageFacts, name: str, path: str, depth: int,
                resolved: Resolved | None = None) -> Program:
    """The program at ``path``: executable by the runtime user, its interpreter found."""
    resolved = resolved or resolve_path(facts, path)
    if resolved.problem:
        return Program(name, path, resolved, problem=resolved.problem
                       + ("" if path == name else f" (as {path})"))
    if not resolved.executable:
        return Program(name, path, resolved, problem=_not_executable(resolved))
    uid, gids, _ = facts.runtime_ids()
    info = resolved.info
    assert info is not None
    if uid is not None and uid != 0 and not _can_exec(info, uid, gids):
        return Program(name, path, resolved, problem=(
            f"uid {uid} cannot execute ({resolved.final} {info.uid}:{info.gid} "
            f"{info.mode & 0o7777:o})"))
    shebang = _shebang(info)
    if shebang is None:
        return Program(name, path, resolved)
    interp, arg = shebang
    if depth + 1 >= MAX_INTERPRETERS:
        return Program(name, path, resolved, problem=(
            f"is a script ({resolved.final}) nested more than {MAX_INTERPRETERS} "
            "interpreters deep"))
    runner = find_program(facts, interp, search=False, depth=depth + 1)
    if runner.problem:
        return Program(name, path, resolved, runner, problem=(
            f'is a script ({resolved.final}) whose interpreter "{interp}" {runner.problem}'))
    if posixpath.basename(interp) == "env":
        words = [w for w in arg.split() if not w.startswith("-") and "=" not in w]
        if words:
            target = find_program(facts, words[0], depth=depth + 1)
            if target.problem:
                return Program(name, path, resolved, runner, problem=(
                    f'is a script ({resolved.final}) run by "{interp} {arg}", and '
                    f'"{words[0]}" {target.problem}'))
            runner = Program(runner.name, runner.path, runner.resolved, runs=target)
    return Program(name, path, resolved, runner)


def _not_executable(resolved: Resolved) -> str:
    """Why a resolved path that is there cannot be executed."""
    info = resolved.info
    if info is None:
        return resolved.problem
    where = "" if resolved.final == resolved.path else f" ({resolved.final})"
    if info.type == "dir":
        return f"is a directory{where}"
    if info.type not in ("file", "hardlink"):
        return f"is a {info.type}{where}"
    final = "" if resolved.final == resolved.path else f"{resolved.final}, "
    return f"is not executable ({final}mode {info.mode & 0o7777:o})"


def _can_exec(info: FileInfo, uid: int, gids: set[int]) -> bool:
    """True when ``uid`` (in ``gids``) may execute ``info`` by its mode bits."""
    if info.uid == uid:
        return bool(info.mode & 0o100)
    if info.gid in gids:
        return bool(info.mode & 0o010)
    return bool(info.mode & 0o001)


def _shebang(info: FileInfo) -> tuple[str, str] | None:
    """(interpreter, optional argument) of a ``#!`` script, None for anything else (or when the
    file's head was not kept)."""
    head = info.content or b""
    if not head.startswith(b"#!"):
        return None
    line = head[2:].split(b"\n", 1)[0].decode(errors="replace").strip()
    interp, _, arg = line.partition(" ")
    return (interp, arg.strip()) if interp else None


def on_path(facts: ImageFacts, name: str) -> str | None:
    """Where ``name`` is found on the image's PATH (the first executable hit, symlinks followed
    to check it), or None. A name with a slash is checked as a path (relative to WORKDIR)."""
    if "/" in name:
        path = posixpath.normpath(posixpath.join(facts.workdir, name))
        return path if resolve_path(facts, path).executable else None
    for folder in facts.path_dirs:
        path = posixpath.join(folder, name)
        if resolve_path(facts, path).executable:
            return path
    return None


def tools_on_path(facts: ImageFacts, names: Iterable[str] = BUILD_TOOLS) -> dict[str, str]:
    """``{name: path}`` of each of ``names`` found on the image's PATH (evidence on disk)."""
    found = {name: on_path(facts, name) for name in names}
    return {name: path for name, path in found.items() if path}


def pip_in_image(facts: ImageFacts) -> list[str]:
    """The installed ``pip`` packages (``…/site-packages/pip`` or ``dist-packages/pip``)."""
    return [f.path for f in _sorted(facts) if f.type == "dir" and PIP_PACKAGE.search(f.path)]


@check("IG-RUN-NO-BUILD-TOOLS", title="no compiler, pip or package manager on PATH", stage="run",
       evidence="layers", baseline="warning", category="security")
def build_tools(facts: ImageFacts, settings: Settings) -> list[Finding]:
    """No compiler, pip or package manager resolves on the image's PATH (read from its files, as
    the container would resolve them): one finding per tool, naming where it is."""
    found = tools_on_path(facts)
    return ([Finding("IG-RUN-NO-BUILD-TOOLS", False, f"{tool} is on PATH in the final image "
                     f"({path})", path) for tool, path in found.items()]
            or [Finding("IG-RUN-NO-BUILD-TOOLS", True, f"none of {', '.join(BUILD_TOOLS)} on PATH "
                        f"{':'.join(facts.path_dirs)}")])


def first_command(script: str) -> str | None:
    """Best effort: the first program a ``sh -c`` script runs, past assignments, ``exec`` and
    state-setting builtins (``set -e; cd /app; exec gunicorn …`` → ``gunicorn``); None when
    shell syntax (``if``, ``$VAR``, a function) makes it unknowable without running it."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("#")]
    try:
        lexer = shlex.shlex(" ; ".join(lines), posix=True, punctuation_chars=";&|()<>")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words = list(lexer)
    except ValueError:
        return None
    start, moved = True, False
    for word in words:
        if set(word) <= set(";&|"):
            start = True
            continue
        if not start:
            continue
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", word):
            continue  # VAR=value before the command
        if word == "exec":
            continue
        if word in SHELL_SETUP:
            start, moved = False, moved or word == "cd"  # skip its arguments
            continue
        if word in SHELL_OPAQUE or any(c in word for c in "$`()<>{}*?"):
            return None
        if moved and "/" in word and not word.startswith("/"):
            return None  # relative to a directory `cd` changed to
        return word
    return None


def _argv(config: Mapping[str, Any]) -> tuple[str, list[str]]:
    """("ENTRYPOINT", entrypoint + cmd) or ("CMD", cmd): what the container runs."""
    entrypoint = [str(a) for a in config.get("Entrypoint") or []]
    cmd = [str(a) for a in config.get("Cmd") or []]
    return ("ENTRYPOINT", entrypoint + cmd) if entrypoint else ("CMD", cmd)


def _listing(cid: str, found: list[str], what: str, fine: str) -> Finding:
    """A pass saying ``fine``, or a failure listing up to 10 of ``found``."""
    if not found:
        return Finding(cid, True, fine)
    more = f" (+{len(found) - SHOWN} more)" if len(found) > SHOWN else ""
    return Finding(cid, False, f"expected no {what}, found {len(found)}: "
                   + ", ".join(found[:SHOWN]) + more, found[0].split(" ")[0],
                   detail="\n".join(found))


def _sorted(facts: ImageFacts) -> list[FileInfo]:
    """The image's files in path order."""
    return [facts.files[p] for p in sorted(facts.files)]


def _topmost(paths: list[str]) -> list[str]:
    """``paths`` (sorted) without those under an already listed directory."""
    out: list[str] = []
    for path in paths:
        if not any(path.startswith(top + "/") for top in out):
            out.append(path)
    return out


def _secret_file(f: FileInfo) -> bool:
    """A .git, a .env file, an SSH private key, or a small .pem/.key holding a PRIVATE KEY."""
    if f.name == ".git" or f.name in KEY_NAMES:
        return True
    if f.type != "dir" and _dotenv(f.name):
        return True
    return f.name.endswith(KEY_SUFFIXES) and b"PRIVATE KEY" in (f.content or b"")


def _test_or_cache(f: FileInfo) -> bool:
    """Our test suites and tool caches anywhere; app-level tests dirs; pip and apt caches."""
    if DEV_DIRS & set(f.path.split("/")):
        return True
    if f.type == "dir":
        # third-party packages and the stdlib legitimately ship tests: only app-level ones count
        return f.name in ("tests", "test") and not LIBRARY.search(f.path)
    return ("/.cache/pip/" in f.path
            or (f.path.startswith("/var/cache/apt/archives/") and f.name.endswith(".deb"))
            or (f.path.startswith("/var/lib/apt/lists/") and f.name != "lock"))


def _dotenv(name: str) -> bool:
    """``.env`` and ``.env.production``, not ``.env.example``-style templates."""
    if name == ".env":
        return True
    return name.startswith(".env.") and not name.endswith(
        (".example", ".sample", ".template", ".dist"))


def _table(text: str) -> dict[str, list[str]]:
    """An /etc/passwd or /etc/group file as {name: fields}."""
    rows = (line.split(":") for line in text.splitlines() if line and not line.startswith("#"))
    return {row[0]: row for row in rows if len(row) >= 3}


def _rfc3339(value: str) -> bool:
    """True for an RFC 3339 date-time: ``2024-05-01T12:00:00Z`` or with an offset."""
    if not re.fullmatch(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)", value):
        return False
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _url(value: str) -> bool:
    """True for an absolute URL with a host (https://github.com/org/repo)."""
    parsed = urlparse(value)
    return parsed.scheme in ("http", "https", "git", "ssh") and bool(parsed.netloc)


def created_by(entry: Mapping[str, Any], width: int = 60) -> str:
    """A history entry's ``CreatedBy`` shortened to its instruction (classic or BuildKit)."""
    text = " ".join(str(entry.get("CreatedBy") or "").split())
    if text.endswith(" # buildkit"):  # BuildKit: "RUN |1 A=b /bin/sh -c … # buildkit", "COPY …"
        text = text.removesuffix(" # buildkit")
        if text.startswith("RUN "):
            body = re.sub(r"^\|\d+ (\S+=\S* )*", "", text.removeprefix("RUN "))
            text = "RUN " + body.removeprefix("/bin/sh -c ")
    text = re.sub(r"^\|\d+ (\S+=\S* )*", "", text)  # build args the classic builder records
    if text.startswith("/bin/sh -c #(nop) "):
        text = text.removeprefix("/bin/sh -c #(nop) ").strip()
    elif text.startswith("/bin/sh -c "):
        text = "RUN " + text.removeprefix("/bin/sh -c ")
    return one_line(text or f"(imported: {entry.get('Comment') or 'no history'})", width)


_created_by = created_by  # the name tests_unit/test_policy.py imports



# --- IG-CA-BUNDLE: the CAs an image on imagegate's bases trusts ----------------------------------

CA_BUNDLE_PATH = "/etc/ssl/certs/ca-certificates.crt"  # in TEXT_FILES: kept whole


@check("IG-CA-BUNDLE",
       title="imagegate's bases trust Debian's CA set plus declared extra_ca_certs only",
       stage="image", evidence="layers", baseline="warning", category="reliability")
def ca_bundle(facts: ImageFacts, settings: Settings) -> Finding:
    """An image on imagegate's bases trusts Debian's CA set plus the declared extra_ca_certs only."""
    from imagegate.build import base
    from imagegate.errors import ImagegateError

    cid, where = "IG-CA-BUNDLE", CA_BUNDLE_PATH
    labels = facts.config.get("Labels") or {}
    if not labels.get(base.KIND_LABEL):
        # A stock base's bundle is its distribution's (and a company base's is its owner's).
        return Finding(cid, True, "not built on an imagegate base: its CA bundle is its base's",
                       where, skipped="not built on an imagegate base (no imagegate.base label)")
    version = str(labels.get(base.CA_LABEL) or "")
    if not version:
        return Finding(cid, False, f"its imagegate base has no {base.CA_LABEL} label: made by an "
                       "older imagegate that copied the build host's CA bundle (rebuild it with "
                       "`imagegate base --force`)", where)
    info = facts.files.get(CA_BUNDLE_PATH)
    if info is None:
        return Finding(cid, True, "no CA bundle: the image trusts no CA", where)
    if info.type not in ("file", "hardlink") or info.content is None:
        return Finding(cid, False, f"{CA_BUNDLE_PATH} is a {info.type}, not the bundle file "
                       "(expected the file the base wrote)", where)
    try:
        debian = {base.fingerprint(der) for _, pem in base.debian_ca_certs(version, log=_quiet)
                  for der in base.pem_certs(pem)}
        extras = base.load_extra_ca([settings.path(p) for p in settings.extra_ca_certs])
        found = base.pem_certs(info.content)
    except (ImagegateError, ValueError) as exc:
        text = exc.message if isinstance(exc, ImagegateError) else str(exc)
        return Finding(cid, False, f"cannot compare the bundle with Debian's set: {text}", where)
    declared = {base.fingerprint(der) for extra in extras for der in extra.certs}
    stray = [der for der in dict.fromkeys(found)
             if base.fingerprint(der) not in debian | declared]
    if stray:
        named = [f'"{_subject(der)}" {base.fingerprint(der)}' for der in stray]
        more = f" (+{len(named) - SHOWN} more)" if len(named) > SHOWN else ""
        return Finding(cid, False, f"expected only Debian's {base.CA_PACKAGE} {version} set plus "
                       f"extra_ca_certs, found {len(stray)} other CA(s): "
                       + "; ".join(named[:SHOWN]) + more, where, detail="\n".join(named))
    extra = sum(1 for der in found if base.fingerprint(der) in declared - debian)
    return Finding(cid, True, f"{len(found)} CAs: Debian's {base.CA_PACKAGE} {version} set"
                   + (f" plus {extra} declared extra" if extra else "") + ", nothing else", where)


def _subject(der: bytes) -> str:
    """A certificate's subject, or why it has none readable."""
    from imagegate.build import base

    try:
        return base.cert_subject(der)
    except ValueError as exc:
        return f"unreadable certificate: {exc}"


def _quiet(line: str) -> None:
    """A log that says nothing (the checks print nothing)."""
