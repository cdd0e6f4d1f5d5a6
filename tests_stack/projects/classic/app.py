"""A hit counter: Flask in front, Redis keeping the count."""

import os

from flask import Flask
from redis import Redis

app = Flask(__name__)
redis = Redis.from_url(os.environ.get("REDIS_URL", "redis://redis:6379/0"))


@app.route("/")
def hello():
    """Count this visit and say how many there have been."""
    count = redis.incr("hits")
    return f"Hello! seen {count} times\n"


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=5000, debug=True)
