"""The pages: the counter and its health."""

from flask import Blueprint, jsonify
from redis.exceptions import RedisError

from .store import redis

bp = Blueprint("hits", __name__)


@bp.route("/")
def index():
    """Count this hit and say how many there have been."""
    count = redis().incr("hits")
    return f"Hello World! I have been seen {count} times.\n"


@bp.route("/stats")
def stats():
    """The count, as JSON, without counting."""
    return jsonify(hits=int(redis().get("hits") or 0))


@bp.route("/health")
def health():
    """Ready when Redis answers."""
    try:
        redis().ping()
    except RedisError as exc:
        return jsonify(status="unavailable", error=type(exc).__name__), 503
    return jsonify(status="ok")
