"""The build half of the gate as plain functions: bases → wheelhouse → image.

The CLI (`imagegate base|build|gate`) and the pytest plugin's session fixture both call these, so
an image is made the same way whichever face asked for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from imagegate import build
from imagegate.build import base, wheelhouse
from imagegate.config.settings import Settings
from imagegate.engine import session_labels
from imagegate.model.dockerfile import assignments, from_images, parse

Log = Callable[[str], None]


def ensure_bases(settings: Settings, *, force: bool = False, log: Log = print) -> dict[str, str]:
    """Make the local base images the project uses; return {kind: image ref}.

    ``settings.bases`` names them; when it is empty, they are the local bases (imagegate/python,
    imagegate/redis) the Dockerfile's FROM lines name — a project FROM python:3.11-slim makes none.
    Their CA bundle gets ``settings.extra_ca_certs`` besides Debian's set.
    """
    kinds = settings.bases
    named: set[str] = set()
    if not kinds:
        _, dockerfile = build.project_paths(settings)
        if not dockerfile.is_file():
            return {}
        named = {ref.removeprefix("docker.io/")
                 for ref in from_images(dockerfile.read_text(), build_args(settings))}
        if not any(ref.partition(":")[0] in base.REPOS.values() for ref in named):
            return {}  # FROM python:3.11-slim & co: no local base to make (and no apt to ask)
    refs: dict[str, str] = {}
    extra_ca = tuple(settings.path(p) for p in settings.extra_ca_certs)
    for recipe in base.recipes("all"):
        if named and recipe.ref not in named:
            continue
        if not named and recipe.kind not in kinds:
            continue
        if settings.bases and recipe.kind == "python" and settings.python_image:
            continue  # the user brings their own Python base (e.g. python:3.12-slim)
        result = base.ensure_base(recipe, force=force, log=log, extra_ca=extra_ca)
        refs[recipe.kind] = result.ref
        log(f"base {result.ref}: {'built' if result.built else 'up to date'} "
            f"({result.packages} packages, {result.size / 1e6:.1f} MB)")
    return refs


def python_image(settings: Settings) -> str:
    """The Python base the app is built on: the configured one, or the local Debian-made one."""
    if settings.python_image:
        return settings.python_image
    return base.recipes("python")[0].ref


def redis_image() -> str:
    """The local Redis image's reference."""
    return base.recipes("redis")[0].ref


def build_args(settings: Settings) -> dict[str, str]:
    """The build args of every build of the project: ``PYTHON_IMAGE`` (only when the Dockerfile
    declares that ARG), its git facts (OCI labels), then ``settings.build_args`` (they win)."""
    args: dict[str, str] = {}
    _, dockerfile = build.project_paths(settings)
    if dockerfile.is_file():
        declared = {name for ins in parse(dockerfile.read_text()).instructions
                    if ins.keyword == "ARG" for name, _ in assignments(ins)}
        if "PYTHON_IMAGE" in declared:
            args["PYTHON_IMAGE"] = python_image(settings)
    return {**args, **build.git_facts(settings.project_dir), **settings.build_args}


def build_app(cli: Any, settings: Settings, session: str, *, log: Log = print) -> build.BuildResult:
    """FROM images per the pull policy, the wheelhouse (when ``locks`` are set), then the build
    with the configured builder, network (``hermetic``), target and pull; tags ``<repo>:local``."""
    context, dockerfile = build.project_paths(settings)
    args = build_args(settings)
    refs = build.ensure_from_images(cli, dockerfile, args, settings.pull, progress=log)
    if settings.locks:
        image = args.get("PYTHON_IMAGE") or (refs[0] if refs else python_image(settings))
        target = wheelhouse.detect_target(image, cli, session_labels(session))
        wheels = wheelhouse.ensure_wheelhouse(
            [settings.path(lock) for lock in settings.locks], target,
            context / settings.wheelhouse, log=log,
            compile=lambda sdist, deps: compile_on_target(cli, target, session, sdist, deps,
                                                          log=log),
        )
        log(f"wheelhouse: {len(wheels)} wheels for {target.key}")
    result = build.build(
        cli,
        context=context,
        dockerfile=dockerfile,
        tags=[f"{settings.repo}:local"],
        buildargs=args,
        labels={"imagegate.project": settings.repo},
        progress=log,
        **build.options(settings),
    )
    log(f"built {result.image_id[7:19]} as {settings.repo}:local with {result.builder} in "
        f"{result.seconds:.1f}s ({result.cached_steps}/{result.steps_count} steps cached)")
    return result


