"""What a service runs, read from its command line: a WSGI server or Flask, a proxy, the port.

Pure functions over argvs and image references (no engine, no files), shared by discovery (which
service is the Flask app, which port it serves) and the checks:

* :func:`server` names the Python web server an argv starts (``gunicorn``, ``flask run``, …);
* :func:`bind_port` reads the port that server binds (``--bind 0.0.0.0:5000``, ``-p 8080``,
  ``flask run``'s default 5000);
* :func:`proxy` tells a reverse proxy's image (nginx, caddy, traefik, httpd, haproxy …), which
  is never the app, whatever it publishes.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

#: Images of reverse proxies (the repository's last path component, or that name + ``-…``).
PROXIES = ("nginx", "caddy", "traefik", "httpd", "haproxy", "envoy", "openresty", "varnish",
           "apache")
#: Executables that serve a Python web app (``python …`` counts too: ``python manage.py run``).
SERVERS = ("gunicorn", "uwsgi", "waitress-serve", "flask", "hypercorn", "uvicorn", "granian",
           "daphne")
PYTHON = re.compile(r"^python(\d+(\.\d+)*)?$")
#: flask run's port when none is given (Flask's own default).
FLASK_RUN_PORT = 5000


def words(argv: Sequence[str]) -> list[str]:
    """``argv`` with each ``sh -c`` script split into its words too (what the shell would run)."""
    out: list[str] = []
    for word in argv:
        if " " in word.strip():
            try:
                out.extend(shlex.split(word))
            except ValueError:
                out.extend(word.split())
        else:
            out.append(word)
    return out


def _name(word: str) -> str:
    """The executable's name of a word (``/venv/bin/gunicorn`` → ``gunicorn``)."""
    return word.rsplit("/", 1)[-1]


def server(argv: Sequence[str]) -> str:
    """The web server ``argv`` starts (``gunicorn``, ``flask run``, ``python``…), or ""."""
    found = ""
    tokens = words(argv)
    for index, word in enumerate(tokens):
        name = _name(word)
        if name in SERVERS:
            if name == "flask":
                return "flask run" if "run" in tokens[index + 1:] else "flask"
            return name
        if PYTHON.match(name) and not found:
            rest = tokens[index + 1:]
            if rest[:2] in (["-m", "gunicorn"], ["-m", "flask"], ["-m", "uvicorn"],
                            ["-m", "waitress"]):
                return rest[1] + (" run" if rest[1] == "flask" and "run" in rest else "")
            found = "python"
    return found


def bind_port(argv: Sequence[str]) -> tuple[int, str]:
    """(port, the words that say it) the server in ``argv`` binds; (0, "") when it does not say.

    gunicorn/hypercorn ``--bind``/``-b HOST:PORT``, uvicorn/hypercorn ``--port``, waitress
    ``--port=``/``--listen=HOST:PORT``, uwsgi ``--http``/``--http-socket``/``--socket``
    ``[HOST]:PORT``, flask run ``--port``/``-p`` (else its default, 5000).
    """
    tokens = words(argv)
    kind = server(tokens)
    options = {"--bind": "addr", "-b": "addr", "--listen": "addr", "--http": "addr",
               "--http-socket": "addr", "--socket": "addr", "--port": "port"}
    if kind in ("flask run", "python"):
        options["-p"] = "port"
    for index, word in enumerate(tokens):
        flag, eq, value = word.partition("=")
        if flag not in options:
            continue
        if not eq:
            if index + 1 >= len(tokens):
                continue
            value = tokens[index + 1]
            said = f"{flag} {value}"
        else:
            said = word
        text = value.rsplit(":", 1)[-1] if options[flag] == "addr" else value
        if text.isdigit():
            return int(text), said
    if kind == "flask run" or (kind == "python" and "run" in tokens):
        return FLASK_RUN_PORT, "flask run (default port)"
    return 0, ""


def proxy(ref: str) -> str:
    """The proxy an image reference names (``nginx`` for ``nginx:1.25``), or ""."""
    if not ref:
        return ""
    name = ref.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1].split(":", 1)[0].lower()
    return next((p for p in PROXIES if last == p or last.startswith(f"{p}-")), "")


def shown(argv: Sequence[str], width: int = 80) -> str:
    """An argv as one shell-quoted line, cut to ``width``."""
    text = shlex.join(argv)
    return text if len(text) <= width else text[: width - 1] + "…"
