"""The two ways an image gets built: the classic builder (SDK) and BuildKit (the docker CLI).

A :class:`Builder` takes a :class:`BuildRequest` and gives a :class:`BuildResult` listing the
steps the builder reported and which of them came from its cache. Both builders stream their log,
hand each step line to a progress callback, and turn a failure into one line: the failing step and
its error, with the log tail as detail. What must hold *before* a build (FROM images present, the
pull policy) is :mod:`imagegate.build`'s job; this module only drives the builders.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from imagegate.config.settings import PULL_POLICIES
from imagegate.engine import IMAGE_LABEL
from imagegate.errors import BuildFailed, ImagegateError, UsageError
from imagegate.model.dockerfile import parse
from imagegate.proc import run
from imagegate.text import one_line

LOG_TAIL = 25
Progress = Callable[[str], None]
BUILDERS = ("auto", "buildkit", "classic")
NETWORKS = ("default", "none")
#: From this client version on, ``DOCKER_BUILDKIT=1 docker build`` needs the buildx plugin.
BUILDX_REQUIRED_FROM = 23
#: Where Debian's docker.io (20.10, built-in BuildKit) puts its CLI, whatever PATH says.
DEBIAN_DOCKER = "/usr/bin/docker"

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
CLASSIC_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
PLAIN_LINE = re.compile(r"^#(\d+) (.*)$")
PLAIN_STEP = re.compile(r"^\[(?:(?P<stage>[^\]]+?) )?(?P<i>\d+)/(?P<n>\d+)\] (?P<text>.*)$")
PLAIN_OUTPUT = re.compile(r"^\d+\.\d+(?: (.*))?$")
EXIT_CODE = re.compile(r"(?:exit code|non-zero code):? (\d+)")
#: What a step says when it could not reach the network (resolvers, pip, apt, curl, npm, go).
NETWORK_ERROR = re.compile(
    r"Temporary failure in name resolution|Temporary failure resolving|Could not resolve host"
    r"|Name or service not known|Network is unreachable|Failed to establish a new connection"
    r"|unable to resolve host|EAI_AGAIN|no such host|Could not connect to",
    re.IGNORECASE,
)
#: pip's last word when every index retry failed: a network error only if retries came first.
NO_DISTRIBUTION = re.compile(r"No matching distribution found", re.IGNORECASE)


@dataclass(frozen=True)
class Step:
    """One build step as the builder reported it.

    ``index`` is the step's position in :attr:`BuildResult.steps` (1-based, in the order the
    builder reported them); ``where`` is the builder's own label: ``3/10`` (classic ``Step 3/10``)
    or ``builder 3/9`` (BuildKit ``[builder 3/9]``). BuildKit reports no step for metadata-only
    instructions (LABEL, ENV, ARG…) and one shared step for identical FROMs.
    """

    index: int
    text: str
    cached: bool
    where: str = ""

    def __str__(self) -> str:
        return f"[{self.where}] {self.text}" if self.where else self.text


@dataclass(frozen=True)
class BuildRequest:
    """What to build and how; the same request means the same image whichever builder runs it."""

    context: Path
    dockerfile: Path
    tags: tuple[str, ...] = ()
    buildargs: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    target: str = ""
    #: ``default`` (the engine's default build network) or ``none`` (hermetic)
    network: str = "default"
    #: ``always`` makes the builder re-pull every FROM; ``missing``/``never`` are settled before
    #: the build by :func:`imagegate.build.ensure_from_images`.
    pull: str = "missing"
    no_cache: bool = False
    timeout: float = 900
    #: context-relative paths left out of the context beside the project's ignore file (the
    #: gate's own report directory: a build must not ship, or be invalidated by, its reports)
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.network not in NETWORKS:
            raise UsageError(f"build network {self.network!r}: expected one of {', '.join(NETWORKS)}")
        if self.pull not in PULL_POLICIES:
            raise UsageError(f"pull = {self.pull!r}: expected one of {', '.join(PULL_POLICIES)}")

    @property
    def all_labels(self) -> dict[str, str]:
        """The labels the image gets: the request's and ``imagegate.managed=true``."""
        return {IMAGE_LABEL: "true", **self.labels}


@dataclass(frozen=True)
class BuildResult:
    """A built image: its id, tags, how long it took, its steps and what the builder said."""

    image_id: str
    tags: tuple[str, ...]
    seconds: float
    steps: tuple[Step, ...]
    log: tuple[str, ...]
    builder: str

    @property
    def steps_count(self) -> int:
        """How many steps the builder reported."""
        return len(self.steps)

    @property
    def cached_steps(self) -> int:
        """How many of them came from the build cache."""
        return sum(1 for step in self.steps if step.cached)


