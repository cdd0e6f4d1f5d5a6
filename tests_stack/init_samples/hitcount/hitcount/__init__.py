"""hitcount: count page hits in Redis."""

import os

from flask import Flask


def create_app(test_config=None):
    """Create the app: defaults, then the environment, then ``test_config``."""
    app = Flask(__name__)
    app.config.from_mapping(
        REDIS_URL=os.environ.get("REDIS_URL", "redis://localhost:6379/0"),
        SECRET_KEY=os.environ.get("SECRET_KEY"),
    )
    if test_config:
        app.config.update(test_config)

    from . import store, views

    store.init_app(app)
    app.register_blueprint(views.bp)
    return app
