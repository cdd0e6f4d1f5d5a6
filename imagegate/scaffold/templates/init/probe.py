"""Ask Flask about a project: run by `imagegate init` in a throwaway copy, in a subprocess.

Standalone on purpose (stdlib + Flask only): it runs under whichever interpreter has the
project's dependencies, never imports imagegate, and touches only the copy it runs in.

    python probe.py REQUEST.json RESULT.json

``find``: import each candidate as ``flask --app CANDIDATE`` would (Flask's own
``prepare_import`` + ``locate_app``/``find_best_app``) and report what each one holds.
``inspect``: load the chosen app, then report its routes, the first health path answering 200
in the test client, its instance folder, template/static folders, the project modules it
imported, its CLI commands and where its SECRET_KEY came from.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import os
import sys
import traceback
from typing import Any


def _local_modules(root: str) -> list[str]:
    """Root-relative files of the modules imported from inside ``root``."""
    found = set()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None) or ""
        if path and os.path.abspath(path).startswith(root + os.sep):
            found.add(os.path.relpath(os.path.abspath(path), root).replace(os.sep, "/"))
    return sorted(found)


#: Files under the project the app opened for reading while it loaded (config, data files):
#: recorded by an audit hook, so the image's allowlist holds them too.
_OPENED: set[str] = set()


def _audit(event: str, args: tuple[Any, ...]) -> None:
    """Record ``open`` of an existing file for reading (writes are the app's data, not code)."""
    if event != "open" or not args or not isinstance(args[0], str):
        return
    mode = args[1] if len(args) > 1 and isinstance(args[1], str) else "r"
    if not any(c in mode for c in "wax+") and os.path.isfile(args[0]):
        _OPENED.add(os.path.abspath(args[0]))


def _opened(root: str) -> list[str]:
    """Root-relative files opened for reading since the last call."""
    found = sorted(os.path.relpath(p, root).replace(os.sep, "/") for p in _OPENED
                   if p.startswith(root + os.sep) and "__pycache__" not in p
                   and not p.endswith((".py", ".pyc")))
    _OPENED.clear()
    return found


def _forget(root: str) -> None:
    """Drop modules imported from ``root`` so the next candidate imports afresh."""
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None) or ""
        if path and os.path.abspath(path).startswith(root + os.sep):
            del sys.modules[name]


def _spec(module: Any, app: Any) -> tuple[str, str]:
    """How gunicorn reaches ``app`` in ``module``: (``name`` or ``factory()``, kind)."""
    for name in ("app", "application"):
        if getattr(module, name, None) is app:
            return name, "instance"
    for name, value in vars(module).items():
        if value is app:
            return name, "instance"
    for name in ("create_app", "make_app"):
        if inspect.isfunction(getattr(module, name, None)):
            return f"{name}()", "factory"
    return "", "unknown"


def _load(import_path: str, app_name: str | None) -> tuple[Any, Any, str]:
    """(app, module, import name) as ``flask --app import_path[:app_name]`` loads it."""
    from flask.cli import locate_app, prepare_import

    import_name = prepare_import(import_path)
    app = locate_app(import_name, app_name)
    return app, sys.modules[import_name], import_name


def find(request: dict[str, Any]) -> dict[str, Any]:
    """Try each candidate; report an app, "no app", or the error Flask (or the code) raised."""
    from flask.cli import NoAppException

    root = request["root"]
    out = []
    for cand in request["candidates"]:
        entry: dict[str, Any] = {"path": cand["path"], "name": cand.get("name")}
        saved = list(sys.path)
        _opened(root)
        try:
            app, module, import_name = _load(cand["path"], cand.get("name"))
            attr, kind = (cand["name"], "given") if cand.get("name") else _spec(module, app)
            entry.update(status="app", import_name=import_name, attr=attr, kind=kind,
                         app_import_name=app.import_name,
                         sys_path=os.path.relpath(sys.path[0], root).replace(os.sep, "/"),
                         files=_local_modules(root) + _opened(root),
                         folders=[os.path.relpath(f, root).replace(os.sep, "/")
                                  for f in _folders(app)])
        except NoAppException as exc:
            text = str(exc)
            status = "none" if text.startswith("Failed to find Flask application") else "error"
            if text.startswith("Detected multiple Flask applications"):
                status = "multiple"
            entry.update(status=status, error=text.strip().splitlines()[-1] if status == "error"
                         and "ImportError" in text else text.strip().splitlines()[0])
        except BaseException as exc:  # the project's own code raised while importing
            if isinstance(exc, KeyboardInterrupt):
                raise
            tb = traceback.extract_tb(exc.__traceback__)
            where = next((f"{os.path.relpath(f.filename, root)}:{f.lineno}" for f in reversed(tb)
                          if os.path.abspath(f.filename).startswith(root + os.sep)), "")
            entry.update(status="error", error=f"{type(exc).__name__}: {exc}".strip()[:300],
                         where=where)
        finally:
            sys.path[:] = saved
            _forget(root)
        out.append(entry)
    return {"candidates": out}


