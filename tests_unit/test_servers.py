"""What a service runs, read from its argv: the server, the port it binds, proxies."""

from __future__ import annotations

import pytest

from imagegate.model import servers


@pytest.mark.parametrize(("argv", "kind", "port"), [
    (["gunicorn", "--bind", "0.0.0.0:5000", "manage:app"], "gunicorn", 5000),
    (["/venv/bin/gunicorn", "-b=:8080", "app:app"], "gunicorn", 8080),
    (["gunicorn", "app:app"], "gunicorn", 0),
    (["/entrypoint.sh", "gunicorn", "-b", "[::]:9000", "x:y"], "gunicorn", 9000),
    (["flask", "run", "--host", "0.0.0.0"], "flask run", 5000),
    (["flask", "--app", "x", "run", "-p", "8001", "--debug"], "flask run", 8001),
    (["python", "manage.py", "run", "-h", "0.0.0.0"], "python", 5000),
    (["python3", "-m", "gunicorn", "--bind=0.0.0.0:7000", "a:b"], "gunicorn", 7000),
    (["/bin/sh", "-c", "flask db upgrade && gunicorn -b 0.0.0.0:8000 w:app"], "flask", 8000),
    (["waitress-serve", "--listen=0.0.0.0:6543", "app:app"], "waitress-serve", 6543),
    (["uwsgi", "--http", ":9090", "--module", "app"], "uwsgi", 9090),
    (["celery", "-A", "app", "worker"], "", 0),
    (["nginx", "-g", "daemon off;"], "", 0),
])
def test_server_and_port(argv: list[str], kind: str, port: int) -> None:
    """The server an argv starts and the port it binds (0 when it does not say)."""
    assert servers.server(argv) == kind
    assert servers.bind_port(argv)[0] == port


@pytest.mark.parametrize(("ref", "expected"), [
    ("nginx:1.25", "nginx"), ("nginxinc/nginx-unprivileged:1.25", "nginx"),
    ("docker.io/library/caddy:2", "caddy"), ("traefik:v3@sha256:" + "0" * 64, "traefik"),
    ("httpd:2.4", "httpd"), ("python:3.11-slim", ""), ("myorg/nginxapp:1", ""), ("", ""),
])
def test_proxy(ref: str, expected: str) -> None:
    """A reverse proxy's image is named by its repository's last component."""
    assert servers.proxy(ref) == expected
