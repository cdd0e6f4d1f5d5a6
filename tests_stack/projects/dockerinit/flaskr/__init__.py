"""flaskr: a small Flask application built by a factory."""

from flask import Flask


def create_app(test_config=None):
    """Create and configure the app: defaults, then FLASKR_* env vars, then a test override."""
    app = Flask(__name__)
    app.config.from_mapping(GREETING="Hello")
    app.config.from_prefixed_env("FLASKR")

    if test_config is not None:
        app.config.from_mapping(test_config)

    from . import hello

    app.register_blueprint(hello.bp)
    return app
