"""A second, minimal Flask project the gate is tried on (not this repo's app)."""

from __future__ import annotations

import os

from flask import Flask, jsonify


def create_app() -> Flask:
    """One route and a health endpoint; SECRET_KEY must come from the environment."""
    app = Flask(__name__)
    app.config["SECRET_KEY"] = os.environ["SECRET_KEY"]

    @app.get("/")
    def index() -> str:
        """The greeting the gate's http_checks look for."""
        return "sample says hi"

    @app.get("/health")
    def health() -> object:
        """Liveness."""
        return jsonify(status="ok")

    return app
