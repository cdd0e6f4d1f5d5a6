"""What a CI machine (``.ci/run``, ``CI=true``) guarantees: a capability a test needs that is
missing there is a failure naming it, not a skip that hides the test's claim. Elsewhere (a
developer's laptop without root, say) the same test skips with the reason."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

#: The environment facts .ci/run provides (it installs and starts what is missing) that a test
#: would otherwise skip without. The engine and debootstrap are not listed: without them the
#: fixtures that need them error, they never skip.
GUARANTEED = {
    "buildkit": "BuildKit through Debian's docker.io CLI (20.10, DOCKER_BUILDKIT=1)",
    "root": "root (the sandbox's user)",
    "unshare": "util-linux's unshare (mount namespaces)",
    "update-ca-certificates": "Debian's ca-certificates tools on the host",
    "host-ca-bundle": "the host's CA bundle holding the TLS-intercepting proxy's CA",
    "hostname-loopback": "this machine's own name resolving to 127.0.0.1 only",
}


def in_ci() -> bool:
    """True on a CI run (``CI=true``, as GitHub, GitLab and .ci/run set it)."""
    return os.environ.get("CI") == "true"


def missing(capability: str, reason: str) -> NoReturn:
    """``capability`` (a key of :data:`GUARANTEED`) is missing here, because ``reason``: a
    failure under CI, a skip elsewhere."""
    __tracebackhide__ = True
    if in_ci():
        pytest.fail(f"CI guarantees {GUARANTEED[capability]}, and it is missing: {reason}",
                    pytrace=False)
    pytest.skip(reason)