class Builder(Protocol):
    """Something that turns a :class:`BuildRequest` into an image."""

    name: str

    def build(self, request: BuildRequest, progress: Progress) -> BuildResult:
        """Build; raise :class:`BuildFailed` (one line, log tail as detail) when it fails."""
        ...


# -- reading the builders' logs ---------------------------------------------------------------


@dataclass
class _Open:
    """A step while its log is being read."""

    where: str
    text: str
    cached: bool = False
    output: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Failure:
    """Where a build failed and what it said: the step (``[where] text``, or a builder phase such
    as ``resolve image config for …``), the step's own output lines and the builder's error."""

    where: str
    output: tuple[str, ...]
    error: str


class ClassicLog:
    """The classic builder's stream, line by line: ``Step N/M : …`` and ``---> Using cache``."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._steps: list[_Open] = []

    def feed(self, line: str) -> str | None:
        """Take one log line; return it when it starts a step (the progress line)."""
        line = ANSI.sub("", line).rstrip()
        self.lines.append(line)
        found = CLASSIC_STEP.match(line)
        if found:
            self._steps.append(_Open(f"{found.group(1)}/{found.group(2)}", found.group(3)))
            return line
        if not self._steps or not line.strip():
            return None
        stripped = line.strip()
        if stripped.startswith("--->"):
            if "Using cache" in stripped:
                self._steps[-1].cached = True
        elif not stripped.startswith("Removing intermediate container"):
            self._steps[-1].output.append(line)
        return None

    @property
    def steps(self) -> tuple[Step, ...]:
        """The steps read so far."""
        return tuple(Step(i, s.text, s.cached, s.where) for i, s in enumerate(self._steps, 1))

    def failure(self, error: str) -> Failure:
        """The builder stopped with ``error``: the classic builder runs one step at a time, so the
        failing step is the last one it started."""
        error = ANSI.sub("", error).strip()
        self.lines.append(error)
        if not self._steps:
            return Failure("", (), error)
        last = self._steps[-1]
        return Failure(f"[{last.where}] {last.text}", tuple(last.output), error)


@dataclass
class _Vertex:
    """One BuildKit vertex (``#N``) of plain progress."""

    name: str
    step: _Open | None
    error: str = ""


class PlainLog:
    """BuildKit's ``--progress=plain`` output, line by line.

    Each vertex ``#N`` is named on its first line (``#7 [builder 3/9] RUN …``); later ``#N``
    lines carry its output (``#7 0.118 text``), ``CACHED``, ``DONE 0.4s`` or ``ERROR: …``. Only
    vertices named ``[stage i/n]`` are steps; ``[internal] …``, ``exporting to image`` and the
    like are the builder's own work. Lines without ``#N`` are the closing error summary.
    """

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.trailer: list[str] = []
        self._vertices: dict[int, _Vertex] = {}
        self._steps: list[_Open] = []

    def feed(self, line: str) -> str | None:
        """Take one log line; return the step's name when it is a step seen for the first time."""
        line = ANSI.sub("", line).rstrip()
        self.lines.append(line)
        found = PLAIN_LINE.match(line)
        if not found:
            if line.strip():
                self.trailer.append(line.strip())
            return None
        number, rest = int(found.group(1)), found.group(2)
        vertex = self._vertices.get(number)
        if vertex is None:
            step_match = PLAIN_STEP.match(rest)
            step = None
            if step_match:
                where = f"{step_match['stage'] or ''} {step_match['i']}/{step_match['n']}".strip()
                step = _Open(where, step_match["text"])
                self._steps.append(step)
            self._vertices[number] = _Vertex(rest, step)
            return rest if step else None
        if rest == vertex.name or rest.startswith(("DONE", "sha256:")) or rest == "CANCELED":
            return None
        if rest == "CACHED":
            if vertex.step:
                vertex.step.cached = True
        elif rest.startswith("ERROR"):
            vertex.error = rest.partition(":")[2].strip() or rest
        else:
            output = PLAIN_OUTPUT.match(rest)
            if output and vertex.step:
                vertex.step.output.append(output.group(1) or "")
        return None

    @property
    def steps(self) -> tuple[Step, ...]:
        """The steps read so far."""
        return tuple(Step(i, s.text, s.cached, s.where) for i, s in enumerate(self._steps, 1))

    def failure(self) -> Failure:
        """The first vertex that reported an error (else the closing summary's last line)."""
        summary = next((line for line in reversed(self.trailer)
                        if line != "------" and not line.startswith(">")), "")
        for vertex in self._vertices.values():
            if vertex.error:
                if vertex.step:
                    where = f"[{vertex.step.where}] {vertex.step.text}"
                    return Failure(where, tuple(vertex.step.output), vertex.error)
                return Failure(vertex.name, (), vertex.error)
        return Failure("", (), summary or "(no output)")


# -- turning a failure into one line ----------------------------------------------------------


def explain(request: BuildRequest, failure: Failure, log: Sequence[str],
            builder: str) -> ImagegateError:
    """The one-line error for a failed build: a ``# syntax=`` frontend that could not be fetched,
    else the failing step and its telling line, plus what to change when a network error happened
    in a build that had no network. ``detail`` is the last :data:`LOG_TAIL` log lines."""
    name = request.dockerfile.name
    detail = "\n".join(log[-LOG_TAIL:])
    frontend = _syntax_failure(request, failure) if builder != "classic" else None
    if frontend is not None:
        return UsageError(frontend, detail=detail)
    told = [line.strip() for line in failure.output
            if line.strip() and not line.strip().startswith("[notice]")]
    code = EXIT_CODE.search(failure.error)
    where = one_line(failure.where, 100) or "build"
    if code and told:
        message = f"{name}: {where} failed (exit code {code.group(1)}): {one_line(told[-1], 200)}"
    else:
        message = f"{name}: {where} failed: {one_line(failure.error, 300)}"
    runs = failure.where.partition("] ")[2].startswith("RUN")  # only RUN uses the build network
    if request.network == "none" and runs and is_network_error([*failure.output, failure.error]):
        message += ("; the build ran with no network (hermetic = true): set hermetic = false, or "
                    "vendor the dependencies (locks = [...] fills the wheelhouse)")
    return BuildFailed(message, detail=detail)


def is_network_error(lines: Sequence[str]) -> bool:
    """True when ``lines`` show a failed name lookup or connection (not merely a failed step)."""
    text = "\n".join(lines)
    if NETWORK_ERROR.search(text):
        return True
    return bool(NO_DISTRIBUTION.search(text)) and "Retrying" in text


def frontend_line(request: BuildRequest) -> tuple[int, str] | None:
    """(line, image) of the Dockerfile's ``# syntax=`` directive, if it has one."""
    try:
        directives = parse(request.dockerfile.read_text()).directives
    except OSError:
        return None
    found = directives.get("syntax")
    return (found[0], found[1]) if found and found[1] else None


def frontend_message(request: BuildRequest, why: str) -> str:
    """The one line for a ``# syntax=`` frontend image that could not be had, and why."""
    line, image = frontend_line(request) or (1, "?")
    return (f"{request.dockerfile.name}:{line}: '# syntax={image}' needs the BuildKit frontend "
            f"image {image}, which could not be fetched ({why}); remove the line or make that "
            "image available")


def _syntax_failure(request: BuildRequest, failure: Failure) -> str | None:
    """The frontend message when the build failed fetching the ``# syntax=`` image."""
    directive = frontend_line(request)
    if directive is None:
        return None
    image = directive[1].split("@")[0]
    fetching = failure.where.startswith(("resolve image config for", "docker-image://"))
    if not (fetching and image in failure.where):
        return None
    return frontend_message(request, one_line(failure.error, 240))



# -- the builders -----------------------------------------------------------------------------


def ignore_lines(path: Path) -> list[str]:
    """The patterns of an ignore file as docker reads them (blank lines and comments dropped);
    none when there is no such file."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def dockerignored(context: Path) -> Callable[[str], bool]:
    """Whether a context-relative path is left out by the context's ``.dockerignore`` (its
    patterns and what lies under them; a later ``!`` pattern keeps a path)."""
    import fnmatch

    patterns = ignore_lines(context / ".dockerignore")

    def ignored(rel: str) -> bool:
        left_out = False
        for pattern in patterns:
            keep = pattern.startswith("!")
            bare = pattern.lstrip("!").strip("/").removeprefix("**/")
            if fnmatch.fnmatchcase(rel, bare) or rel.startswith(bare + "/") or \
                    fnmatch.fnmatchcase(rel.rsplit("/", 1)[-1], bare):
                left_out = not keep
        return left_out

    return ignored


@dataclass
class ContextTar:
    """The classic builder's context: a tar of the context directory as ``docker build`` makes
    it (``.dockerignore`` applied, the Dockerfile always in), minus the request's ``exclude``."""

    fileobj: Any
    dockerfile: str

    def close(self) -> None:
        self.fileobj.close()


