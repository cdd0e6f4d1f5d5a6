"""The check catalogue: every check id, its stage, its severity per profile, and what it means.

One table, read by everything that needs to know what a check is: the pytest plugin (markers,
ignores, severities, ``fail_on``), the lint, the gate's verdict, every report (JUnit, JSON,
Markdown, SARIF) and the README's check list. hadolint's own rules (``DL3008``, ``SC2086``) are
not listed one by one: they map in by pattern, with hadolint's level as their severity.

Severities follow the anchors users know (hadolint, dockle, Trivy): ``error`` is a defect with
evidence — the build fails, uid 0 is seen at run time, a secret is in a layer, the container exits
or never answers — and fails the gate at the default ``fail_on``; ``warning`` is hardening advice
(a named USER, pip in the image, no HEALTHCHECK …); ``info`` is for the record. The ``baseline``
profile (any project's default) applies those; ``hardened`` (distroless-grade, what this repo
uses) makes every hardening check an error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "error")
PROFILES = ("baseline", "hardened")
RANK = {"info": 1, "warning": 2, "error": 3}
#: hadolint's levels → ours (``style`` is advice, like ``info``).
HADOLINT_LEVELS: dict[str, Severity] = {"error": "error", "warning": "warning", "info": "info",
                                        "style": "info"}
HADOLINT_ID = re.compile(r"^(?:DL|SC)\d{4}$")
#: hadolint's rules about an attack surface: last USER root, sudo, secrets in ARG/ENV.
HADOLINT_SECURITY = frozenset({"DL3002", "DL3004", "DL3064"})
#: The repository whose docs/checks/<ID>.md pages the links name ([project.urls] Repository).
REPOSITORY = "https://github.com/imagegate/imagegate"


def repository() -> str:
    """The project's repository URL from its metadata ([project.urls] Repository)."""
    from importlib import metadata

    try:
        urls = metadata.metadata("imagegate").get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        return REPOSITORY
    found = [u.split(",", 1)[1].strip() for u in urls if u.lower().startswith("repository,")]
    return found[0] if found else REPOSITORY

#: How a check knows what it says (STYLE: a proved defect outranks a guess from the text).
Evidence = Literal["dockerfile", "image", "layers", "runtime", "compose", "tests"]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class CheckSpec:
    """One check: stable id, what it expects, where it runs, how sure it is, how bad it is."""

    id: str
    title: str  # one line: what is expected
    stage: str  # lint | build | image | run | stack | tests
    evidence: Evidence
    baseline: Severity
    hardened: Severity = "error"
    #: A setting whose value, when the user set it (not the default), makes a baseline
    #: warning an error: a budget the user chose is a promise, the default one is advice.
    user_set: str = ""
    #: SARIF's kind of problem: security, maintainability or reliability.
    category: str = "reliability"

    @property
    def help_uri(self) -> str:
        """Where a person reads more (SARIF ``helpUri``, report links)."""
        if self.id.startswith("SC"):
            return f"https://www.shellcheck.net/wiki/{self.id}"
        if self.id.startswith("DL"):
            return f"https://github.com/hadolint/hadolint/wiki/{self.id}"
        return f"{repository()}/blob/main/docs/checks/{self.id}.md"


#: Every check, in the order declared (:func:`check` appends; :func:`ordered` sorts for tables).
_SPECS: list[CheckSpec] = []
CATALOGUE: dict[str, CheckSpec] = {}
#: The order of the gate's stages: tables list checks stage by stage (by id within one).
STAGE_ORDER = ("lint", "build", "image", "run", "stack", "tests")
#: id → the function that implements a check declared with :func:`check`.
IMPLEMENTATIONS: dict[str, Callable[..., Any]] = {}
#: id → the kind of facts its function takes (:data:`FACTS`).
KINDS: dict[str, str] = {}


#: What a registered check's function takes (its facts), and so which runner calls it:
#: ``dockerfile`` a :class:`imagegate.checks.lint.DockerfileText`, ``image`` (ImageFacts,
#: Settings), ``container`` a :class:`imagegate.checks.running.Running`, ``compose`` a
#: :class:`imagegate.checks.compose.ComposeFacts`; ``custom`` facts its stage wires itself
#: (the Flask checks' answers, hadolint's file, the stack's HTTP answers).
FACTS = ("dockerfile", "image", "container", "compose", "custom")


def check(id: str, *, title: str, stage: str, evidence: Evidence, baseline: Severity,
          hardened: Severity = "error", category: str = "reliability",
          user_set: str = "", facts: str = "custom") -> Callable[[F], F]:
    """Declare a check once, on its logic: the decorated function is check ``id``, and this
    is its catalogue row (every report, the README's table, SARIF's rules, the docs pages and
    ``imagegate checks`` read it). ``facts`` says what the function takes (:data:`FACTS`): the
    generic suites loop over :func:`family` for each kind. A check declared twice is a
    programming error."""
    if facts not in FACTS:
        raise ValueError(f"check {id}: facts {facts!r} is not one of {', '.join(FACTS)}")

    def register(fn: F) -> F:
        if id in CATALOGUE:
            raise ValueError(f"check {id} is declared twice")
        spec = CheckSpec(id, title, stage, evidence, baseline, hardened, user_set, category)
        _SPECS.append(spec)
        CATALOGUE[id] = spec
        IMPLEMENTATIONS[id] = fn
        KINDS[id] = facts
        return fn
    return register


