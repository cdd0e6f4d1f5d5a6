"""gunicorn settings for the image, read from the environment (written by `imagegate init`).

``gunicorn --config gunicorn.conf.py APP``. Variables, with their defaults: PORT (8000),
WEB_CONCURRENCY (2 worker processes), GUNICORN_THREADS (4 per worker), GUNICORN_TIMEOUT (30 s),
GUNICORN_GRACEFUL_TIMEOUT (8 s), FORWARDED_ALLOW_IPS (127.0.0.1), LOG_LEVEL (info).
A bad value stops the master with one line on stderr and exit code 78 (EX_CONFIG).
"""

import os
import sys


def _int(name, default, low, high):
    """An integer variable within [low, high], or one line on stderr and exit 78."""
    raw = os.environ.get(name, "").strip()
    try:
        value = int(raw) if raw else default
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        print(f"gunicorn.conf.py: {name} must be an integer from {low} to {high} "
              f"(got {raw[:40]!r})", file=sys.stderr, flush=True)
        sys.exit(78)
    return value


bind = [f"0.0.0.0:{_int('PORT', 8000, 1, 65535)}"]
workers = _int("WEB_CONCURRENCY", 2, 1, 64)
worker_class = "gthread"
threads = _int("GUNICORN_THREADS", 4, 1, 256)
timeout = _int("GUNICORN_TIMEOUT", 30, 0, 3600)
# Below docker's default 10 s stop timeout: SIGTERM ends with exit 0, not SIGKILL.
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 8, 0, 3600)
keepalive = 5
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
accesslog = "-"
errorlog = "-"
# Load the app once in the master: an app that cannot start fails the container at once.
preload_app = True
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# The worker heartbeat needs a writable tmpfs: the container's root filesystem is read-only.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# gunicorn >= 25.1 opens a control socket under ~/.gunicorn by default: unwritable here.
control_socket_disable = True