def classic_context(request: BuildRequest) -> ContextTar:
    """The tar the SDK would send for ``request``, with ``request.exclude`` left out too."""
    from docker.api.build import process_dockerfile
    from docker.utils import tar

    exclude = [*ignore_lines(request.context / ".dockerignore"), *request.exclude]
    name, content = process_dockerfile(str(request.dockerfile.resolve()), str(request.context))
    return ContextTar(tar(str(request.context), exclude=exclude or None,
                          dockerfile=(name, content)), name)


def ignore_beside(request: BuildRequest, tmp: Path) -> Path | None:
    """For BuildKit: a copy of the Dockerfile in ``tmp`` with a ``<Dockerfile>.dockerignore``
    beside it (BuildKit prefers that file to the context's ``.dockerignore``) holding the
    project's patterns plus ``request.exclude``; None when there is nothing to add."""
    if not request.exclude:
        return None
    own = request.dockerfile.with_name(request.dockerfile.name + ".dockerignore")
    patterns = ignore_lines(own if own.is_file() else request.context / ".dockerignore")
    copy = tmp / "dockerfile" / request.dockerfile.name
    copy.parent.mkdir()
    copy.write_bytes(request.dockerfile.read_bytes())
    copy.with_name(copy.name + ".dockerignore").write_text(
        "\n".join([*patterns, *request.exclude]) + "\n")
    return copy