class Family(Mapping[str, Callable[..., Any]]):
    """The registered checks that take one kind of facts (id → function, declared order): a
    live view, so a check declared later — or a function swapped in by a test — is seen."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def _ids(self) -> list[str]:
        return [s.id for s in ordered() if KINDS.get(s.id) == self.kind]

    def __getitem__(self, check_id: str) -> Callable[..., Any]:
        if KINDS.get(check_id) != self.kind:
            raise KeyError(check_id)
        return IMPLEMENTATIONS[check_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids())

    def __len__(self) -> int:
        return len(self._ids())


def family(kind: str) -> Family:
    """The checks whose function takes ``kind`` facts (see :data:`FACTS`)."""
    return Family(kind)


def ordered() -> list[CheckSpec]:
    """Every check, stage by stage (:data:`STAGE_ORDER`), by id within a stage: one order for
    every table and loop, whichever module declared its checks first."""
    return sorted(_SPECS, key=lambda spec: (STAGE_ORDER.index(spec.stage), spec.id))


def known(check_id: str) -> bool:
    """True for a catalogue id or a hadolint/ShellCheck rule id."""
    return check_id in CATALOGUE or bool(HADOLINT_ID.match(check_id))


def spec(check_id: str, hadolint_level: str = "warning") -> CheckSpec:
    """The spec of ``check_id``; hadolint rules get one made from their level."""
    if check_id in CATALOGUE:
        return CATALOGUE[check_id]
    if not HADOLINT_ID.match(check_id):
        raise KeyError(check_id)
    level = HADOLINT_LEVELS.get(hadolint_level, "error")
    hardened: Severity = "error" if level in ("error", "warning") else "info"
    return CheckSpec(check_id, f"hadolint {check_id}", "lint", "dockerfile", level, hardened,
                     category="security" if check_id in HADOLINT_SECURITY else "reliability")


def severity(check_id: str, profile: str = "baseline", *, overrides: Mapping[str, str] = {},
             user_set: frozenset[str] | set[str] = frozenset(),
             hadolint_level: str = "warning") -> Severity:
    """The severity ``check_id`` has under ``profile``.

    ``overrides`` (the project's ``[tool.imagegate.severity]``) win; ``user_set`` names the
    settings the user gave a value (budgets they chose are errors, defaults are advice).
    """
    if check_id in overrides:
        return overrides[check_id]  # type: ignore[return-value]  # validated by settings
    s = spec(check_id, hadolint_level)
    if profile == "hardened":
        return s.hardened
    if s.user_set and s.user_set in user_set:
        return "error"
    return s.baseline


def at_least(level: str, threshold: str) -> bool:
    """True when ``level`` reaches ``threshold`` (``fail_on``)."""
    return RANK.get(level, 3) >= RANK.get(threshold, 3)


def stage_ids(stage: str) -> list[str]:
    """The catalogue ids of one stage, in catalogue order."""
    return [s.id for s in ordered() if s.stage == stage]


def rows() -> list[tuple[str, str, str, str, str, str]]:
    """(id, stage, evidence, baseline, hardened, title) for every catalogue check."""
    out: list[tuple[str, str, str, str, str, str]] = []
    for s in ordered():
        baseline = s.baseline + (f" ({s.user_set} set: error)" if s.user_set else "")
        out.append((s.id, s.stage, s.evidence, baseline, s.hardened, s.title))
    out.append(("DL*/SC*", "lint", "dockerfile", "hadolint's level (style→info)",
                "error for error/warning", "hadolint's rules (a failure-threshold in "
                ".hadolint.yaml lowers what is below it to info)"))
    return out


def markdown() -> str:
    """The catalogue as the README's Markdown table (generated, so it cannot drift)."""
    lines = ["| id | stage | evidence | baseline | hardened | expects |", "|---|---|---|---|---|---|"]
    lines += [f"| `{r[0]}` | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {r[5]} |" for r in rows()]
    return "\n".join(lines)


def text() -> str:
    """The catalogue as plain columns (``imagegate checks``)."""
    return "\n".join(f"{r[0]:<28} {r[1]:<6} {r[3]:<9} {r[4]:<8} {r[5]}" for r in rows())


# The check families declared with :func:`check` (imported last: they use it).
from imagegate.checks import compose as compose_checks  # noqa: E402, F401
from imagegate.checks import flask as flask_checks  # noqa: E402, F401  (Flask's own)
from imagegate.checks import lint  # noqa: E402, F401  (the Dockerfile's text)
from imagegate.checks import running as running_checks  # noqa: E402, F401
from imagegate.checks import stack as stack_checks  # noqa: E402, F401
from imagegate.facts import policy  # noqa: E402,F401  (the image checks)
