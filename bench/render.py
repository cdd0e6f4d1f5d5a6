"""Render RESULTS.md from a run's results, without measuring anything.

    .venv/bin/python -m bench.render [RESULTS_JSON] [--out RESULTS.md] [--history history.toml]

Defaults: ``bench/results/results.json`` → ``bench/RESULTS.md``, with ``bench/history.toml``.
The template is ``bench/templates/RESULTS.md.j2`` (one included file per section); medians,
ratios and formats come from :mod:`bench.figures` (registered as filters and globals), targets
and verdicts from :mod:`bench.targets`. A missing section renders as "not measured"; a missing
or broken file stops with one line naming it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2

from . import figures
from .common import RESULTS_JSON, SCHEMA
from .targets import BY_KEY, TARGETS, Verdict, verdicts

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
HISTORY = HERE / "history.toml"
OUT = HERE / "RESULTS.md"
#: Every section a results file may hold, and what stands for "not measured".
SECTIONS: dict[str, Any] = {
    "machine": {}, "params": {}, "busy": {}, "skipped": {}, "ours": None, "seed": None,
    "sizes": [], "init_sizes": [], "builds": {}, "starts": {}, "load": {}, "gate": None,
    "sample_gate": None, "variants": None, "ci": None, "pipeline": {}, "seconds": None,
}
CHANGE_FIELDS = ("target", "what", "before", "after", "where")
BEFORE_FIELDS = ("target", "round", "figure", "source")


class ResultsError(Exception):
    """A results or history file that cannot be rendered: which file, and why."""

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(f"{path}: {why}")
        self.path = path


def load_results(path: Path) -> dict[str, Any]:
    """The results JSON at ``path``, checked for what the renderer relies on."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultsError(path, "no such file (run `make bench`, or name a results.json)") from None
    except OSError as exc:
        raise ResultsError(path, f"cannot be read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ResultsError(path, f"not JSON (line {exc.lineno}, column {exc.colno}: "
                                 f"{exc.msg})") from None
    if not isinstance(data, dict):
        raise ResultsError(path, f"holds a JSON {type(data).__name__}, not an object")
    if data.get("schema") != SCHEMA:
        raise ResultsError(path, f"schema {data.get('schema')!r}, this renderer reads "
                                 f"schema {SCHEMA}")
    return data


def load_history(path: Path) -> dict[str, list[dict[str, str]]]:
    """``before`` and ``changes`` from the history file, each entry checked."""
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ResultsError(path, "no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ResultsError(path, f"not TOML ({exc})") from None
    out: dict[str, list[dict[str, str]]] = {}
    for table, fields in (("before", BEFORE_FIELDS), ("changes", CHANGE_FIELDS)):
        entries = raw.get(table, [])
        for i, entry in enumerate(entries, 1):
            missing = [f for f in fields if not str(entry.get(f, "")).strip()]
            if missing:
                raise ResultsError(path, f"[[{table}]] #{i} lacks {', '.join(missing)}")
            if entry["target"] not in BY_KEY:
                raise ResultsError(path, f"[[{table}]] #{i}: target {entry['target']!r} is not "
                                         f"declared in bench/targets.py ({', '.join(BY_KEY)})")
        out[table] = entries
    return out


def complete(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with every section present (absent ones as "not measured")."""
    return {**SECTIONS, **{k: v for k, v in data.items() if v is not None}}


def now(verdict: Verdict) -> str:
    """This run's figure of a target, or "not measured (why)"."""
    if verdict.measured is None:
        return f"not measured ({verdict.why})"
    return verdict.measured.figure


def environment() -> jinja2.Environment:
    """The Jinja environment: the templates, :mod:`bench.figures`' filters and globals, strict
    about undefined names (a typo in the template fails the tests, not the reader)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False,
        extensions=["jinja2.ext.do"])
    env.filters.update(figures.FILTERS)
    env.filters["now"] = now
    env.globals.update(figures.GLOBALS)
    env.globals.update(targets=TARGETS, target=BY_KEY, paths=figures.PATHS)
    return env


def render_section(name: str, **context: Any) -> str:
    """One section template (``sections/<name>.md.j2``) alone, e.g. for ``bench.variants``."""
    return environment().get_template(f"sections/{name}.md.j2").render(**context)


def render(data: Mapping[str, Any], history: Mapping[str, Any] | None = None) -> str:
    """The whole RESULTS.md for a run's results (as :func:`bench.results.to_data` makes them,
    or as read back from results.json) and the history."""
    r = complete(data)
    hist = dict(history) if history is not None else load_history(HISTORY)
    text = environment().get_template("RESULTS.md.j2").render(
        r=r, v=verdicts(r), history={"before": [], "changes": [], **hist})
    lines = "\n".join(line.rstrip() for line in text.splitlines())
    return re.sub(r"\n{3,}", "\n\n", lines).strip() + "\n"  # an empty section leaves no gap


def main(argv: Sequence[str] | None = None) -> int:
    """Render; one line on stderr and exit 2 when a file is missing or broken."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", nargs="?", type=Path, default=RESULTS_JSON,
                   help=f"the run's results (default {RESULTS_JSON.relative_to(HERE.parent)})")
    p.add_argument("--out", type=Path, default=OUT, help="where RESULTS.md goes")
    p.add_argument("--history", type=Path, default=HISTORY, help="figures from before")
    args = p.parse_args(argv)
    try:
        data, history = load_results(args.results), load_history(args.history)
        try:
            text = render(data, history)
        except (jinja2.UndefinedError, KeyError, TypeError, AttributeError) as exc:
            raise ResultsError(args.results, f"a section is not in the shape schema {SCHEMA} "
                                             f"has ({type(exc).__name__}: {exc})") from None
    except ResultsError as exc:
        print(f"bench.render: {exc}", file=sys.stderr)
        return 2
    args.out.write_text(text)
    print(f"bench.render: wrote {args.out} from {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
