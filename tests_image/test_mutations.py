"""Each image check fails, with its id and its own one-line message, on a Dockerfile that breaks it;
and a Dockerfile that does not build fails the gate's IG-BUILD."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from dockerfile_edits import before_user, drop_instruction, replace_line

from imagegate.facts.policy import CHECKS, ImageFacts

pytestmark = [pytest.mark.image, pytest.mark.slow]

#: 17 more filesystem layers (a COPY makes one, without running a container): over 20 in all.
MANY_LAYERS = "\n".join(f"COPY requirements.lock /srv/layers/{n}" for n in range(17))

#: A CA nobody declared (self-signed for these tests; its key was never kept), appended to the
#: bundle by a build step as a proxy CA would be.
STRAY_CA = (
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBYTCCAROgAwIBAgIUI1F8RlzvLjjMK5u6T9g5gT8YRUEwBQYDK2VwMCUxIzAh\n"
    "BgNVBAMMGmltYWdlZ2F0ZSBtdXRhdGlvbiB0ZXN0IENBMCAXDTI2MTEyNTIyNTUz\n"
    "M1oYDzIxMjYxMTAxMjI1NTMzWjAlMSMwIQYDVQQDDBppbWFnZWdhdGUgbXV0YXRp\n"
    "b24gdGVzdCBDQTAqMAUGAytlcAMhADMGW8Yq1rf4N7jeebYwipniEYyKMX6sVRfq\n"
    "rjLOUSpto1MwUTAdBgNVHQ4EFgQUJnD+t4tjAG4dAPTWs7YfLOFF4wkwHwYDVR0j\n"
    "BBgwFoAUJnD+t4tjAG4dAPTWs7YfLOFF4wkwDwYDVR0TAQH/BAUwAwEB/zAFBgMr\n"
    "ZXADQQChWwIy+xTC2omJAlPwMaBuos4ySZl1b6Ite82zIWvGkQrK1YmoUrgrdbHj\n"
    "CRjwBFFltrNVXcBV+gaGtikZURoC\n"
    "-----END CERTIFICATE-----\n"
)
APPEND_STRAY_CA = ("RUN printf '%s\\n' " + " ".join(f"'{line}'" for line in STRAY_CA.splitlines())
                   + " >> /etc/ssl/certs/ca-certificates.crt")

MUTATIONS: list[tuple[str, Callable[[str], str], str]] = [
    # (check id, the edit, what its failing finding's message says)
    ("IG-USER-NONROOT", lambda t: replace_line(t, "USER ", "USER 0:0"),
     "USER '0:0' is uid 0, i.e. root"),
    ("IG-USER-NUMERIC", lambda t: replace_line(t, "USER ", "USER app"),
     "USER 'app' is a name: runAsNonRoot can only verify a numeric UID"),
    ("IG-HEALTHCHECK", lambda t: drop_instruction(t, "HEALTHCHECK "), "no HEALTHCHECK (expected"),
    ("IG-CMD-EXEC", lambda t: replace_line(
        t, "CMD ", "CMD gunicorn --config /srv/app/app/gunicorn.conf.py app.wsgi:app"),
     "Cmd is shell form (/bin/sh -c gunicorn"),
    ("IG-CMD-EXISTS", lambda t: replace_line(t, "CMD ", 'CMD ["uvicorn", "app.wsgi:app"]'),
     'CMD runs "uvicorn", which is not in the image (searched PATH '
     "/opt/venv/bin:/usr/local/bin:/usr/bin:/bin)"),
    ("IG-PORT-EXPOSED", lambda t: drop_instruction(t, "EXPOSE "),
     "expected 8000/tcp exposed; exposed: none"),
    ("IG-LABELS", lambda t: drop_instruction(t, "LABEL "),
     "org.opencontainers.image.revision missing"),
    ("IG-SIZE-BUDGET", lambda t: before_user(t, "RUN head -c 30000000 /dev/urandom > /srv/blob"),
     "MB, budget 80 MB; largest layers: "),
    ("IG-LAYER-BUDGET", lambda t: before_user(t, MANY_LAYERS), "filesystem layers, budget 20"),
    ("IG-NO-SETUID", lambda t: before_user(t, "RUN chmod 4755 /srv/app/app/wsgi.py"),
     "expected no setuid/setgid files, found 1: /srv/app/app/wsgi.py (4755)"),
    ("IG-NO-SECRET-FILES", lambda t: before_user(t, "RUN echo SECRET_KEY=x > /srv/app/.env"),
     "expected no secret files, found 1: /srv/app/.env"),
    ("IG-NO-TEST-OR-CACHE", lambda t: before_user(
        t, "RUN mkdir -p /srv/app/tests_unit && touch /srv/app/tests_unit/test_x.py"),
     "expected no test or cache paths, found 1: /srv/app/tests_unit"),
    ("IG-NO-SECRET-ENV", lambda t: before_user(t, "ENV DB_PASSWORD=hunter2"),
     "Config.Env DB_PASSWORD looks secret and has a literal value"),
    ("IG-APP-NOT-WRITABLE", lambda t: before_user(t, "RUN chown -R 10001:10001 /srv/app"),
     "expected no paths under /srv/app writable by uid 10001, found"),
    ("IG-CA-BUNDLE", lambda t: before_user(t, APPEND_STRAY_CA),
     'found 1 other CA(s): "CN=imagegate mutation test CA"'),
]


#: The other checks on the image's facts each edit breaks too (one edit, one defect, seen by
#: every check whose evidence it touches): pinned, so a check that starts or stops firing on
#: an edit is noticed.
ALSO: dict[str, set[str]] = {
    # USER 0:0: root can write its WORKDIR too
    "IG-USER-NONROOT": {"IG-APP-NOT-WRITABLE"},
    # `RUN echo SECRET_KEY=x > .env`: the literal is in the layer's history as well
    "IG-NO-SECRET-FILES": {"IG-NO-SECRET-ENV"},
}
#: The checks on the image's facts no edit here breaks, and the test that shows each failing.
SHOWN_ELSEWHERE = {
    # a package's own RECORD-listed key: tests_unit/test_policy.py (a real one is in a wheel)
    "IG-PACKAGED-KEYS": "tests_unit/test_policy.py",
    # pip installed into the image: tests_image/test_mutations_running.py's pip-installed variant
    "IG-RUN-NO-BUILD-TOOLS": "tests_image/test_mutations_running.py",
}


def _failures(check_id: str, facts: Any, settings: Any) -> list[Any]:
    """The failing findings of one check."""
    result = CHECKS[check_id](facts, settings)
    return [f for f in (result if isinstance(result, list) else [result]) if not f.ok]


def _failed_ids(facts: Any, settings: Any) -> set[str]:
    """Every check on the image's facts that fails on ``facts``."""
    return {cid for cid in CHECKS if _failures(cid, facts, settings)}


