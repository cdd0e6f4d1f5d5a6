"""Command line for the app: `python manage.py run`, `create_db`, `seed_db`.

gunicorn serves `manage:app`, the same object.
"""

from flask.cli import FlaskGroup
from project import User, app, db

cli = FlaskGroup(create_app=lambda: app)


@cli.command("create_db")
def create_db():
    """Drop every table and create them again, empty."""
    db.drop_all()
    db.create_all()
    db.session.commit()


@cli.command("seed_db")
def seed_db():
    """Add one user to play with."""
    db.session.add(User(email="someone@example.com"))
    db.session.commit()


if __name__ == "__main__":
    cli()
