"""JSON error responses; a 500 never shows exception text or a traceback."""

from __future__ import annotations

from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException


def handle_http_exception(exc: HTTPException) -> Response:
    """Turn a 404/405/... into ``{"error": ..., "status": ...}``, keeping headers like Allow."""
    response = exc.get_response()
    body = {"error": (exc.name or "error").lower(), "status": exc.code}
    response.data = current_app.json.dumps(body)
    response.content_type = "application/json"
    return response


def handle_exception(exc: Exception) -> tuple[Response, int]:
    """Log an unhandled error with its traceback, and answer a generic 500."""
    current_app.logger.error(
        "unhandled %s on %s %s", type(exc).__name__, request.method, request.path, exc_info=exc
    )
    return jsonify(error="internal server error", status=500), 500


def init_app(app: Flask) -> None:
    """Register the JSON error handlers on *app*."""
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_exception)
