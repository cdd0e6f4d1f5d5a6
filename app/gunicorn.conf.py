"""Gunicorn settings, read from the environment: ``gunicorn -c app/gunicorn.conf.py``.

Gunicorn executes this file in the master before loading the app, so it is
also where a bad configuration stops the container: one line on stderr and
exit code 78 (EX_CONFIG). ``sys.exit`` is used on purpose: gunicorn's config
loader catches ``Exception`` (and prints a traceback) but lets SystemExit pass.

Variables: PORT (8000), WEB_CONCURRENCY (2), GUNICORN_THREADS (4),
GUNICORN_TIMEOUT (30), GUNICORN_GRACEFUL_TIMEOUT (8), GUNICORN_ACCESS_LOG (0),
FORWARDED_ALLOW_IPS (127.0.0.1), LOG_LEVEL (INFO), plus everything
``app.config.load_settings`` reads.

GUNICORN_ACCESS_LOG=1 (or true/yes/on) writes one access line per request to
stdout; it is off by default because that line, through Docker's json-file log
driver, was the largest tail-latency cost measured (``python -m bench.variants``;
numbers in compose.yml). Errors and worker events still go to stderr.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

# Make `app` importable whatever the working directory (gunicorn only adds its --chdir).
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from app.config import ConfigError, load_settings  # noqa: E402

EX_CONFIG = 78
ERROR_PREFIX = "imagegate-app: configuration error: "


def fail(message: str) -> NoReturn:
    """Print one line to stderr and stop the master with EX_CONFIG, no traceback."""
    print(ERROR_PREFIX + message, file=sys.stderr, flush=True)
    sys.exit(EX_CONFIG)


def bool_env(name: str, default: bool) -> bool:
    """Read an on/off switch (1, true, yes, on / 0, false, no, off), or fail naming it."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    fail(f"{name} must be one of 1, true, yes, on, 0, false, no, off (got {raw[:40]!r})")


def int_env(name: str, default: int, low: int, high: int) -> int:
    """Read an integer variable within [low, high], or fail naming it."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        fail(f"{name} must be an integer from {low} to {high} (got {raw[:40]!r})")
    return value


try:
    _settings = load_settings(os.environ)
except ConfigError as exc:
    fail(str(exc))

wsgi_app = "app.wsgi:app"
bind = [f"0.0.0.0:{int_env('PORT', 8000, 1, 65535)}"]
workers = int_env("WEB_CONCURRENCY", 2, 1, 64)
worker_class = "gthread"
threads = int_env("GUNICORN_THREADS", 4, 1, 256)
timeout = int_env("GUNICORN_TIMEOUT", 30, 0, 3600)
# Below docker's default 10 s stop timeout, so SIGTERM ends with exit 0, not SIGKILL.
graceful_timeout = int_env("GUNICORN_GRACEFUL_TIMEOUT", 8, 0, 3600)
keepalive = 5
loglevel = _settings["LOG_LEVEL"].lower()
# Off unless asked for: see the docstring (a front proxy usually logs requests anyway).
accesslog = "-" if bool_env("GUNICORN_ACCESS_LOG", False) else None
errorlog = "-"
# Load the app once in the master: a broken app fails the start, workers fork fast.
preload_app = True
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# The heartbeat file must live on a tmpfs: the container's root fs is read-only.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# Gunicorn >= 25.1 opens a control socket by default under $XDG_RUNTIME_DIR or
# ~/.gunicorn (creating the directory): unwanted and unwritable in the image.
control_socket_disable = True
