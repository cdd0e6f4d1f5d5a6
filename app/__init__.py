"""The imagegate demo service: a small Flask app that counts hits in Redis."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

from flask import Flask

from app.config import ENV_VARS, load_settings

LOG_FORMAT = "%(asctime)s %(levelname)s [%(name)s] %(message)s"


class OneLineFormatter(logging.Formatter):
    """Keep each record on one line (tracebacks included) so log collectors split it right."""

    def format(self, record: logging.LogRecord) -> str:
        """Format as usual, then escape the newlines."""
        return super().format(record).replace("\n", "\\n")


def _as_env_text(value: Any) -> str:
    """Spell a test override the way the environment would (``True`` -> ``"1"``)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def configure_logging(app: Flask) -> None:
    """Send the app logger to stderr, one line per record, at ``LOG_LEVEL``."""
    from flask.logging import default_handler

    logger = app.logger
    logger.removeHandler(default_handler)
    # create_app may run many times in one process (tests): install our handler once.
    if not any(getattr(h, "_imagegate", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(OneLineFormatter(LOG_FORMAT))
        handler._imagegate = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(app.config["LOG_LEVEL"])


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Create the app: in-code defaults, then the environment, then *test_config*.

    Keys of *test_config* named like environment variables (``APP_ENV``,
    ``SECRET_KEY``, ``APP_FAULT_ROUTES``...) are validated exactly as if they
    came from the environment; any other key (``REDIS_CLIENT``...) is copied
    into ``app.config`` as is. Raises :class:`app.config.ConfigError`.
    """
    overrides = dict(test_config or {})
    environ = dict(os.environ)
    environ.update({k: _as_env_text(v) for k, v in overrides.items() if k in ENV_VARS})
    settings = load_settings(environ)

    app = Flask(__name__)
    app.config.from_mapping(settings)
    app.config.from_mapping({k: v for k, v in overrides.items() if k not in ENV_VARS})
    configure_logging(app)
    for note in app.config["CONFIG_NOTES"]:
        app.logger.warning(note)

    from app import errors, redis_client, views

    redis_client.init_app(app)
    errors.init_app(app)
    app.register_blueprint(views.bp)
    if app.config["APP_FAULT_ROUTES"]:
        from app import faults

        app.register_blueprint(faults.bp)
        app.logger.warning("APP_FAULT_ROUTES is on: /_fault/* routes are served")
    return app
