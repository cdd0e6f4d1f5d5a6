"""Generic Dockerfile lint checks: hadolint's rules, and each check hadolint misses, one test per
catalogue id (so an id added to the catalogue is a test at once, and can fail the gate)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from imagegate.checks import lint
from imagegate.checks.catalogue import CATALOGUE
from imagegate.errors import ImagegateError
from imagegate.results.findings import Finding

pytestmark = pytest.mark.lint


@pytest.fixture(scope="module")
def dockerfile(imagegate_settings: Any) -> Any:
    """The Dockerfile the gate builds."""
    return imagegate_settings.path(imagegate_settings.dockerfile)


@pytest.mark.imagegate_check("IG-LINT-HADOLINT")
def test_hadolint(dockerfile: Any, imagegate_settings: Any,
                  imagegate_record: Callable[[list[Finding]], None]) -> None:
    """IG-LINT-HADOLINT: hadolint runs; each DL/SC rule it reports is a finding at its level."""
    try:
        found = lint.hadolint(dockerfile,
                              lint.hadolint_config(dockerfile, imagegate_settings.project_dir))
    except ImagegateError as exc:
        pytest.fail(f"hadolint could not run: {exc.message}", pytrace=False)
    imagegate_record(found)


@pytest.mark.parametrize("check_id", [
    pytest.param(cid, marks=pytest.mark.imagegate_check(cid), id=cid) for cid in lint.LINT_CHECKS
])
def test_extra(check_id: str, dockerfile: Any, imagegate_settings: Any,
               imagegate_record: Callable[[list[Finding]], None]) -> None:
    """The imagegate lint check ``check_id`` holds for the Dockerfile (judged for the builder
    the gate builds with, and the stage the build stops at)."""
    from imagegate.build import builder_name

    facts = lint.DockerfileText(dockerfile.read_text(), dockerfile.name,
                                imagegate_settings.target,
                                builder_name(imagegate_settings.builder))
    imagegate_record(lint.LINT_CHECKS[check_id](facts)
                     or [Finding(check_id, True, CATALOGUE[check_id].title)])


@pytest.mark.imagegate_check("IG-LINT-SERVICES")
def test_other_services(imagegate_settings: Any,
                        imagegate_record: Callable[[list[Finding]], None]) -> None:
    """IG-LINT-SERVICES: the Dockerfiles of the other services compose builds (a proxy in
    front, a worker) pass hadolint; advice, since they are built and run but not gated."""
    from imagegate.config.project import compose_model
    from imagegate.pytest_plugin.stack import gated_of

    if not imagegate_settings.compose_file:
        pytest.skip("no compose file: no other service to build")
    try:
        model, _ = compose_model(imagegate_settings)
        found = lint.other_services(model, gated_of(imagegate_settings, model))
    except ImagegateError as exc:
        pytest.fail(f"cannot lint the other services: {exc.message}", pytrace=False)
    if not found:
        pytest.skip("no other service of the compose file builds its own image")
    imagegate_record(found)


@pytest.mark.imagegate_check("IG-LINT-FLASK-SOURCE")
def test_flask_source(imagegate_settings: Any,
                      imagegate_record: Callable[[list[Finding]], None]) -> None:
    """IG-LINT-FLASK-SOURCE: the Python files the build context ships (not tests, virtualenvs
    or what .dockerignore leaves out) hold no app.run(debug=True) and no literal SECRET_KEY."""
    from imagegate.build.builders import dockerignored
    from imagegate.checks.flask import source_check, source_files

    context = imagegate_settings.path(imagegate_settings.context or ".")
    imagegate_record(source_check(source_files(context, dockerignored(context)),
                                  imagegate_settings.project_dir))

