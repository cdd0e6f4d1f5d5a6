"""Small HTTP helpers for the stack suite (bounded timeouts; for use inside wait_until)."""

from __future__ import annotations

import requests


def get(url: str, timeout: float = 10) -> requests.Response:
    """GET with a bounded timeout."""
    return requests.get(url, timeout=timeout)


def status_of(url: str) -> int | None:
    """The HTTP status of GET ``url``, or None when nothing answers (for wait_until)."""
    try:
        return get(url, timeout=3).status_code
    except requests.RequestException:
        return None