class ClassicBuilder:
    """The engine's classic builder through the docker SDK (``cli.api.build``)."""

    name = "classic"

    def __init__(self, cli: Any) -> None:
        self.cli = cli

    def build(self, request: BuildRequest, progress: Progress) -> BuildResult:
        """Stream the build; steps from ``Step N/M``, cache hits from ``---> Using cache``."""
        import docker.errors
        from docker.utils import parse_repository_tag

        started = time.monotonic()
        parsed = ClassicLog()
        image_id, pending = "", ""
        tags = list(request.tags)

        def feed(text: str) -> None:
            nonlocal pending
            pending += text
            *complete, pending = pending.split("\n")
            for line in complete:
                if parsed.feed(line) is not None:
                    progress(line.rstrip())

        context = classic_context(request)
        try:
            stream = self.cli.api.build(
                fileobj=context.fileobj, custom_context=True, dockerfile=context.dockerfile,
                tag=tags[0] if tags else None, buildargs=dict(request.buildargs),
                labels=request.all_labels, target=request.target or None,
                network_mode="none" if request.network == "none" else None,
                pull=request.pull == "always", nocache=request.no_cache,
                rm=True, forcerm=True, decode=True, timeout=int(request.timeout),
            )
            for chunk in stream:
                if "error" in chunk:
                    feed("\n")
                    failure = parsed.failure(str(chunk["error"]))
                    raise explain(request, failure, parsed.lines, self.name)
                if chunk.get("stream"):
                    feed(str(chunk["stream"]))
                aux = chunk.get("aux") or {}
                if aux.get("ID"):
                    image_id = aux["ID"]  # the last one is the final stage's image
                if time.monotonic() - started > request.timeout:
                    raise BuildFailed(f"{request.dockerfile.name}: build timed out after "
                                      f"{request.timeout:g}s", detail="\n".join(parsed.lines[-LOG_TAIL:]))
            feed("\n")
        except docker.errors.APIError as exc:
            raise BuildFailed(
                f"{request.dockerfile.name}: the engine refused the build: {exc.explanation}",
                detail="\n".join(parsed.lines[-LOG_TAIL:])) from None
        finally:
            context.close()
        if not image_id:
            raise BuildFailed(f"{request.dockerfile.name}: build produced no image",
                              detail="\n".join(parsed.lines[-LOG_TAIL:]))
        image = self.cli.images.get(image_id)
        for ref in tags[1:]:
            repo, tag = parse_repository_tag(ref)
            image.tag(repo, tag or "latest")
        return BuildResult(image_id, tuple(tags), time.monotonic() - started, parsed.steps,
                           tuple(parsed.lines), self.name)


