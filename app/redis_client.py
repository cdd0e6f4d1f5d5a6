"""One Redis client per app, created on first use and shared by all threads."""

from __future__ import annotations

import threading
from typing import Any

import click
import redis
from flask import Flask, current_app
from flask.cli import with_appcontext
from redis.backoff import NoBackoff
from redis.retry import Retry

_lock = threading.Lock()


def make_client(url: str) -> redis.Redis:
    """Build a client that fails fast and heals itself.

    Short timeouts keep /readyz and /hits well under a healthcheck timeout when
    Redis is gone. The pool drops a connection that errors and dials a new one
    on the next command, and one immediate retry hides the single stale
    connection left over when Redis restarts.
    """
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=1,
        socket_timeout=1,
        health_check_interval=15,
        retry=Retry(NoBackoff(), 1),
    )


@click.command("redis-ping")
@with_appcontext
def redis_ping_command() -> None:
    """Ping Redis once: ``flask --app app.wsgi redis-ping`` exits 1 with the reason if down."""
    try:
        get_redis().ping()
    except redis.RedisError as exc:
        raise click.ClickException(short_error(exc)) from exc
    click.echo("redis: ok")


def init_app(app: Flask) -> None:
    """Register the slot (a ``REDIS_CLIENT`` in the config, a test fake, fills it now)."""
    app.extensions["redis"] = app.config.get("REDIS_CLIENT")
    app.cli.add_command(redis_ping_command)


def get_redis() -> Any:
    """Return the current app's client, creating it once (no network I/O happens here)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    client = app.extensions.get("redis")
    if client is None:
        with _lock:
            client = app.extensions.get("redis")
            if client is None:
                client = app.extensions["redis"] = make_client(app.config["REDIS_URL"])
    return client


def short_error(exc: Exception) -> str:
    """Describe a Redis failure in one short line for a JSON ``reason``."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return "redis: " + (text if len(text) <= 120 else text[:117] + "...")
