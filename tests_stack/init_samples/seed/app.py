"""The seed's service, reduced to one module: a greeting and a health endpoint."""

import os

from flask import Flask, jsonify

app = Flask(__name__)


@app.route("/")
def index():
    """The front page."""
    return f"{os.environ.get('GREETING', 'Hello')} from seedmulti\n"


@app.route("/healthz")
def healthz():
    """Liveness: the process answers."""
    return jsonify(status="ok")
