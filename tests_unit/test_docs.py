"""One page per check (docs/checks/<ID>.md): generated head, hand-written body, live links."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from imagegate import docs
from imagegate.checks import catalogue
from imagegate.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("check_id", list(catalogue.CATALOGUE))
def test_every_check_has_a_current_page(check_id: str) -> None:
    """The page exists, its generated head matches the catalogue (`make docs` rewrites it), and
    every hand-written section says something (no TODO left)."""
    path = ROOT / docs.PAGES / f"{check_id}.md"
    assert path.is_file(), f"no page for {check_id}: run `make docs`, then write its sections"
    text = path.read_text()
    assert docs.render_page(catalogue.CATALOGUE[check_id], text) == text, "run `make docs`"
    body = text.partition(docs.HEAD_END)[2]
    for title in docs.SECTIONS:
        found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", body, re.M | re.S)
        assert found, f"{path.name}: no section {title!r}"
        assert found.group(1).strip() not in ("", "TODO"), f"{path.name}: {title!r} is empty"


def test_no_page_without_a_check() -> None:
    """A renamed or removed check leaves no orphan page."""
    pages = {p.stem for p in (ROOT / docs.PAGES).glob("*.md")}
    assert pages == set(catalogue.CATALOGUE), sorted(pages ^ set(catalogue.CATALOGUE))


def test_every_help_uri_names_an_existing_page() -> None:
    """SARIF's helpUri (and the reports' links) of every check name a page of this repository
    ([project.urls] Repository), so they resolve once the project is published."""
    for spec in catalogue.CATALOGUE.values():
        uri = spec.help_uri
        assert uri.startswith(catalogue.repository() + "/blob/main/"), uri
        assert (ROOT / uri.split("/blob/main/", 1)[1]).is_file(), uri


def test_explain_prints_every_page_and_refuses_an_unknown_id() -> None:
    """`imagegate explain ID` for every id (any case); hadolint's rules point at its wiki; an
    unknown id is one line naming close matches."""
    for check_id in catalogue.CATALOGUE:
        assert docs.explain(check_id.lower(), ROOT).startswith(f"# {check_id}\n")
    assert "https://github.com/hadolint/hadolint/wiki/DL3008" in docs.explain("DL3008")
    with pytest.raises(UsageError) as caught:
        docs.explain("IG-FLASK-DEBUGER")
    assert caught.value.message == ("no check 'IG-FLASK-DEBUGER'; `imagegate checks` lists them")
    with pytest.raises(UsageError) as caught:
        docs.explain("SECRET-KEY")
    assert "did you mean IG-FLASK-SECRET-KEY" in caught.value.message


def test_readme_is_a_front_page_and_every_doc_link_resolves() -> None:
    """README.md stays a front page (at most 200 lines: the reference lives in docs/), and every
    relative link in it and in docs/ names a file or folder that exists."""
    readme = ROOT / "README.md"
    assert len(readme.read_text().splitlines()) <= 200
    for page in [readme, *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name}: dead link {target}"


def test_explain_without_the_docs_folder_names_the_page(tmp_path: Path) -> None:
    """Installed from a wheel (no docs/ beside the package): the generated head and the link
    to the whole page."""
    text = docs.explain("IG-FLASK-DEBUGGER", tmp_path)
    assert text.startswith("# IG-FLASK-DEBUGGER\n")
    assert text.rstrip().endswith(catalogue.CATALOGUE["IG-FLASK-DEBUGGER"].help_uri)