class BuildKitBuilder:
    """BuildKit through the docker CLI: ``docker buildx build --load`` when ``buildx``, else
    ``DOCKER_BUILDKIT=1 docker build`` (a client older than 23 has BuildKit built in).

    The CLI inherits the environment (``DOCKER_HOST``, ``DOCKER_CONTEXT``, ``DOCKER_CONFIG``…), so
    it talks to the engine the SDK talks to. The image id is read back from ``--iidfile``.
    """

    def __init__(self, docker: str, buildx: bool = False) -> None:
        self.docker = docker
        self.buildx = buildx
        self.name = "buildx" if buildx else "buildkit"

    def argv(self, request: BuildRequest, iidfile: Path, dockerfile: Path | None = None,
             ) -> list[str]:
        """The CLI's argument list for ``request`` (no shell, ever); ``dockerfile``: the copy
        of the Dockerfile that carries the request's ignore file (see :func:`ignore_beside`)."""
        cmd = [self.docker, *(["buildx", "build", "--load"] if self.buildx else ["build"]),
               "--progress=plain", "--iidfile", str(iidfile),
               "-f", str(dockerfile or request.dockerfile)]
        for tag in request.tags:
            cmd += ["-t", tag]
        if request.target:
            cmd += ["--target", request.target]
        for key, value in request.buildargs.items():
            cmd += ["--build-arg", f"{key}={value}"]
        for key, value in request.all_labels.items():
            cmd += ["--label", f"{key}={value}"]
        if request.network == "none":
            cmd += ["--network", "none"]
        if request.pull == "always":
            cmd.append("--pull")
        if request.no_cache:
            cmd.append("--no-cache")
        cmd.append(str(request.context))
        return cmd

    def env(self) -> dict[str, str]:
        """The caller's environment, with BuildKit switched on for a plain ``docker build``."""
        return dict(os.environ) if self.buildx else {**os.environ, "DOCKER_BUILDKIT": "1"}

    def build(self, request: BuildRequest, progress: Progress) -> BuildResult:
        """Run the CLI, streaming its plain progress; the image id comes from the iidfile."""
        started = time.monotonic()
        parsed = PlainLog()
        name = request.dockerfile.name
        with tempfile.TemporaryDirectory(prefix="imagegate-build-") as tmp:
            iidfile = Path(tmp) / "iid"
            argv = self.argv(request, iidfile, ignore_beside(request, Path(tmp)))
            try:
                proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=self.env(), text=True,
                                        errors="replace", bufsize=1)
            except OSError as exc:
                raise BuildFailed(f"{name}: cannot run {self.docker}: {exc.strerror}") from None
            expired = threading.Event()

            def kill() -> None:
                expired.set()
                proc.kill()

            timer = threading.Timer(request.timeout, kill)
            timer.start()
            try:
                assert proc.stdout is not None
                for line in proc.stdout:
                    step = parsed.feed(line)
                    if step is not None:
                        progress(step)
                rc = proc.wait()
            finally:
                timer.cancel()
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                if proc.stdout is not None:
                    proc.stdout.close()  # else a ResourceWarning under the user's -W error
            tail = "\n".join(parsed.lines[-LOG_TAIL:])
            if expired.is_set():
                raise BuildFailed(f"{name}: build timed out after {request.timeout:g}s", detail=tail)
            if rc != 0:
                raise explain(request, parsed.failure(), parsed.lines, self.name)
            image_id = iidfile.read_text().strip() if iidfile.is_file() else ""
        if not image_id:
            raise BuildFailed(f"{name}: build produced no image (empty --iidfile)", detail=tail)
        return BuildResult(image_id, tuple(request.tags), time.monotonic() - started,
                           parsed.steps, tuple(parsed.lines), self.name)


# -- choosing a builder -----------------------------------------------------------------------


@dataclass(frozen=True)
class CliProbe:
    """What one docker CLI can do: its client version and whether it has the buildx plugin."""

    path: str
    version: str
    buildx: bool

    @property
    def major(self) -> int | None:
        """The client's major version (None when ``docker --version`` said nothing usable)."""
        head = self.version.split(".", 1)[0]
        return int(head) if head.isdigit() else None

    @property
    def builtin_buildkit(self) -> bool:
        """True when ``DOCKER_BUILDKIT=1 docker build`` uses BuildKit without buildx (< 23)."""
        return self.major is not None and self.major < BUILDX_REQUIRED_FROM

    def why_not(self) -> str:
        """Why this CLI does not build with BuildKit."""
        if self.major is None:
            return f"{self.path}: `docker --version` failed"
        return (f"{self.path} {self.version}: no buildx plugin, and from "
                f"{BUILDX_REQUIRED_FROM} on DOCKER_BUILDKIT=1 needs it")


