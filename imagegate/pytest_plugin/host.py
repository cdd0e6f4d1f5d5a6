"""testinfra's ``host`` fixture, made the container of the image under test in the image suite.

Registered by :func:`imagegate.pytest_plugin.pytest_configure`, after every entry-point plugin, so this
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
    from imagegate.pytest_plugin import in_image_suite

    if in_image_suite(request):
        return request.getfixturevalue("app_host")
    return _testinfra_host


@pytest.fixture(scope="session")
def app_sockets(ready_container: Any) -> Any:
    """The web container's listening TCP sockets (``Socket(address, port)``), read from outside
    it: where testinfra's ``host.socket()`` needs ``ss`` or ``netstat`` in the image (a slim or
    distroless image has neither), this reads the container's ``/proc/net/tcp*`` the way the
    generic checks do::

        def test_listens(app_sockets):
            assert any(s.port == 8000 and not s.loopback_only for s in app_sockets)

    Skips with the reason when they cannot be read (a remote engine and no ``cat`` in the
    image). Override it to read them another way."""
    from imagegate.facts import runtime

    found = runtime.listening_sockets(ready_container.container)
    if isinstance(found, runtime.Skip):
        pytest.skip(found.reason)
    return found


@pytest.fixture(scope="session")
def app_processes(ready_container: Any) -> Any:
    """The web container's processes (``Proc(pid, uid, command)``), from the engine's view
    (this host's ``/proc``, else ``docker top``): where testinfra's ``host.process`` needs ``ps``
    in the image::

        def test_no_root_process(app_processes):
            assert all(p.uid != 0 for p in app_processes)

    Skips with the reason when they cannot be read."""
    from imagegate.facts import runtime

    found = runtime.process_uids(ready_container.container)
    if isinstance(found, runtime.Skip):
        pytest.skip(found.reason)
    return found
