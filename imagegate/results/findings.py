"""The one result type every check returns, and the secret-spotting rules lint and policy share."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class Location:
    """Where a finding points: a file line, a path in the image, a compose service, an image field.

    Parsed from a finding's ``where`` text, whose forms are ``Dockerfile:12`` (file and line),
    ``compose.yaml:service web`` (a compose file's service), ``/srv/app/.env`` (a path in the
    image), ``Config.User`` (an image config field) and ``service web`` (a running service).
    """

    file: str = ""
    line: int = 0
    image_path: str = ""
    service: str = ""
    field: str = ""

    @classmethod
    def parse(cls, where: str) -> Location:
        """The structured form of a ``where`` text (see the class docstring)."""
        where = where.strip()
        if not where:
            return cls()
        if where.startswith("/"):
            return cls(image_path=where.split(" ", 1)[0])
        if where.startswith("service "):
            return cls(service=where.removeprefix("service ").strip())
        head, sep, tail = where.rpartition(":")
        if sep and tail.startswith("service "):
            return cls(file=head, service=tail.removeprefix("service ").strip())
        if sep and tail.isdigit():
            return cls(file=head, line=int(tail))
        if re.fullmatch(r"[A-Z][A-Za-z]*(?:\.[A-Za-z]+)+", where):
            return cls(field=where)
        return cls(file=where)


@dataclass(frozen=True)
class Finding:
    """The outcome of one check on one thing.

    ``check_id`` is stable (``IG-USER-NONROOT``, ``DL3002`` …) so reports and ignore lists can
    name it; ``message`` is one line saying what was expected and what was seen; ``where`` points
    at it (``Dockerfile:12``, ``/srv/app/x``, ``compose.yaml:service web``); ``detail`` is longer
    context for a person. ``severity`` is set from the catalogue when the finding is judged
    (profile, overrides); ``skipped`` says why a check did not run (ignored, not applicable);
    ``stage`` and ``name`` (the pytest node id) say which run produced it.
    """

    check_id: str
    ok: bool
    message: str
    where: str = ""
    detail: str = ""
    severity: str = ""
    skipped: str = ""
    stage: str = ""
    name: str = ""

    def __str__(self) -> str:
        """``ID [where]: message`` on one line, as the CLI prints it."""
        at = f" [{self.where}]" if self.where else ""
        return f"{self.check_id}{at}: {self.message}"

    @property
    def location(self) -> Location:
        """:attr:`where` as a structured :class:`Location`."""
        return Location.parse(self.where)

    @property
    def outcome(self) -> str:
        """passed | failed | skipped (a failure below ``fail_on`` is still "failed" here)."""
        return "skipped" if self.skipped else ("passed" if self.ok else "failed")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (findings files, result.json)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """The inverse of :meth:`to_dict`; unknown keys are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def failures(findings: Iterable[Finding]) -> list[Finding]:
    """Only the findings that failed."""
    return [f for f in findings if not f.ok]


def drop_ignored(findings: Iterable[Finding], ignore: Iterable[str]) -> list[Finding]:
    """``findings`` without those whose id is on the ignore list."""
    skip = set(ignore)
    return [f for f in findings if f.check_id not in skip]


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
