"""Each image check fails, with its id and a one-line reason, on a Dockerfile that breaks it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from dockerfile_edits import before_user, drop_instruction, replace_line

from imagegate.policy import CHECKS, ImageFacts

pytestmark = [pytest.mark.image, pytest.mark.slow]

MUTATIONS: list[tuple[str, Callable[[str], str]]] = [
    ("IG-USER-NONROOT", lambda t: replace_line(t, "USER ", "USER 0:0")),
    ("IG-USER-NUMERIC", lambda t: replace_line(t, "USER ", "USER app")),
    ("IG-HEALTHCHECK", lambda t: drop_instruction(t, "HEALTHCHECK ")),
    ("IG-CMD-EXEC", lambda t: replace_line(
        t, "CMD ", "CMD gunicorn --config /srv/app/app/gunicorn.conf.py app.wsgi:app")),
    ("IG-PORT-EXPOSED", lambda t: drop_instruction(t, "EXPOSE ")),
    ("IG-LABELS", lambda t: drop_instruction(t, "LABEL ")),
    ("IG-NO-SETUID", lambda t: before_user(t, "RUN chmod 4755 /srv/app/app/wsgi.py")),
    ("IG-NO-SECRET-FILES", lambda t: before_user(t, "RUN echo SECRET_KEY=x > /srv/app/.env")),
    ("IG-NO-TEST-OR-CACHE", lambda t: before_user(
        t, "RUN mkdir -p /srv/app/tests_unit && touch /srv/app/tests_unit/test_x.py")),
    ("IG-NO-SECRET-ENV", lambda t: before_user(t, "ENV DB_PASSWORD=hunter2")),
    ("IG-APP-NOT-WRITABLE", lambda t: before_user(t, "RUN chown -R 10001:10001 /srv/app")),
]


def _failures(check_id: str, facts: Any, settings: Any) -> list[Any]:
    """The failing findings of one check."""
    result = CHECKS[check_id](facts, settings)
    return [f for f in (result if isinstance(result, list) else [result]) if not f.ok]


@pytest.mark.parametrize(("check_id", "mutate"), MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_check_fails_on_mutated_dockerfile(check_id: str, mutate: Callable[[str], str],
                                           build_variant: Any, docker_client: Any,
                                           imagegate_settings: Any, image_facts: Any) -> None:
    """The real image passes ``check_id``; the mutated one fails it with a one-line reason."""
    assert not _failures(check_id, image_facts, imagegate_settings), "real image must pass"
    facts = ImageFacts.load(docker_client, build_variant(mutate))
    failed = _failures(check_id, facts, imagegate_settings)
    assert failed, f"{check_id} passed on the mutated image"
    assert all(f.check_id == check_id for f in failed)
    assert all(f.message and "\n" not in f.message for f in failed), [f.message for f in failed]


@pytest.mark.parametrize(("check_id", "budget"), [("IG-SIZE-BUDGET", {"size_budget_mb": 10.0}),
                                                  ("IG-LAYER-BUDGET", {"layer_budget": 2})])
def test_budget_fails_when_lowered(check_id: str, budget: dict[str, Any], image_facts: Any,
                                   imagegate_settings: Any) -> None:
    """Budgets are configurable: the same image fails once the budget is below it."""
    failed = _failures(check_id, image_facts, replace(imagegate_settings, **budget))
    assert failed and "\n" not in failed[0].message
    if check_id == "IG-SIZE-BUDGET":
        assert "MB" in failed[0].message and failed[0].detail, "top layers belong in the detail"
