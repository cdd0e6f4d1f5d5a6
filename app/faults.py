"""Routes that misbehave on purpose, served only with APP_FAULT_ROUTES=1.

They let the image and stack tests check that a 500 leaks nothing and that
SIGTERM lets an in-flight request finish.
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, current_app, jsonify, request

MAX_SLOW_SECONDS = 30.0

bp = Blueprint("faults", __name__, url_prefix="/_fault")


@bp.get("/error")
def error() -> Response:
    """Raise, to exercise the generic 500 handler."""
    raise RuntimeError("deliberate failure from /_fault/error (secret detail)")


@bp.get("/slow")
def slow() -> tuple[Response, int]:
    """Sleep ``?seconds=N`` (0-30, default 1) and then answer 200."""
    raw = request.args.get("seconds", "1")
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= MAX_SLOW_SECONDS:
        message = f"seconds must be a number from 0 to {MAX_SLOW_SECONDS:g}"
        return jsonify(error=message, status=400), 400
    current_app.logger.info("fault: slow request sleeping %gs", seconds)
    time.sleep(seconds)
    return jsonify(status="ok", slept=seconds), 200
