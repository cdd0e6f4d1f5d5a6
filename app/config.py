"""Settings for the app, parsed from the environment by one pure function.

Stdlib only: ``app/gunicorn.conf.py`` imports this in the gunicorn master to
refuse a bad configuration before any worker starts.
"""

from __future__ import annotations

import re
import secrets
import warnings
from collections.abc import Mapping
from typing import Any

DEFAULT_GREETING = "Hello, World! from imagegate"
DEFAULT_REDIS_URL = "redis://localhost:6379/0"
ENVIRONMENTS = ("development", "testing", "production")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
MIN_SECRET_LENGTH = 16
#: Every variable :func:`load_settings` reads.
ENV_VARS = (
    "APP_ENV",
    "FLASK_ENV",
    "SECRET_KEY",
    "REDIS_URL",
    "LOG_LEVEL",
    "APP_GREETING",
    "APP_FAULT_ROUTES",
)
FLASK_ENV_NOTE = "FLASK_ENV is deprecated; use APP_ENV"

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
# Compared after lower-casing and dropping everything but letters and digits.
# fmt: off
_PLACEHOLDERS = frozenset({
    "changeme", "secret", "secretkey", "mysecret", "mysecretkey", "yoursecretkey", "dev",
    "devkey", "devsecret", "development", "test", "testing", "production", "pleasechange",
    "pleasechangeme", "password", "default", "insecure", "replaceme", "todo", "xxx",
})
# fmt: on
_PLACEHOLDER_PARTS = ("changeme", "replaceme", "insecure")
# One key per process: development sessions just do not survive a restart.
_GENERATED_SECRET = secrets.token_urlsafe(32)


class ConfigError(ValueError):
    """A setting is missing or invalid; the message is one line naming the variable."""


def _get(environ: Mapping[str, str], name: str) -> str:
    """Return the variable's value, treating unset and blank alike as ``""``."""
    value = environ.get(name, "")
    return value if value.strip() else ""


def _show(value: str) -> str:
    """Quote a (non-secret) value for an error message, cut short if long."""
    return repr(value if len(value) <= 40 else value[:37] + "...")


def _choice(name: str, value: str, allowed: tuple[str, ...], upper: bool = False) -> str:
    """Return *value* normalised if it is one of *allowed*, else raise ConfigError."""
    norm = value.strip().upper() if upper else value.strip().lower()
    if norm not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)} (got {_show(value)})")
    return norm


def _bool(name: str, value: str) -> bool:
    """Parse a yes/no switch; unset means off."""
    norm = value.strip().lower()
    if norm in _TRUE or norm in _FALSE:
        return norm in _TRUE
    if not norm:
        return False
    raise ConfigError(f"{name} must be one of 1, true, yes, 0, false, no (got {_show(value)})")


def _app_env(environ: Mapping[str, str], notes: list[str]) -> str:
    """Resolve APP_ENV, honouring the deprecated FLASK_ENV only when APP_ENV is unset."""
    app_env, flask_env = _get(environ, "APP_ENV"), _get(environ, "FLASK_ENV")
    if flask_env:
        note = FLASK_ENV_NOTE + (" (ignored because APP_ENV is set)" if app_env else "")
        warnings.warn(note, DeprecationWarning, stacklevel=3)
        notes.append(note)
        if not app_env:
            return _choice("FLASK_ENV (deprecated alias of APP_ENV)", flask_env, ENVIRONMENTS)
    return _choice("APP_ENV", app_env, ENVIRONMENTS) if app_env else "production"


def is_placeholder_secret(value: str) -> bool:
    """Tell whether *value* is a well-known example secret rather than a real one."""
    squashed = re.sub(r"[^a-z0-9]", "", value.lower())
    return (
        squashed in _PLACEHOLDERS
        or any(part in squashed for part in _PLACEHOLDER_PARTS)
        or len(set(value)) < 3
    )


def _secret_key(environ: Mapping[str, str], app_env: str) -> str:
    """Return SECRET_KEY, generated in development/testing, required and checked otherwise."""
    value = environ.get("SECRET_KEY", "")
    if app_env in ("development", "testing"):
        return value if value.strip() else _GENERATED_SECRET
    hint = "set it to a long random value"
    if not value.strip():
        raise ConfigError(f"SECRET_KEY is required when APP_ENV={app_env} ({hint})")
    if is_placeholder_secret(value):
        raise ConfigError(f"SECRET_KEY is a placeholder value when APP_ENV={app_env} ({hint})")
    if len(value) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"SECRET_KEY is too short ({len(value)} characters, need at least "
            f"{MIN_SECRET_LENGTH}) when APP_ENV={app_env} ({hint})"
        )
    return value


def _redis_url(environ: Mapping[str, str]) -> str:
    """Return REDIS_URL; only the scheme is echoed on error, as the URL may hold a password."""
    value = _get(environ, "REDIS_URL").strip() or DEFAULT_REDIS_URL
    if not value.startswith(REDIS_SCHEMES):
        scheme = value.split("://", 1)[0] + "://" if "://" in value else "no scheme"
        raise ConfigError(
            f"REDIS_URL must start with {', '.join(REDIS_SCHEMES)} (got {_show(scheme)})"
        )
    return value


def load_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """Parse *environ* into Flask config keys, raising ConfigError on the first bad one.

    ``CONFIG_NOTES`` lists non-fatal remarks (deprecations) for the caller to log.
    """
    notes: list[str] = []
    app_env = _app_env(environ, notes)
    greeting = _get(environ, "APP_GREETING")
    return {
        "APP_ENV": app_env,
        "DEBUG": app_env == "development",
        "TESTING": app_env == "testing",
        "SECRET_KEY": _secret_key(environ, app_env),
        "REDIS_URL": _redis_url(environ),
        "LOG_LEVEL": _choice("LOG_LEVEL", _get(environ, "LOG_LEVEL") or "INFO", LOG_LEVELS, True),
        "APP_GREETING": greeting or DEFAULT_GREETING,
        "GREETING_SOURCE": "env" if greeting else "default",
        "APP_FAULT_ROUTES": _bool("APP_FAULT_ROUTES", _get(environ, "APP_FAULT_ROUTES")),
        "CONFIG_NOTES": notes,
    }