def _bare_import(import_path: str, root: str) -> str:
    """"" when the module imports with none of the secrets set (the build's smoke test), else
    why not."""
    from flask.cli import prepare_import

    saved = list(sys.path)
    try:
        __import__(prepare_import(import_path))
        return ""
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        return f"{type(exc).__name__}: {exc}"[:200]
    finally:
        sys.path[:] = saved
        _forget(root)


def _folders(app: Any) -> list[str]:
    """Template and static folders of the app and its blueprints that exist."""
    found = []
    for scaffold in [app, *app.blueprints.values()]:
        for attr in ("template_folder", "static_folder"):
            folder = getattr(scaffold, attr, None)
            if not folder:
                continue
            path = os.path.join(scaffold.root_path, folder)
            if os.path.isdir(path):
                found.append(os.path.abspath(path))
    return sorted(set(found))


def _health(app: Any, paths: list[str]) -> tuple[str, list[dict[str, Any]], list[str]]:
    """The first of ``paths`` (then argument-free GET routes, shortest first) answering 200."""
    adapter = app.url_map.bind("localhost")
    simple = sorted({r.rule for r in app.url_map.iter_rules()
                     if not r.arguments and "GET" in (r.methods or ())
                     and r.endpoint != "static"}, key=lambda r: (len(r), r))
    order = [p for p in paths if p in simple or p == "/"] + [r for r in simple if r not in paths]
    tried = []
    client = app.test_client()
    found = ""
    for path in order:
        try:
            adapter.match(path, "GET")
        except Exception:  # no such route (404), or a redirect: not a health path
            continue
        try:
            with contextlib.redirect_stdout(io.StringIO()), \
                    contextlib.redirect_stderr(io.StringIO()):
                status = client.get(path).status_code
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            status = 500
        tried.append({"path": path, "status": status})
        if status == 200:
            found = path
            break
    return found, tried, simple


def inspect_app(request: dict[str, Any]) -> dict[str, Any]:
    """Load the chosen app (with the secrets set) and report what the image needs to know."""
    root = request["root"]
    bare = _bare_import(request["path"], root)
    os.environ.update(request.get("secrets", {}))
    app, _module, import_name = _load(request["path"], request.get("name"))
    import_root = sys.path[0]
    health, tried, routes = _health(app, request["health_paths"])
    secret = app.config.get("SECRET_KEY")
    secret_var = next((k for k, v in request.get("secrets", {}).items() if v == secret), "")
    secret_from = "env" if secret_var else "none" if not secret else "code"
    commands = sorted(getattr(app.cli, "commands", {}))
    uses = {scheme: [k for k, v in app.config.items() if isinstance(v, str)
                     and v.lower().startswith(scheme)] for scheme in ("redis", "postgres")}
    return {
        "import_name": import_name,
        "app_name": app.name,
        "bare_import": bare,
        "health": health,
        "tried": tried,
        "routes": routes,
        "instance_rel": os.path.relpath(app.instance_path, import_root).replace(os.sep, "/"),
        "instance_exists": os.path.isdir(app.instance_path),
        "folders": _folders(app),
        "modules": _local_modules(root),
        "commands": commands,
        "secret_from": secret_from,
        "secret_var": secret_var,
        "config_urls": uses,
    }


def main() -> int:
    """Read the request, answer it in the result file; exit 0 even when the project failed."""
    with open(sys.argv[1]) as fh:
        request = json.load(fh)
    request["root"] = os.path.realpath(request["root"])
    os.chdir(request["root"])
    sys.addaudithook(_audit)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            result = find(request) if request["mode"] == "find" else inspect_app(request)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        result = {"error": f"{type(exc).__name__}: {exc}".strip()[:300]}
    with open(sys.argv[2], "w") as fh:
        json.dump(result, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
