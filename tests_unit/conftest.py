"""Fixtures for the app's unit tests: ``app``, ``client``, ``runner`` and a fake Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis.exceptions
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from app import create_app
from app.config import ENV_VARS

PROD_SECRET = "s3cr3t-" + "k" * 25 + "-unit-tests-only"


class FakeRedis:
    """In-memory stand-in for the two commands the app uses; set ``down`` to fail them."""

    def __init__(self) -> None:
        """Start empty and up."""
        self.data: dict[str, int] = {}
        self.down = False

    def _check(self) -> None:
        """Fail like redis-py does when the server cannot be reached."""
        if self.down:
            raise redis.exceptions.ConnectionError(
                "Error 111 connecting to fake:6379. Connection refused."
            )

    def ping(self) -> bool:
        """Answer PING."""
        self._check()
        return True

    def incr(self, key: str, amount: int = 1) -> int:
        """Increment *key* and return the new value, like INCR."""
        self._check()
        self.data[key] = self.data.get(key, 0) + amount
        return self.data[key]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Unset every variable the app reads, so the developer's shell cannot leak in."""
    for name in (*ENV_VARS, "APP_VERSION"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def fake_redis() -> FakeRedis:
    """A fresh FakeRedis, injected into ``app`` as ``REDIS_CLIENT``."""
    return FakeRedis()


@pytest.fixture
def make_app(clean_env: pytest.MonkeyPatch, fake_redis: FakeRedis) -> Callable[..., Flask]:
    """Return a factory: ``make_app(APP_ENV="production", ...)`` with the fake Redis."""

    def factory(**config: Any) -> Flask:
        """Create an app from *config* on top of a clean environment."""
        return create_app({"REDIS_CLIENT": fake_redis, **config})

    return factory


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    """The app in testing mode, fault routes on; override to change its config."""
    yield make_app(APP_ENV="testing", APP_FAULT_ROUTES=True)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client for ``app``."""
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    """A CLI runner for ``app``."""
    return app.test_cli_runner()
