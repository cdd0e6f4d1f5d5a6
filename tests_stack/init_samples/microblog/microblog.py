"""The WSGI entry point, as the Mega-Tutorial has it (`FLASK_APP=microblog.py`)."""

from app.models import Post

from app import create_app, db

app = create_app()


@app.shell_context_processor
def make_shell_context():
    """Names `flask shell` starts with."""
    return {"db": db, "Post": Post}
