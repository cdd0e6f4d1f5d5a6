"""The Redis connection, one client per app."""

from flask import current_app
from redis import Redis


def init_app(app):
    """Attach a Redis client built from REDIS_URL (it connects lazily, on first use)."""
    app.extensions["redis"] = Redis.from_url(
        app.config["REDIS_URL"], socket_connect_timeout=1, socket_timeout=1
    )


def redis():
    """The current app's Redis client."""
    return current_app.extensions["redis"]
