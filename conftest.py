"""Root conftest: what all three suites share beyond the imagegate plugin (loaded via pytest11).

Suites are marked by directory, so `pytest -m "not stack"` selects across a full run, and the
repo root is the project the plugin gates (its pyproject holds [tool.imagegate]).
"""

from __future__ import annotations

import pytest

pytest_plugins = ["testsupport.evidence"]  # @pytest.mark.shows_failing, and its checks

SUITE_MARKERS = {"tests_image": "image", "tests_stack": "stack"}


def pytest_configure(config: pytest.Config) -> None:
    """``xdist_group``: modules whose module-scoped fixtures are costly keep to one worker under
    ``make test`` (``--dist loadgroup``); registered here too, so runs without xdist accept it."""
    config.addinivalue_line("markers", "xdist_group(name): run these tests on one xdist worker")
    config.addinivalue_line("markers", "prunes: runs `imagegate prune`; holds the stack suite's "
                                       "prune lock alone (tests_stack/conftest.py: prune_lock)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its suite (image/stack) from the directory it lives in."""
    for item in items:
        for part in item.path.parts:
            marker = SUITE_MARKERS.get(part)
            if marker:
                item.add_marker(marker)
