"""``app.config.load_settings``: defaults, every variable good and bad, the FLASK_ENV alias."""

from __future__ import annotations

from typing import Any

import pytest

from app import create_app
from app.config import DEFAULT_GREETING, ConfigError, load_settings
from conftest import PROD_SECRET

PROD = {"APP_ENV": "production", "SECRET_KEY": PROD_SECRET}


def test_defaults() -> None:
    """With only a secret set, the app runs as production with documented defaults."""
    settings = load_settings({"SECRET_KEY": PROD_SECRET})
    assert {k: v for k, v in settings.items() if k != "SECRET_KEY"} == {
        "APP_ENV": "production",
        "DEBUG": False,
        "TESTING": False,
        "REDIS_URL": "redis://localhost:6379/0",
        "LOG_LEVEL": "INFO",
        "APP_GREETING": DEFAULT_GREETING,
        "GREETING_SOURCE": "default",
        "APP_FAULT_ROUTES": False,
        "CONFIG_NOTES": [],
    }


@pytest.mark.parametrize(
    ("name", "value", "key", "expected"),
    [
        ("APP_ENV", "development", "DEBUG", True),
        ("APP_ENV", " Testing ", "APP_ENV", "testing"),
        ("APP_ENV", "testing", "TESTING", True),
        ("APP_ENV", "", "APP_ENV", "production"),
        ("REDIS_URL", "rediss://:pw@cache:6380/1", "REDIS_URL", "rediss://:pw@cache:6380/1"),
        ("REDIS_URL", "unix:///run/redis.sock", "REDIS_URL", "unix:///run/redis.sock"),
        ("REDIS_URL", "", "REDIS_URL", "redis://localhost:6379/0"),
        ("LOG_LEVEL", "debug", "LOG_LEVEL", "DEBUG"),
        ("LOG_LEVEL", "Warning", "LOG_LEVEL", "WARNING"),
        ("APP_GREETING", "Hi", "APP_GREETING", "Hi"),
        ("APP_GREETING", "Hi", "GREETING_SOURCE", "env"),
        ("APP_GREETING", "  ", "GREETING_SOURCE", "default"),
        *[("APP_FAULT_ROUTES", v, "APP_FAULT_ROUTES", True) for v in ("1", "true", "YES")],
        *[("APP_FAULT_ROUTES", v, "APP_FAULT_ROUTES", False) for v in ("0", "false", "no", "")],
    ],
)
def test_good_values(name: str, value: str, key: str, expected: Any) -> None:
    """Each variable accepts its documented spellings."""
    assert load_settings({**PROD, name: value})[key] == expected


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("APP_ENV", "staging", "APP_ENV must be one of development, testing, production"),
        ("APP_ENV", "prod", "APP_ENV must be one of development, testing, production"),
        ("REDIS_URL", "http://cache:6379", "REDIS_URL must start with redis://, rediss://"),
        ("REDIS_URL", "cache:6379", "REDIS_URL must start with redis://, rediss://"),
        ("LOG_LEVEL", "verbose", "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR"),
        ("APP_FAULT_ROUTES", "maybe", "APP_FAULT_ROUTES must be one of 1, true, yes, 0"),
        ("SECRET_KEY", "", "SECRET_KEY is required when APP_ENV=production"),
        ("SECRET_KEY", "   ", "SECRET_KEY is required when APP_ENV=production"),
        ("SECRET_KEY", "k7#Qp2!vZ", "SECRET_KEY is too short (9 characters, need at least 16)"),
    ],
)
def test_bad_values(name: str, value: str, message: str) -> None:
    """A bad value raises one line that starts with the variable's name and says why."""
    with pytest.raises(ConfigError) as excinfo:
        load_settings({**PROD, name: value})
    text = str(excinfo.value)
    assert text.startswith(message) and "\n" not in text


def test_missing_secret_message_is_exact() -> None:
    """The message the gunicorn master prints when SECRET_KEY is missing."""
    with pytest.raises(ConfigError, match=r"^SECRET_KEY is required when APP_ENV=production "
                       r"\(set it to a long random value\)$"):  # fmt: skip
        load_settings({"APP_ENV": "production"})


@pytest.mark.parametrize(
    "secret",
    ["changeme", "change-me", "CHANGE_ME", "secret", "dev", "please-change",
     "my-app-ChangeMe-0123456789", "django-insecure-0123456789abcdef", "x" * 32],
)  # fmt: skip
def test_placeholder_secrets_are_refused_in_production(secret: str) -> None:
    """Example secrets never reach production; the message does not echo them."""
    with pytest.raises(ConfigError, match=r"^SECRET_KEY is a placeholder value") as excinfo:
        load_settings({"APP_ENV": "production", "SECRET_KEY": secret})
    assert secret not in str(excinfo.value)


def test_redis_url_error_does_not_echo_credentials() -> None:
    """Only the scheme of a bad REDIS_URL is shown, never a password in it."""
    with pytest.raises(ConfigError) as excinfo:
        load_settings({**PROD, "REDIS_URL": "http://user:hunter2@cache:6379"})
    assert "hunter2" not in str(excinfo.value) and "'http://'" in str(excinfo.value)


@pytest.mark.parametrize("env", ["development", "testing"])
@pytest.mark.parametrize("secret", ["", "changeme"])
def test_dev_and_testing_accept_a_missing_or_weak_secret(env: str, secret: str) -> None:
    """Outside production an unset key is generated once per process; a weak one is kept."""
    first = load_settings({"APP_ENV": env, "SECRET_KEY": secret})["SECRET_KEY"]
    assert first == (secret or load_settings({"APP_ENV": env})["SECRET_KEY"])
    assert len(first) >= 32 or first == secret


@pytest.mark.parametrize(
    ("environ", "expected_env"),
    [
        ({"FLASK_ENV": "development"}, "development"),
        ({"FLASK_ENV": "development", "APP_ENV": "testing"}, "testing"),
        ({"FLASK_ENV": "production", "SECRET_KEY": PROD_SECRET}, "production"),
    ],
)
def test_flask_env_is_a_deprecated_alias(environ: dict[str, str], expected_env: str) -> None:
    """FLASK_ENV is used only without APP_ENV, and always draws a warning and a note."""
    with pytest.warns(DeprecationWarning, match="FLASK_ENV is deprecated; use APP_ENV"):
        settings = load_settings(environ)
    assert settings["APP_ENV"] == expected_env
    assert settings["CONFIG_NOTES"][0].startswith("FLASK_ENV is deprecated; use APP_ENV")


def test_bad_flask_env_is_named() -> None:
    """A bad FLASK_ENV is reported under its own name."""
    with pytest.warns(DeprecationWarning), pytest.raises(ConfigError, match=r"^FLASK_ENV"):
        load_settings({"FLASK_ENV": "staging"})


def test_create_app_reads_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    """The environment feeds create_app, and a bad one stops it."""
    clean_env.setenv("APP_ENV", "production")
    with pytest.raises(ConfigError, match=r"^SECRET_KEY is required"):
        create_app()
    clean_env.setenv("SECRET_KEY", PROD_SECRET)
    assert create_app().config["APP_ENV"] == "production"
    assert create_app({"APP_ENV": "development"}).debug is True


def test_create_app_logs_config_notes(
    clean_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The FLASK_ENV deprecation note reaches the app log."""
    clean_env.setenv("FLASK_ENV", "development")
    with pytest.warns(DeprecationWarning):
        app = create_app()
    assert app.config["APP_ENV"] == "development"
    assert "FLASK_ENV is deprecated; use APP_ENV" in caplog.text