def compile_on_target(cli: Any, target: wheelhouse.Target, session: str, sdist: Any, deps: Any,
                      *, log: Log = print) -> Any:
    """Build an sdist with extensions for ``target`` in the build base (made on first use from
    Debian packages: the same Python as the local base), with no network; the wheel's path.
    A target it cannot serve (another Python ABI, an older glibc) is a clear error."""
    from imagegate.errors import WheelhouseError

    recipe = base.recipes("python-build")[0]
    made = base.ensure_base(recipe, log=log)
    if made.built:
        log(f"base {made.ref}: built ({made.packages} packages, {made.size / 1e6:.1f} MB)")
    labels = session_labels(session)
    have = wheelhouse.detect_target(made.ref, cli, labels)
    if have.abi != target.abi or have.arch != target.arch or \
            _version(have.libc_version) > _version(target.libc_version):
        raise WheelhouseError(
            f"{sdist.name} has extensions and no wheel for {target.key}; the build base "
            f"{made.ref} makes {have.key} wheels, which that target cannot load: use a base "
            "with the Debian suite's Python (the local base) or publish a wheel for it")
    return wheelhouse.compile_in_container(cli, made.ref, labels, sdist, deps)


def _version(text: str) -> tuple[int, ...]:
    """``2.36`` as (2, 36)."""
    return tuple(int(p) for p in text.split(".") if p.isdigit())


def build_services(cli: Any, settings: Settings, model: Any, gated: Sequence[str], *,
                   log: Log = print) -> dict[str, build.BuildResult]:
    """Build every service of ``model`` that has its own ``build:`` besides the gated image, as
    compose would (its context, Dockerfile, target and args), side by side; {service: result}.

    Each is tagged ``<repo>-<service>:local`` and labelled with the project and service; the
    settings' builder, network (``hermetic``) and pull policy apply as to the gated build.
    """
    from concurrent.futures import ThreadPoolExecutor

    from imagegate.model.compose import other_builds

    wanted = [(svc, spec) for svc, spec in other_builds(model, gated)]
    if not wanted:
        return {}
    options = {k: v for k, v in build.options(settings).items() if k not in ("target", "exclude")}

    def one(item: tuple[str, Any]) -> tuple[str, build.BuildResult]:
        svc, spec = item
        if spec.remote or spec.inline:
            from imagegate.errors import UsageError

            kind = "dockerfile_inline" if spec.inline else f"the remote context {spec.remote}"
            raise UsageError(f"{model.files[0].name}: service {svc} builds from {kind}; the "
                             "gate builds local Dockerfiles only")
        result = build.build(
            cli, context=spec.context, dockerfile=spec.dockerfile,
            tags=[f"{settings.repo}-{svc}:local"], buildargs=dict(spec.args),
            labels={"imagegate.project": settings.repo, "imagegate.service": svc},
            progress=log, target=spec.target, exclude=_outputs_in(settings, spec.context),
            **options)
        log(f"built {result.image_id[7:19]} for service {svc} ({spec.dockerfile.name} in "
            f"{_rel(spec.context, settings)}) with {result.builder} in {result.seconds:.1f}s")
        return svc, result

    with ThreadPoolExecutor(max_workers=min(4, len(wanted)), thread_name_prefix="build") as pool:
        return dict(pool.map(one, wanted))


def _outputs_in(settings: Settings, context: Any) -> list[str]:
    """The gate's report directory as an ignore pattern of ``context`` (when inside it)."""
    from pathlib import Path

    try:
        inside = settings.path(settings.report_dir).relative_to(Path(context).resolve())
    except ValueError:
        return []
    return [inside.as_posix()] if inside.parts else []


def _rel(path: Any, settings: Settings) -> str:
    """``path`` relative to the project (as given when outside it)."""
    from pathlib import Path

    try:
        return Path(path).relative_to(settings.project_dir.resolve()).as_posix() or "."
    except ValueError:
        return str(path)
