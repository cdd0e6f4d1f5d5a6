"""Negative evidence, read from the suites themselves: a test that shows a check failing is marked
``@pytest.mark.shows_failing("IG-…")`` (every id it makes fail, hadolint's rules included).

A pytest plugin (``-p testsupport.evidence``) with two options, used by tests_unit/test_evidence.py:

``--evidence-list FILE``
    at collection, write ``{node id: [ids]}`` of every marked test (no test runs).
``--evidence-stub FILE``
    run each marked test once per check id it names, that check's function stubbed to pass
    (:func:`stubbed`), and write ``{node id: {id: "failed" | "passed" | "skipped" | error}}``:
    a test that still passes with its check stubbed out does not prove that check.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

MARKER = "shows_failing"
ROOT = Path(__file__).resolve().parents[1]
SUITES = ("tests_unit", "tests_image", "tests_stack")
DOC = ROOT / "docs" / "development.md"
START, END = "<!-- evidence:start -->\n", "\n<!-- evidence:end -->"


def marked_ids(item: pytest.Item) -> list[str]:
    """The check ids ``item`` is marked as showing failing (sorted, unique)."""
    return sorted({str(i) for m in item.iter_markers(MARKER) for i in m.args})


def suite_argv(*args: str) -> list[str]:
    """pytest in a subprocess at the repo root, in a fixed order, no cache, no workers."""
    return [sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider",
            "-p", "no:xdist", "--rootdir", str(ROOT), *args]


def collect() -> dict[str, list[str]]:
    """{node id: the check ids it is marked as showing failing}, over all three suites (each
    collected on its own: their conftests share a module name). Collection needs no engine."""
    found: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for suite in SUITES:
            out = Path(tmp) / f"{suite}.json"
            proc = subprocess.run(suite_argv("--collect-only", "-q", f"--evidence-list={out}",
                                              suite),
                                  capture_output=True, text=True, timeout=300, cwd=ROOT,
                                  stdin=subprocess.DEVNULL)
            if proc.returncode != 0:
                raise RuntimeError(f"collecting {suite} failed:\n{proc.stdout[-3000:]}"
                                   f"{proc.stderr[-2000:]}")
            found.update(json.loads(out.read_text()))
    return found


def documented() -> str:
    """The table docs/development.md shows now."""
    page = DOC.read_text()
    return page[page.index(START) + len(START):page.index(END)]


def table(marked: dict[str, list[str]], ids: list[str]) -> str:
    """The Markdown table of where each of ``ids`` is shown failing: the suites holding a test
    marked for it (tests_unit runs with no engine; tests_image and tests_stack need one)."""
    rows = ["| check | " + " | ".join(f"`{s}/`" for s in SUITES) + " |",
            "|---|" + "---|" * len(SUITES)]
    for cid in ids:
        count = [sum(1 for node, found in marked.items() if cid in found and node.startswith(s))
                 for s in SUITES]
        rows.append(f"| `{cid}` | " + " | ".join(str(n) if n else "" for n in count) + " |")
    return "\n".join(rows)


def pytest_addoption(parser: pytest.Parser) -> None:
    """The two options."""
    group = parser.getgroup("evidence", "negative evidence (testsupport.evidence)")
    group.addoption("--evidence-list", metavar="FILE",
                    help="write {node id: [check ids]} of the tests marked shows_failing")
    group.addoption("--evidence-stub", metavar="FILE",
                    help="run each marked test with each of its checks stubbed to pass")


def pytest_collection_finish(session: pytest.Session) -> None:
    """With ``--evidence-list``: write the marked tests and their ids."""
    target = session.config.getoption("evidence_list")
    if target:
        found = {item.nodeid: marked_ids(item) for item in session.items if marked_ids(item)}
        Path(target).write_text(json.dumps(found, indent=1, sort_keys=True))


def passing(check_id: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` made to report a pass: its failing findings dropped from a list (a lint check's pass
    is no finding), a single failing finding turned into a pass, an error it raises (hadolint
    that cannot run) turned into no finding; anything else as it was."""
    from imagegate.results.findings import Finding

    def judged_fine(result: Any) -> Any:
        if isinstance(result, Finding):
            return dataclasses.replace(result, ok=True, message=f"{check_id} stubbed to pass")
        if isinstance(result, list):
            return [f for f in result if not isinstance(f, Finding) or f.ok]
        return result

    @functools.wraps(fn)
    def stub(*args: Any, **kwargs: Any) -> Any:
        try:
            return judged_fine(fn(*args, **kwargs))
        except Exception:  # a check that cannot run, stubbed to pass: nothing found
            return []
    return stub


@contextlib.contextmanager
def stubbed(check_id: str) -> Iterator[None]:
    """Check ``check_id``'s function replaced by :func:`passing` wherever it is reachable: the
    registry, and every loaded module of this repo that holds it by name."""
    from imagegate.checks.catalogue import IMPLEMENTATIONS

    real = IMPLEMENTATIONS[check_id]
    stub = passing(check_id, real)
    root = str(Path(__file__).resolve().parents[1])
    holders = [(mod, name) for mod in list(sys.modules.values())
               if str(getattr(mod, "__file__", "") or "").startswith(root)
               for name, value in list(vars(mod).items()) if value is real]
    IMPLEMENTATIONS[check_id] = stub
    for mod, name in holders:
        setattr(mod, name, stub)
    try:
        yield
    finally:
        IMPLEMENTATIONS[check_id] = real
        for mod, name in holders:
            setattr(mod, name, real)


class StubRun:
    """``--evidence-stub``: the outcomes, written at the end."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.outcomes: dict[str, dict[str, str]] = {}

    @pytest.hookimpl(tryfirst=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> bool | None:
        """Call a marked test once per check it names, that check stubbed to pass."""
        from imagegate.checks.catalogue import IMPLEMENTATIONS

        ids = [i for i in marked_ids(pyfuncitem) if i in IMPLEMENTATIONS]
        if not ids:
            return None
        args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
        seen = self.outcomes.setdefault(pyfuncitem.nodeid, {})
        for check_id in ids:
            with stubbed(check_id):
                seen[check_id] = _outcome(pyfuncitem.obj, args)
        return True

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Write the outcomes."""
        Path(self.target).write_text(json.dumps(self.outcomes, indent=1, sort_keys=True))


def _outcome(test: Callable[..., Any], args: dict[str, Any]) -> str:
    """How ``test(**args)`` ends: failed (an assertion or pytest.fail), passed, skipped, or the
    error that is neither."""
    try:
        test(**args)
    except (AssertionError, pytest.fail.Exception):
        return "failed"
    except pytest.skip.Exception:
        return "skipped"
    except Exception as exc:  # a stub that breaks the test some other way proves nothing
        return f"error: {type(exc).__name__}: {str(exc)[:200]}"
    return "passed"


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker, and the stub run when asked."""
    config.addinivalue_line("markers", f"{MARKER}(*ids): this test shows those checks failing "
                                       "(negative evidence; tests_unit/test_evidence.py)")
    target = config.getoption("evidence_stub")
    if target:
        config.pluginmanager.register(StubRun(target), "evidence-stub")


def write_docs() -> bool:
    """Rewrite docs/development.md's table from the marks (``make docs``); True if it changed."""
    from imagegate.checks.catalogue import CATALOGUE

    want = table(collect(), sorted(CATALOGUE))
    if want == documented():
        return False
    page = DOC.read_text()
    DOC.write_text(page[:page.index(START) + len(START)] + want + page[page.index(END):])
    return True


if __name__ == "__main__":
    print(f"{DOC.relative_to(ROOT)}: evidence table " + ("updated" if write_docs() else "current"))
