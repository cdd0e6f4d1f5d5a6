"""Settings, read from the environment the container is started with."""

import os


class Config:
    """Defaults that work without a database server (an in-memory SQLite)."""

    SQLALCHEMY_DATABASE_URI = os.getenv("DATABASE_URL", "sqlite://")
    SQLALCHEMY_TRACK_MODIFICATIONS = False
    SECRET_KEY = os.getenv("SECRET_KEY")
