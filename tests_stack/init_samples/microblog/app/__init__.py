"""The application factory and its extensions."""

from config import Config
from flask import Flask, request
from flask_babel import Babel
from flask_mail import Mail
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from redis import Redis

db = SQLAlchemy()
migrate = Migrate()
mail = Mail()
babel = Babel()


def get_locale():
    """?lang=xx, else the best of the browser's languages."""
    return request.args.get('lang') or \
        request.accept_languages.best_match(request.app_languages)


def create_app(config_class=Config):
    """Make the app: extensions, the Redis client, the blueprint and the CLI."""
    app = Flask(__name__)
    app.config.from_object(config_class)
    db.init_app(app)
    migrate.init_app(app, db)
    mail.init_app(app)
    babel.init_app(app, locale_selector=get_locale)
    app.redis = Redis.from_url(app.config['REDIS_URL'])

    @app.before_request
    def languages():
        """The languages get_locale chooses from."""
        request.app_languages = app.config['LANGUAGES']

    from app.main import bp as main_bp
    app.register_blueprint(main_bp)

    from app import cli
    cli.register(app)
    return app


from app import models  # noqa: E402,F401
