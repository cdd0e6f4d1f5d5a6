"""The greeting views."""

from flask import Blueprint, current_app

bp = Blueprint("hello", __name__)


@bp.route("/")
def index():
    """The front page: a greeting."""
    return f"{current_app.config['GREETING']}, World!\n"


@bp.route("/hello")
def hello():
    """A plain greeting, as the Flask tutorial's factory has."""
    return "Hello, World!\n"
