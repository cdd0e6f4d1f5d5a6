"""The running-container checks (IG-RUN-*) shown failing on real containers, each on an image
made to break it.

Each variant is the project's Dockerfile with one edit (most layers come from the build cache),
or the real image run with one setting changed. The generic image checks then run on it in a
subprocess exactly as the gate runs them (their isolated ini, ``--imagegate-image``), and the
test reads the findings file: the check fails with its own message — not a fixture error, not a
skip — and exactly the expected IG-RUN-* ids fail (a variant that breaks more proves less).
The variants are built and run four at a time, once per module, each as the image alone
(``compose_file = "none"``); ``test_run_checks_judge_the_container_as_compose_runs_it`` shows
the same checks on a container as compose runs it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from dockerfile_edits import before_user, drop_instruction, replace_line

from imagegate.checks.catalogue import stage_ids
from testsupport.generic import run_generic

pytestmark = [pytest.mark.image, pytest.mark.slow,
              pytest.mark.xdist_group("mutations_running")]  # one module fixture: one worker

#: Probes a path the app does not serve: the container goes unhealthy within seconds.
FAILING_HEALTHCHECK = (
    "HEALTHCHECK --interval=1s --timeout=1s --start-period=1s --retries=1 "
    'CMD ["python3", "-c", "import urllib.request; '
    "urllib.request.urlopen('http://127.0.0.1:8000/nope', timeout=1)\"]"
)
#: Healthy only once PID 1 has run for 4 s (kernel clock: /proc/1/stat vs /proc/uptime), with a
#: 1 s start period and retries enough never to go unhealthy: healthy, but after its start period.
LATE_HEALTHCHECK = (
    "HEALTHCHECK --interval=1s --timeout=2s --start-period=1s --retries=60 "
    'CMD ["python3", "-c", "import os, sys, urllib.request; '
    "began = int(open('/proc/1/stat').read().rsplit(')', 1)[1].split()[19]) "
    "/ os.sysconf('SC_CLK_TCK'); up = float(open('/proc/uptime').read().split()[0]); "
    "sys.exit(1) if up - began < 4 else "
    "urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)\"]"
)
INSTALL_PIP = ("COPY --from=builder /wheels/ /tmp/wheels/\n"
               'RUN set -eux; set -- /tmp/wheels/pip-*.whl; '
               '/opt/venv/bin/python "$1/pip" install --no-index "$1"; rm -rf /tmp/wheels')
#: A distribution whose requirement is not installed: what `pip check` exists to catch.
BROKEN_REQUIREMENT = (
    "RUN set -eux; d=/opt/venv/lib/python3.11/site-packages/imagegate_broken-1.0.dist-info; "
    'mkdir "$d"; printf "Metadata-Version: 2.1\\nName: imagegate-broken\\nVersion: 1.0\\n'
    'Requires-Dist: imagegate-missing-dependency\\n" > "$d/METADATA"')


def with_healthcheck(line: str) -> Callable[[str], str]:
    """A mutation swapping the final stage's HEALTHCHECK for ``line``."""
    return lambda t: replace_line(drop_instruction(t, "HEALTHCHECK "), "EXPOSE ",
                                  f"EXPOSE 8000\n{line}")


@dataclass(frozen=True)
class Variant:
    """An image made to break some IG-RUN-* checks, and what each must then say."""

    mutate: Callable[[str], str] | None  # None: the real image
    fails: dict[str, str]  # check id -> text its failing finding's message contains
    args: tuple[str, ...] = ()  # extra flags of the generic run


