"""testinfra's ``host`` fixture, made the container of the image under test in the image suite.

Registered by :func:`imagegate.plugin.pytest_configure`, after every entry-point plugin, so this
``host`` overrides testinfra's. Outside the image suite it hands back testinfra's own host
(``--hosts``, else the local machine): a project that merely has imagegate installed sees no
change.
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="module")
def host(request: pytest.FixtureRequest, _testinfra_host: Any) -> Any:
    """testinfra's host; in the image suite, the running container of the image under test::

        def test_runs_as_app(host):
            assert host.user().name == "app"
    """
    from .plugin import in_image_suite

    if in_image_suite(request):
        return request.getfixturevalue("app_host")
    return _testinfra_host