@pytest.mark.parametrize(("check_id", "mutate", "says"), [
    pytest.param(*m, id=m[0], marks=pytest.mark.shows_failing(m[0], *ALSO.get(m[0], ())))
    for m in MUTATIONS])
def test_check_fails_on_mutated_dockerfile(check_id: str, mutate: Callable[[str], str], says: str,
                                           build_variant: Any, docker_client: Any,
                                           imagegate_settings: Any, image_facts: Any) -> None:
    """The real image passes every check on the image's facts; the mutated one fails exactly
    ``check_id`` and the ones :data:`ALSO` names, ``check_id`` saying why in one line."""
    assert _failed_ids(image_facts, imagegate_settings) == set(), "real image must pass"
    facts = ImageFacts.load(docker_client, build_variant(mutate))
    assert _failed_ids(facts, imagegate_settings) == {check_id, *ALSO.get(check_id, ())}
    failed = _failures(check_id, facts, imagegate_settings)
    assert failed, f"{check_id} passed on the mutated image"
    assert all(f.check_id == check_id for f in failed)
    assert all(f.message and "\n" not in f.message for f in failed), [f.message for f in failed]
    assert any(says in f.message for f in failed), [f.message for f in failed]
    if check_id == "IG-SIZE-BUDGET":  # the layer that broke it is named
        assert "30.0 MB RUN head -c 30000000" in failed[0].message, failed[0].message


def test_every_image_check_has_a_mutation() -> None:
    """Every check on the image's facts is broken by one Dockerfile edit above, or named with
    the test that shows it failing."""
    assert {m[0] for m in MUTATIONS} | set(SHOWN_ELSEWHERE) == set(CHECKS)
    assert not {m[0] for m in MUTATIONS} & set(SHOWN_ELSEWHERE)


@pytest.mark.parametrize(("check_id", "budget"), [("IG-SIZE-BUDGET", {"size_budget_mb": 10.0}),
                                                  ("IG-LAYER-BUDGET", {"layer_budget": 2})])
def test_budget_fails_when_lowered(check_id: str, budget: dict[str, Any], image_facts: Any,
                                   imagegate_settings: Any) -> None:
    """Budgets are configurable: the same image fails once the budget is below it."""
    failed = _failures(check_id, image_facts, replace(imagegate_settings, **budget))
    assert failed and "\n" not in failed[0].message
    if check_id == "IG-SIZE-BUDGET":
        assert "MB" in failed[0].message and failed[0].detail, "top layers belong in the detail"


@pytest.mark.shows_failing("IG-BUILD")
def test_IG_BUILD_fails_when_the_dockerfile_does_not_build(
        tmp_path: Path, imagegate_session: str, imagegate_settings: Any) -> None:
    """A Dockerfile whose RUN exits 3 fails the gate's build stage with an IG-BUILD finding that
    names the step and its last output line (no crash); nothing after the build runs."""
    from imagegate.build import pipeline
    from imagegate.config import settings
    from imagegate.gate import Gate, GateOptions

    (tmp_path / "pyproject.toml").write_text(
        '[tool.imagegate]\nweb_port = 8000\npull = "never"\nreport_dir = "out"\n'
        'image_repo = "imagegate/negative-build"\n')
    (tmp_path / "Dockerfile").write_text(
        f"FROM {pipeline.python_image(imagegate_settings)}\n"
        'RUN echo "this build breaks on purpose" >&2; exit 3\nCMD ["python3"]\n')
    said: list[str] = []
    result = Gate(settings.load(tmp_path, environ={}), GateOptions(
        quiet=True, session=f"{imagegate_session}-build"), echo=said.append).run()
    assert (result.status, result.exit_code) == ("failed", 1), "\n".join(said)
    built = [f for f in result.findings if f.check_id == "IG-BUILD"]
    assert [(f.ok, f.severity, f.stage) for f in built] == [(False, "error", "build")], built
    assert "RUN echo" in built[0].message and "failed (exit code 3): this build breaks on " \
        "purpose" in built[0].message, built[0].message
    stages = {s.name: s.status for s in result.stages}
    assert stages["build"] == "failed" and stages["image"] == stages["stack"] == "skipped", stages
    reported = json.loads((tmp_path / "out" / "result.json").read_text())
    assert any(f["check_id"] == "IG-BUILD" and not f["ok"] for f in reported["findings"])
