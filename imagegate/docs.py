"""The README's generated tables: every setting with its default, every check with its severity.

``python -m imagegate.docs README.md`` rewrites what stands between the ``<!-- NAME:begin -->``
and ``<!-- NAME:end -->`` markers; tests_unit checks the README is current, so the docs cannot
drift from the code.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

from . import catalogue, settings

TABLES = {"settings": settings.markdown, "checks": catalogue.markdown}


def render(text: str) -> str:
    """``text`` with every generated table replaced by its current rendering."""
    for name, make in TABLES.items():
        pattern = re.compile(rf"(<!-- {name}:begin -->\n).*?(\n<!-- {name}:end -->)", re.DOTALL)
        text = pattern.sub(_replacement(make()), text)
    return text


def _replacement(table: str) -> Callable[[re.Match[str]], str]:
    """A ``re.sub`` replacement keeping the markers around ``table``."""
    return lambda m: m.group(1) + table + m.group(2)


def main(argv: list[str] | None = None) -> int:
    """Rewrite the files named on the command line in place; print the ones that changed."""
    for name in argv if argv is not None else sys.argv[1:]:
        path = Path(name)
        old = path.read_text()
        new = render(old)
        if new != old:
            path.write_text(new)
            print(f"{path}: tables updated")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
