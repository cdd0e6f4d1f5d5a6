"""How a base recipe's package set is resolved: apt-cache's graph, first alternatives, and the
packages a recipe leaves out (the stdlib modules that need them are removed with them)."""

from __future__ import annotations

from typing import Any

import pytest

from imagegate.build import base

#: ``apt-cache depends --recurse`` as it prints a small graph.
GRAPH = """\
libpython3.11-stdlib
  Depends: libpython3.11-minimal
 |Depends: media-types
  Depends: mime-support
  Depends: libdb5.3
  Depends: libnsl2
  Depends: libc6
libpython3.11-minimal
  Depends: libssl3
libnsl2
  Depends: libtirpc3
libtirpc3
  Depends: libgssapi-krb5-2
libgssapi-krb5-2
  Depends: libkrb5-3
libdb5.3
  Depends: libc6
media-types
libssl3
  Depends: libc6
  Depends: debconf
libc6
  Depends: libgcc-s1
libgcc-s1
"""


@pytest.fixture
def apt(monkeypatch: pytest.MonkeyPatch) -> None:
    """apt-cache answers from GRAPH; every candidate version is 1.0."""
    monkeypatch.setattr(base, "_apt_cache", lambda args: GRAPH)
    monkeypatch.setattr(base, "_versions", lambda names: dict.fromkeys(names, "1.0"))


def test_closure_takes_first_alternatives_and_stops_at_installation_machinery(apt: Any) -> None:
    found = base._resolve(("libpython3.11-stdlib",), ())
    assert set(found) == {"libpython3.11-stdlib", "libpython3.11-minimal", "media-types",
                          "libdb5.3", "libnsl2", "libtirpc3", "libgssapi-krb5-2", "libkrb5-3",
                          "libssl3", "libc6", "libgcc-s1"}


def test_left_out_packages_and_what_only_they_pull_in_are_not_taken(apt: Any) -> None:
    found = base._resolve(("libpython3.11-stdlib",), (), frozenset({"libdb5.3", "libnsl2"}))
    assert set(found) == {"libpython3.11-stdlib", "libpython3.11-minimal", "media-types",
                          "libssl3", "libc6", "libgcc-s1"}


def test_the_python_recipe_drops_each_module_whose_library_it_leaves_out() -> None:
    """Leaving a library out without its module would ship a module that cannot import."""
    needs = {"libdb5.3": "_dbm", "libncursesw6": "_curses", "libreadline8": "readline",
             "libnsl2": "nis"}
    recipe = next(r for r in base.recipes("python") if r.kind == "python")
    for lib, module in needs.items():
        assert lib in recipe.leave_out
        assert module in base.PY_DROP_MODULES, f"{lib} is left out but {module} still ships"
