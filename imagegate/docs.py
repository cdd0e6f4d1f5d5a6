"""The generated docs: the README's tables, and one page per check.

``python -m imagegate.docs README.md`` rewrites what stands between the ``<!-- NAME:begin -->``
and ``<!-- NAME:end -->`` markers, and every check's page ``docs/checks/<ID>.md``: its generated
head (id, title, stage, evidence, severity per profile, kind) from the catalogue, kept above the
hand-written part (what it proves, why it matters, how to fix, how to suppress), which a new
check gets as a stub to fill in. tests_unit checks both are current, so the docs cannot drift
from the code; ``imagegate explain ID`` prints a page.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

from imagegate.checks import catalogue
from imagegate.config import settings

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


#: Where the check pages live, relative to the repository root.
PAGES = Path("docs") / "checks"
#: The hand-written sections every page has (a stub until someone writes them).
SECTIONS = ("What it proves", "Why it matters", "How to fix", "How to suppress")
HEAD_END = "<!-- generated: edit below this line -->"


def page_head(spec: catalogue.CheckSpec) -> str:
    """The generated head of a check's page."""
    kind = spec.category
    hardened = spec.hardened if spec.hardened != spec.baseline else f"{spec.hardened} (same)"
    budget = f" ({spec.user_set} set by you: error)" if spec.user_set else ""
    return (f"# {spec.id}\n\n> {spec.title}\n\n"
            "| stage | evidence | baseline | hardened | kind |\n|---|---|---|---|---|\n"
            f"| {spec.stage} | {spec.evidence} | {spec.baseline}{budget} | {hardened} | {kind} |\n"
            f"\n{HEAD_END}\n")


def render_page(spec: catalogue.CheckSpec, old: str) -> str:
    """The page of ``spec``: the current head, then the hand-written part of ``old`` (a stub
    with every section when there is none yet)."""
    _, found, body = old.partition(HEAD_END + "\n")
    if not found:
        body = "".join(f"\n## {title}\n\nTODO\n" for title in SECTIONS)
    return page_head(spec) + body


def write_pages(root: Path) -> list[Path]:
    """Write every check's page under ``root/docs/checks``; the ones that changed."""
    folder = root / PAGES
    folder.mkdir(parents=True, exist_ok=True)
    changed = []
    for spec in catalogue.CATALOGUE.values():
        path = folder / f"{spec.id}.md"
        old = path.read_text() if path.is_file() else ""
        new = render_page(spec, old)
        if new != old:
            path.write_text(new)
            changed.append(path)
    return changed


def explain(check_id: str, root: Path | None = None) -> str:
    """The page of ``check_id`` (``imagegate explain``); hadolint's rules point at its wiki."""
    from imagegate.errors import UsageError

    wanted = check_id.strip().upper()
    if catalogue.HADOLINT_ID.match(wanted):
        spec = catalogue.spec(wanted)
        return (f"# {wanted}\n\n> one of hadolint's rules (its own page: {spec.help_uri})\n\n"
                "Severity: hadolint's level (style counts as info); at `hardened`, its errors "
                "and warnings are errors. Suppress with `# hadolint ignore={id}` on the line "
                "above the instruction, or `ignore` in [tool.imagegate].\n").replace("{id}", wanted)
    if wanted not in catalogue.CATALOGUE:
        close = [c for c in catalogue.CATALOGUE if wanted.removeprefix("IG-") in c]
        hint = f" (did you mean {', '.join(close[:3])}?)" if close else ""
        raise UsageError(f"no check {check_id!r}{hint}; `imagegate checks` lists them")
    spec = catalogue.CATALOGUE[wanted]
    path = (root or _root()) / PAGES / f"{wanted}.md"
    if path.is_file():
        return path.read_text()
    # an installed wheel has no docs/: the generated head, and where the whole page is
    return page_head(spec) + f"\nThe whole page: {spec.help_uri}\n"


def _root() -> Path:
    """The repository the docs live in (this package's parent)."""
    return Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    """Rewrite the files named on the command line in place, and the check pages beside them;
    print the ones that changed."""
    names = argv if argv is not None else sys.argv[1:]
    for name in names:
        path = Path(name)
        old = path.read_text()
        new = render(old)
        if new != old:
            path.write_text(new)
            print(f"{path}: tables updated")
    root = Path(names[0]).resolve().parent if names else _root()
    for path in write_pages(root):
        print(f"{path}: page updated")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
