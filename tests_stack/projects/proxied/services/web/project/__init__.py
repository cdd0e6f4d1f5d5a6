"""A tiny Flask API with one table, served by gunicorn behind nginx."""

from flask import Flask, jsonify
from flask_sqlalchemy import SQLAlchemy

app = Flask(__name__)
app.config.from_object("project.config.Config")
db = SQLAlchemy(app)


class User(db.Model):
    """Someone who signed up; only an address and a flag for now."""

    __tablename__ = "users"

    id = db.Column(db.Integer, primary_key=True)
    email = db.Column(db.String(128), unique=True, nullable=False)
    active = db.Column(db.Boolean, default=True, nullable=False)

    def to_dict(self):
        """The user as JSON-friendly data."""
        return {"id": self.id, "email": self.email, "active": self.active}


# Make the tables on start-up, so a fresh database is usable at once.
with app.app_context():
    db.create_all()


@app.route("/")
def index():
    """Say hello, as a health check of sorts."""
    return jsonify(hello="world")


@app.route("/users")
def users():
    """Every user, oldest first."""
    rows = db.session.execute(db.select(User).order_by(User.id)).scalars()
    return jsonify(users=[user.to_dict() for user in rows])
