"""Session fixtures for the stock-image stand-ins.

A conftest takes them with ``pytest_plugins = ["testsupport.fixtures"]`` (root conftest only) or
by importing them: ``from testsupport.fixtures import python_slim_image, redis_alpine_image``
(and ``postgres_image``, ``nginx_image``).
Each makes its stand-in once per session when the image is missing (see
:mod:`testsupport.standins`) and returns the tag, so a test never depends on a registry.
"""

from __future__ import annotations

import pytest

from . import standins


@pytest.fixture(scope="session")
def python_slim_image() -> str:
    """``python:3.11-slim``: the local image, or a Debian stand-in made for the session.

    Seconds when the rootfs is cached, about a minute the first time on a machine (debootstrap).
    Override this fixture to test against another tag.
    """
    return standins.ensure_python_slim(log=_progress)


@pytest.fixture(scope="session")
def redis_alpine_image() -> str:
    """``redis:7-alpine``: the local image, or a stand-in built on the local Redis base.

    Makes the base (``imagegate base redis``) first when it is missing. Override this fixture to
    test against another tag.
    """
    return standins.ensure_redis_alpine(log=_progress)


@pytest.fixture(scope="session")
def postgres_image() -> str:
    """``postgres:16``: the local image, or a stand-in built from Debian's PostgreSQL 15.

    Built on the ``python:3.11-slim`` stand-in (made first when missing); about 15 s the first
    time. Honours POSTGRES_USER/PASSWORD/DB like the official image. Override this fixture to
    test against another tag.
    """
    return standins.ensure_postgres(log=_progress)


@pytest.fixture(scope="session")
def nginx_image() -> str:
    """``nginx:1.25``: the local image, or a stand-in built from Debian's nginx-light.

    Built on the ``python:3.11-slim`` stand-in (made first when missing); a few seconds the
    first time. Serves conf.d/*.conf on port 80, logs to stdout/stderr. Override this fixture to
    test against another tag.
    """
    return standins.ensure_nginx(log=_progress)


def _progress(message: str) -> None:
    """Stand-in progress: captured by pytest, shown with a failing setup."""
    print(f"[standins] {message}")
