"""The one result type every check returns, and the secret-spotting rules lint and policy share."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import ImagegateError


@dataclass(frozen=True)
class Finding:
    """The outcome of one check on one thing.

    ``check_id`` is stable (``IG-USER-NONROOT``, ``DL3002`` …) so reports and ignore lists can
    name it; ``message`` is one line saying what was expected and what was seen; ``where`` points
    at it (``Dockerfile:12``, ``/srv/app/x``); ``detail`` is longer context for a person.
    """

    check_id: str
    ok: bool
    message: str
    where: str = ""
    detail: str = ""

    def __str__(self) -> str:
        """``ID [where]: message`` on one line, as the CLI prints it."""
        at = f" [{self.where}]" if self.where else ""
        return f"{self.check_id}{at}: {self.message}"


def failures(findings: Iterable[Finding]) -> list[Finding]:
    """Only the findings that failed."""
    return [f for f in findings if not f.ok]


def drop_ignored(findings: Iterable[Finding], ignore: Iterable[str]) -> list[Finding]:
    """``findings`` without those whose id is on the ignore list."""
    skip = set(ignore)
    return [f for f in findings if f.check_id not in skip]


def raise_for(findings: Iterable[Finding], error: type[ImagegateError]) -> None:
    """Raise ``error`` (LintFailed, PolicyViolation …) naming every failure, if there is one."""
    failed = failures(findings)
    if failed:
        head = f"{len(failed)} check(s) failed: " + ", ".join(sorted({f.check_id for f in failed}))
        raise error(head, detail="\n".join(str(f) for f in failed))


# --- secrets -----------------------------------------------------------------------------------

#: A variable NAME that says it holds a secret (matched on whole ``_``-separated words).
SECRET_NAME = re.compile(
    r"(?:^|_)(?:PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY|CREDENTIALS?)(?:_|$)"
)
#: Names that point at where a secret lives rather than holding it (Docker secrets convention).
SECRET_POINTER = re.compile(r"_(?:FILE|PATH|DIR)$")
#: VALUES that are credentials whatever they are called.
CREDENTIAL_VALUES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("a private key", re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY")),
    ("an AWS access key id", re.compile(r"\bAKIA[0-9A-Z]{16}\b")),
    ("a GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}")),
    ("a Slack token", re.compile(r"\bxox[bpas]-[A-Za-z0-9-]{10,}")),
)


def secret_name(name: str) -> bool:
    """True when ``name`` reads like a secret (DB_PASSWORD, API_TOKEN) but not a pointer to one."""
    upper = name.upper()
    return bool(SECRET_NAME.search(upper)) and not SECRET_POINTER.search(upper)


def literal(value: str) -> bool:
    """True when ``value`` is a non-empty literal, not a ``$REFERENCE`` to something else."""
    bare = value.strip().strip("'\"").strip()
    return bool(bare) and not bare.startswith("$")


def credential_kind(value: str) -> str:
    """What kind of credential ``value`` contains ("a private key" …), or "" when none."""
    for kind, pattern in CREDENTIAL_VALUES:
        if pattern.search(value):
            return kind
    return ""


def secret_problem(name: str, value: str) -> str:
    """Why ``name=value`` leaks a secret, in a few words, or "" when it does not."""
    kind = credential_kind(value)
    if kind:
        return f"{name} holds {kind}"
    if secret_name(name) and literal(value):
        return f"{name} looks secret and has a literal value"
    return ""
