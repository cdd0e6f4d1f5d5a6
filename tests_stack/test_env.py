"""Environment handling: env_file, environment precedence, defaults, secrets, the dev overlay.

Each variant is its own small project (``stack_factory``) built from compose.yml and the files in
``variants/``, copied to tmp_path when a ``.env`` must sit beside them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from stack_helpers import get

from imagegate.errors import StackNotHealthy, UsageError
from imagegate.run.stack import Stack

pytestmark = [pytest.mark.stack, pytest.mark.xdist_group("env")]  # a module fault stack


@pytest.mark.slow  # its own compose project (~5 s): make test, not the gate
def test_env_file_reaches_app(stack_factory: Any, project_copy: Callable[..., Path]) -> None:
    """APP_GREETING set only in the .env beside compose.yml (env_file) reaches the app."""
    project = project_copy(dotenv="greeting.env")
    stack = stack_factory([project / "compose.yml"])
    assert get(stack.url("web", "/")).text == "Hello from the env file"
    assert get(stack.url("web", "/info")).json()["greeting_source"] == "env"


@pytest.mark.slow  # its own compose project (~5 s): make test, not the gate
def test_environment_overrides_env_file(stack_factory: Any,
                                        project_copy: Callable[..., Path]) -> None:
    """A service's ``environment:`` entry wins over the same variable in its env_file."""
    project = project_copy("env_override.yml", dotenv="greeting.env")
    stack = stack_factory([project / "compose.yml", project / "env_override.yml"])
    assert get(stack.url("web", "/")).text == "Hello from environment"


def test_defaults_apply_when_unset(stack: Stack, stack_url: str) -> None:
    """With only SECRET_KEY given, the file's defaults apply: production, INFO, 2 workers."""
    info = get(stack_url + "/info").json()
    assert (info["env"], info["debug"], info["greeting_source"]) == ("production", False, "default")
    env = dict(e.split("=", 1) for e in stack.container("web").attrs["Config"]["Env"])
    assert {k: env.get(k) for k in ("APP_ENV", "LOG_LEVEL", "WEB_CONCURRENCY")} == {
        "APP_ENV": "production", "LOG_LEVEL": "INFO", "WEB_CONCURRENCY": "2"}


@pytest.mark.slow  # its own compose project (~5 s): make test, not the gate
def test_production_500_leaks_nothing(fault_stack: Stack) -> None:
    """In production a 500 is generic JSON: no traceback, no debugger, no exception text."""
    resp = get(fault_stack.url("web", "/_fault/error"))
    assert resp.status_code == 500
    assert resp.headers["Content-Type"].startswith("application/json")
    assert resp.json() == {"error": "internal server error", "status": 500}
    for leak in ("Traceback", "Werkzeug", "RuntimeError", "deliberate", "secret detail"):
        assert leak not in resp.text, f"{leak!r} in the 500 body"
    assert "unhandled RuntimeError" in fault_stack.logs("web", tail=50), "the 500 was not logged"


def test_missing_secret_key_compose_refuses(stack_factory: Any) -> None:
    """No SECRET_KEY at all: compose's own ``${SECRET_KEY:?}`` stops before anything starts."""
    with pytest.raises(UsageError) as caught:
        stack_factory(env={"SECRET_KEY": None})
    message = caught.value.message
    assert "required variable SECRET_KEY is missing a value" in message, message
    assert "compose.yml" in message, message


@pytest.mark.slow  # its own compose project (~5 s): make test, not the gate
def test_empty_secret_key_app_refuses(stack_factory: Any, stack_files: list[Path],
                                      variants: Path, imagegate_settings: Any) -> None:
    """SECRET_KEY passed but empty: the app itself exits 78 with one line naming SECRET_KEY, and
    the stack's verdict names the service, its exit code and that line."""
    with pytest.raises(StackNotHealthy) as caught:
        stack_factory([stack_files[0], variants / "secret_empty.yml"],
                      project_dir=imagegate_settings.project_dir, wait_timeout=60)
    exc = caught.value
    assert "service web exited with code 78" in exc.message, exc.message
    assert exc.message.endswith(": imagegate-app: configuration error: SECRET_KEY is required "
                                "when APP_ENV=production (set it to a long random value)"), \
        exc.message
    errors = [line for line in exc.detail.splitlines() if "configuration error" in line]
    assert errors == ["imagegate-app: configuration error: SECRET_KEY is required when "
                      "APP_ENV=production (set it to a long random value)"], exc.detail
    assert "Traceback" not in exc.detail, exc.detail


@pytest.mark.slow  # its own compose project (~5 s): make test, not the gate
def test_dev_overlay_turns_debug_on(stack_factory: Any, stack_files: list[Path],
                                    imagegate_settings: Any) -> None:
    """compose.dev.yml: flask's dev server, APP_ENV=development, debug on, code bind-mounted."""
    dev = imagegate_settings.path("compose.dev.yml")
    stack = stack_factory([stack_files[0], dev], project_dir=imagegate_settings.project_dir)
    info = get(stack.url("web", "/info")).json()
    assert (info["env"], info["debug"]) == ("development", True)
    mounts = {m["Destination"]: m for m in stack.container("web").attrs["Mounts"]}
    assert mounts["/srv/app/app"]["RW"] is False
