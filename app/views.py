"""The public routes: greeting, liveness, readiness, a Redis hit counter, info."""

from __future__ import annotations

import os

from flask import Blueprint, Response, current_app, jsonify
from redis.exceptions import RedisError

from app.redis_client import get_redis, short_error

bp = Blueprint("views", __name__)


@bp.get("/")
def index() -> Response:
    """Return the greeting as plain text."""
    return Response(current_app.config["APP_GREETING"], content_type="text/plain; charset=utf-8")


@bp.get("/healthz")
def healthz() -> Response:
    """Liveness: the process answers. Touches no dependency, so Redis cannot fail it."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Readiness: 200 when Redis answers PING, else 503 with the reason."""
    try:
        get_redis().ping()
    except RedisError as exc:
        current_app.logger.warning("not ready: %s", short_error(exc))
        return jsonify(status="unavailable", reason=short_error(exc)), 503
    return jsonify(status="ready"), 200


@bp.route("/hits", methods=["GET", "POST"])
def hits() -> tuple[Response, int]:
    """Count this request in Redis and return the total; 503 when Redis is down."""
    try:
        count = int(get_redis().incr("hits"))
    except RedisError as exc:
        current_app.logger.warning("hits failed: %s", short_error(exc))
        body = {"error": "service unavailable", "status": 503, "reason": short_error(exc)}
        return jsonify(body), 503
    return jsonify(hits=count), 200


@bp.get("/info")
def info() -> Response:
    """Describe how the app was configured, without any secret."""
    return jsonify(
        env=current_app.config["APP_ENV"],
        debug=current_app.debug,
        greeting_source=current_app.config["GREETING_SOURCE"],
        version=os.environ.get("APP_VERSION", "dev"),
    )