VARIANTS: dict[str, Variant] = {
    "root-user": Variant(lambda t: replace_line(t, "USER ", "USER 0:0"), {
        "IG-RUN-USER-NONROOT": "commands in the container run as uid 0 (root)",
        "IG-RUN-PROCS-NONROOT": "processes run as uid 0: pid ",
        "IG-RUN-APP-NOT-WRITABLE": "paths under /srv/app are writable by the app user",
    }),
    "app-owned-by-user": Variant(lambda t: before_user(t, "RUN chown -R 10001:10001 /srv/app"), {
        "IG-RUN-APP-NOT-WRITABLE": "paths under /srv/app are writable by the app user",
    }),
    "pip-installed": Variant(lambda t: before_user(t, INSTALL_PIP), {
        "IG-RUN-NO-PIP-MODULE": "can import pip (/opt/venv/lib/python3.11/site-packages/pip)",
        "IG-RUN-NO-BUILD-TOOLS": "pip is on PATH in the final image (/opt/venv/bin/pip)",
    }),
    "port-8001": Variant(lambda t: before_user(t, "ENV PORT=8001"), {
        "IG-RUN-PORT-LISTENING": "expected a listener on port 8000; listening: 0.0.0.0:8001",
        "IG-RUN-HTTP-HEALTH": "GET /healthz through http://127.0.0.1:",
    }),
    "unhealthy": Variant(with_healthcheck(FAILING_HEALTHCHECK), {
        "IG-RUN-HEALTHY": "went unhealthy",
    }),
    "healthy-after-start-period": Variant(with_healthcheck(LATE_HEALTHCHECK), {
        "IG-RUN-HEALTHY": "after start; start period is 1s",
    }),
    "broken-requirement": Variant(lambda t: before_user(t, BROKEN_REQUIREMENT), {
        "IG-RUN-PIP-CHECK": "imagegate-broken 1.0 requires imagegate-missing-dependency, which "
                            "is not installed",
    }),
    # the real image, whose health_path is set to a route that needs Redis (absent here)
    "readyz-as-health-path": Variant(None, {
        "IG-RUN-HTTP-HEALTH": "GET /readyz: expected 2xx, got 503",
    }, ("--imagegate-health-path", "/readyz")),
}
CASES = [pytest.param(check_id, name, says, id=f"{check_id}-{name}",
                      marks=pytest.mark.shows_failing(check_id))
         for name, variant in VARIANTS.items() for check_id, says in variant.fails.items()]


@pytest.fixture(scope="module")
def generic_runs(build_variant: Any, app_image: str, imagegate_settings: Any,
                 imagegate_session: str, tmp_path_factory: pytest.TempPathFactory,
                 ) -> dict[str, tuple[list[dict[str, Any]], str]]:
    """{variant: (findings, output)}: every variant built, then the generic checks run on each
    (builds and runs four at a time)."""
    started = time.monotonic()

    def image(name: str) -> str:
        mutate = VARIANTS[name].mutate
        return str(build_variant(mutate)) if mutate else app_image

    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="build") as pool:
        images = dict(zip(VARIANTS, pool.map(image, VARIANTS), strict=True))
    built = time.monotonic() - started

    def one(name: str) -> tuple[list[dict[str, Any]], str, float]:
        # The image alone (compose_file none): this repo's compose hardening (read_only, a
        # fixed user) would hide the very defects each variant builds into the image.
        return run_generic("image", image=images[name], session=f"{imagegate_session}-{name}",
                           project_dir=imagegate_settings.project_dir,
                           rootdir=tmp_path_factory.mktemp(name),
                           args=("--imagegate-compose-file", "none", *VARIANTS[name].args),
                           timeout=300)

    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="variant") as pool:
        done = dict(zip(VARIANTS, pool.map(one, VARIANTS), strict=True))
    print(f"\nIG-RUN-* variants: {len(images)} images in {built:.1f}s, checks "
          + ", ".join(f"{name} {secs:.1f}s" for name, (_, _, secs) in done.items())
          + f"; {time.monotonic() - started:.1f}s in all")
    return {name: (found, output) for name, (found, output, _) in done.items()}


@pytest.mark.parametrize(("check_id", "variant", "says"), CASES)
def test_running_check_fails_on_an_image_made_to_break_it(
        check_id: str, variant: str, says: str,
        generic_runs: dict[str, tuple[list[dict[str, Any]], str]]) -> None:
    """The check fails with its own message (an assertion of the check, not a fixture error
    or a skip), and the variant fails exactly the IG-RUN-* ids it was made to break."""
    found, output = generic_runs[variant]
    run = [f for f in found if f["check_id"] in stage_ids("run")]
    assert {f["check_id"] for f in run} == set(stage_ids("run")), output
    broken = [f for f in found if f["message"].startswith(("could not run", "check crashed"))]
    assert not broken, output
    failed = {f["check_id"] for f in run if not f["ok"] and not f["skipped"]}
    assert failed == set(VARIANTS[variant].fails), output
    mine = [f for f in run if f["check_id"] == check_id and not f["ok"] and not f["skipped"]]
    assert mine and any(says in f["message"] for f in mine), [f["message"] for f in mine]
    if check_id == "IG-RUN-HEALTHY" and variant == "unhealthy":
        # the other running checks are skipped naming IG-RUN-HEALTHY, not errored alike
        others = [f for f in run if f["check_id"] not in ("IG-RUN-HEALTHY",
                                                          "IG-RUN-NO-BUILD-TOOLS")]
        assert all(f["skipped"] and "see IG-RUN-HEALTHY" in f["message"] for f in others), others


def test_every_run_check_is_broken_by_some_variant() -> None:
    """No IG-RUN-* id goes without an image that makes it fail here (the Flask family of the run
    stage fails on the Flask tutorial's app: tests_stack/test_flask_gate.py)."""
    assert {c.values[0] for c in CASES} == {i for i in stage_ids("run") if i.startswith("IG-RUN-")}
