"""The compose-file checks (IG-STACK-LOOPBACK-ONLY, -NOT-PRIVILEGED, -SOURCE-MOUNT) shown failing:
they judge the project's compose model as the user wrote it — this repo's compose.yml with one
edit, resolved by ``compose config`` (:class:`~imagegate.model.compose.Model`) and judged by the
checks' own code (:mod:`imagegate.checks.compose`). No engine needed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from imagegate.checks import compose as compose_checks
from imagegate.checks.compose import COMPOSE_CHECKS, ComposeFacts
from imagegate.config.settings import Settings
from imagegate.model.compose import Model
from imagegate.results.findings import Finding

ROOT = Path(__file__).resolve().parents[1]
WEB_PORT = '- "127.0.0.1:${WEB_PORT:-}:8000"'
CAP_DROP = "    cap_drop: [ALL]\n    security_opt:\n      - no-new-privileges:true\n    # No `init`"


def judge_compose(project: Path) -> list[Finding]:
    """What the generic compose-file checks record on ``project``'s compose.yml."""
    model = Model.load([project / "compose.yml"], project_dir=project,
                       env={"SECRET_KEY": "x" * 32, "APP_IMAGE": "imagegate/app:local"})
    # web runs ${APP_IMAGE} (no build:): it is judged as the web service, as the gate resolves it
    return compose_checks.judge(ComposeFacts(model, Settings(project_dir=project,
                                                             web_service="web")))


def edited(old: str, new: str) -> Callable[[str], str]:
    """An edit of compose.yml replacing ``old`` (which must be there once) with ``new``."""
    def edit(text: str) -> str:
        assert text.count(old) == 1, f"{old!r} is not in compose.yml once"
        return text.replace(old, new)
    return edit


def case(check_id: str, name: str, edit: Callable[[str], str], says: str) -> object:
    """One edit of compose.yml that fails ``check_id`` saying ``says``."""
    return pytest.param(check_id, edit, says, id=f"{check_id}-{name}",
                        marks=pytest.mark.shows_failing(check_id))


COMPOSE_EDITS = [
    case("IG-STACK-LOOPBACK-ONLY", "no-host-ip", edited(WEB_PORT, '- "8000:8000"'),
         'web: port 8000:8000 is published on every interface (no host_ip); publish it on '
         'loopback: "127.0.0.1:8000:8000"'),
    case("IG-STACK-LOOPBACK-ONLY", "all-interfaces", edited(WEB_PORT, '- "0.0.0.0::8000"'),
         "web: port 0.0.0.0::8000 is published on every interface (host_ip 0.0.0.0)"),
    case("IG-STACK-NOT-PRIVILEGED", "privileged",
         edited(CAP_DROP, "    privileged: true\n" + CAP_DROP),
         "web runs privileged (expected no privileged: true)"),
    case("IG-STACK-NOT-PRIVILEGED", "cap-add",
         edited(CAP_DROP, "    cap_add: [NET_ADMIN, SYS_PTRACE]\n" + CAP_DROP),
         "web adds capabilities ['NET_ADMIN', 'SYS_PTRACE'] (expected no cap_add)"),
    case("IG-STACK-SOURCE-MOUNT", "app-dir",
         edited(CAP_DROP, "    volumes:\n      - ./app:/srv/app/app:ro\n" + CAP_DROP),
         "web: bind mount ./app:/srv/app/app:ro lays the project's files over the image"),
    case("IG-STACK-SOURCE-MOUNT", "project-dir",
         edited(CAP_DROP, "    volumes:\n      - .:/srv/app\n" + CAP_DROP),
         "web: bind mount .:/srv/app lays the project's files over the image"),
]


def compose_project(tmp_path: Path, edit: Callable[[str], str] | None = None) -> Path:
    """A copy of this repo's compose.yml (``edit`` applied) in tmp_path, with an app/ dir."""
    text = (ROOT / "compose.yml").read_text()
    (tmp_path / "compose.yml").write_text(edit(text) if edit else text)
    (tmp_path / "app").mkdir()
    return tmp_path


def test_the_real_compose_file_passes_the_compose_checks(tmp_path: Path) -> None:
    """compose.yml as it is: every compose-file check passes (the edits below each break one)."""
    found = judge_compose(compose_project(tmp_path))
    assert [(f.check_id, f.ok) for f in found] == [(cid, True) for cid in COMPOSE_CHECKS]


@pytest.mark.parametrize(("check_id", "edit", "says"), COMPOSE_EDITS)
def test_compose_check_fails_on_an_edited_compose_file(tmp_path: Path, check_id: str,
                                                       edit: Callable[[str], str],
                                                       says: str) -> None:
    """One edit of compose.yml fails exactly its check, at the service, saying why."""
    found = judge_compose(compose_project(tmp_path, edit))
    failed = [f for f in found if not f.ok]
    assert {f.check_id for f in failed} == {check_id}, [str(f) for f in found]
    assert all(f.where == "compose.yml:service web" for f in failed), [str(f) for f in failed]
    assert any(says in f.message for f in failed), [f.message for f in failed]