def docker_clis(path_env: str | None = None) -> tuple[str, ...]:
    """Every ``docker`` on PATH (in PATH order, one per real file), then Debian's /usr/bin/docker."""
    dirs = (os.environ.get("PATH", "") if path_env is None else path_env).split(os.pathsep)
    found: list[str] = []
    seen: set[str] = set()
    for candidate in [*(os.path.join(d or ".", "docker") for d in dirs), DEBIAN_DOCKER]:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            real = os.path.realpath(candidate)
            if real not in seen:
                seen.add(real)
                found.append(candidate)
    return tuple(found)


def probe_cli(path: str, runner: Callable[..., subprocess.CompletedProcess[str]] = run) -> CliProbe:
    """Ask one docker CLI its client version and whether ``docker buildx version`` works (both
    questions at once: each is a CLI start, on every gate's way to its build)."""
    from concurrent.futures import ThreadPoolExecutor

    def ask(*args: str) -> subprocess.CompletedProcess[str] | None:
        try:
            return runner([path, *args], timeout=15, check=False)
        except ImagegateError:  # timed out or vanished
            return None

    with ThreadPoolExecutor(2, thread_name_prefix="cli") as pool:
        asked = pool.submit(ask, "--version"), pool.submit(ask, "buildx", "version")
        out, plugin = (future.result() for future in asked)
    found = re.search(r"version ([^\s,]+)", out.stdout) if out is not None else None
    version = found.group(1) if found and out is not None and out.returncode == 0 else ""
    return CliProbe(path, version, plugin is not None and plugin.returncode == 0)


@functools.cache
def _probe_cached(path: str) -> CliProbe:
    """:func:`probe_cli`, once per CLI per process."""
    return probe_cli(path)


def choose(probes: Sequence[CliProbe]) -> CliProbe | None:
    """The CLI BuildKit builds go through: one with buildx, else one with built-in BuildKit."""
    return (next((p for p in probes if p.buildx), None)
            or next((p for p in probes if p.builtin_buildkit), None))


def select_builder(setting: str, cli: Any, *, probes: Sequence[CliProbe] | None = None) -> Builder:
    """The builder for ``setting``: ``classic``; ``buildkit`` (a UsageError when no CLI can);
    ``auto`` — BuildKit when a CLI can (buildx first), else classic; always classic on podman
    (:func:`podman`). CLIs are probed once."""
    if setting not in BUILDERS:
        raise UsageError(f"builder = {setting!r}: expected one of {', '.join(BUILDERS)}")
    if setting == "classic" or (setting == "auto" and podman(cli)):
        return ClassicBuilder(cli)
    if probes is None:
        from concurrent.futures import ThreadPoolExecutor

        clis = docker_clis()
        with ThreadPoolExecutor(max(1, len(clis)), thread_name_prefix="clis") as pool:
            probes = list(pool.map(_probe_cached, clis))  # every CLI at once, in PATH order
    chosen = choose(probes)
    if chosen is not None:
        return BuildKitBuilder(chosen.path, chosen.buildx)
    if setting == "buildkit":
        tried = "; ".join(p.why_not() for p in probes) or "no docker CLI on PATH"
        raise UsageError(f'builder = "buildkit" but no docker CLI builds with BuildKit ({tried}); '
                         'install the buildx plugin, or set builder = "auto" or "classic"')
    return ClassicBuilder(cli)


def podman(cli: Any) -> bool:
    """True when ``cli``'s engine is podman (its ``/version`` names a "Podman Engine"): its Docker
    API builds with buildah behind ``/build`` and has no BuildKit session, so a BuildKit CLI
    fails there ("unable to upgrade to h2c, received 404")."""
    try:
        components = cli.version().get("Components") or []
    except Exception:  # no engine to ask (builder_name) or a fake: not podman
        return False
    return any("podman" in str(c.get("Name", "")).lower() for c in components)


def builder_name(setting: str) -> str:
    """The builder ``setting`` selects on this machine (``classic``, ``buildkit`` or ``buildx``),
    without an engine: what a lint rule about BuildKit-only syntax needs to know."""
    return select_builder(setting, None).name
