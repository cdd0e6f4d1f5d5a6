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
from collections.abc import Callable, Mapping
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
    #: SARIF's kind of problem: security, maintainability or reliability ("" : the table in
    #: :mod:`imagegate.results.sarif` decides, for the checks declared before the registry).
    category: str = ""

    @property
    def help_uri(self) -> str:
        """Where a person reads more (SARIF ``helpUri``, report links)."""
        if self.id.startswith("SC"):
            return f"https://www.shellcheck.net/wiki/{self.id}"
        if self.id.startswith("DL"):
            return f"https://github.com/hadolint/hadolint/wiki/{self.id}"
        return f"{repository()}/blob/main/docs/checks/{self.id}.md"


def _spec(id: str, title: str, stage: str, evidence: Evidence, baseline: Severity,
          hardened: Severity = "error", user_set: str = "") -> CheckSpec:
    return CheckSpec(id, title, stage, evidence, baseline, hardened, user_set)


_SPECS = [
    # -- the Dockerfile's text (lint stage) -------------------------------------------------------
    _spec("IG-LINT-HADOLINT", "hadolint runs on the Dockerfile (its DL/SC rules report apart)",
          "lint", "dockerfile", "error"),
    _spec("IG-LINT-USER-MISSING", "the final stage sets a USER (else it runs as root)", "lint",
          "dockerfile", "warning"),
    _spec("IG-LINT-USER-ROOT", "the final stage's last USER is not root", "lint", "dockerfile",
          "warning"),
    _spec("IG-LINT-SECRET", "no ENV/ARG holds a literal secret or credential", "lint",
          "dockerfile", "error"),
    _spec("IG-LINT-ADD-URL", "ADD does not download URLs unverified", "lint", "dockerfile",
          "warning"),
    _spec("IG-LINT-CMD-SHELL", "the final CMD/ENTRYPOINT is in exec form", "lint", "dockerfile",
          "warning"),
    _spec("IG-LINT-SERVICES", "the Dockerfiles of the other services compose builds pass "
          "hadolint (advice: they are built and run, not gated)", "lint", "dockerfile", "info",
          "info"),
    _spec("IG-LINT-HEALTHCHECK-MISSING", "the final stage has a HEALTHCHECK", "lint", "dockerfile",
          "warning"),
    _spec("IG-LINT-BUILDKIT-SYNTAX", "no BuildKit-only syntax when the builder is classic",
          "lint", "dockerfile", "error"),
    # -- the build ----------------------------------------------------------------------------------
    _spec("IG-BUILD", "the image builds", "build", "image", "error"),
    # -- the image's metadata and layers (no container) ---------------------------------------------
    _spec("IG-PACKAGED-KEYS", "private keys in the image belong to no installed package's "
          "test fixtures (advice: public, not the project's secrets)", "image", "layers",
          "warning", "warning"),
    # -- one running container of the image --------------------------------------------------------
    _spec("IG-RUN-HEALTHY", "the container stays up and becomes ready (healthy, or answers)",
          "run", "runtime", "error"),
    _spec("IG-RUN-USER-NONROOT", "commands in the container run as a non-root uid", "run",
          "runtime", "error"),
    _spec("IG-RUN-PROCS-NONROOT", "no process in the container runs as uid 0", "run", "runtime",
          "error"),
    _spec("IG-RUN-PORT-LISTENING", "the web port is listening in the container", "run", "runtime",
          "error"),
    _spec("IG-RUN-HTTP-HEALTH", "the server answers HTTP through the published port (health_path: "
          "2xx)", "run",
          "runtime", "error"),
    _spec("IG-RUN-APP-NOT-WRITABLE", "the running user can write nothing under WORKDIR", "run",
          "runtime", "warning"),
    _spec("IG-RUN-NO-BUILD-TOOLS", "no compiler, pip or package manager on PATH", "run", "layers",
          "warning"),
    _spec("IG-RUN-NO-PIP-MODULE", "pip is not importable by the server's interpreter", "run",
          "runtime", "warning"),
    _spec("IG-RUN-PIP-CHECK", "`pip check` is clean for the server's interpreter", "run",
          "runtime", "warning"),
    # -- the compose stack ----------------------------------------------------------------------------
    _spec("IG-STACK-HEALTHY", "every service runs, and is healthy where it has a healthcheck",
          "stack", "runtime", "error"),
    _spec("IG-STACK-LOOPBACK-ONLY", "published ports bind to 127.0.0.1, not every interface",
          "stack", "compose", "warning"),
    _spec("IG-STACK-WEB-NONROOT", "the web service runs as a non-root uid", "stack", "runtime",
          "error"),
    _spec("IG-STACK-NOT-PRIVILEGED", "no service is privileged or adds capabilities", "stack",
          "compose", "error"),
    _spec("IG-STACK-HTTP", "each http_checks entry (or the health probe) answers as expected",
          "stack", "runtime", "error"),
    _spec("IG-STACK-SOURCE-MOUNT", "no service bind-mounts the project's source over the image",
          "stack", "compose", "error"),
    # -- the project's own tests ----------------------------------------------------------------------
    _spec("IG-PROJECT-TEST", "the project's own tests pass", "tests", "tests", "error"),
]

CATALOGUE: dict[str, CheckSpec] = {spec.id: spec for spec in _SPECS}
#: The order of the gate's stages: tables list checks stage by stage, declared order within one.
STAGE_ORDER = ("lint", "build", "image", "run", "stack", "tests")
#: id → the function that implements a check declared with :func:`check`.
IMPLEMENTATIONS: dict[str, Callable[..., Any]] = {}


def check(id: str, *, title: str, stage: str, evidence: Evidence, baseline: Severity,
          hardened: Severity = "error", category: str = "reliability",
          user_set: str = "") -> Callable[[F], F]:
    """Declare a check once, on its logic: the decorated function is check ``id``, and this
    is its catalogue row (every report, the README's table, SARIF's rules and ``imagegate
    checks`` read it). A check declared twice is a programming error."""
    def register(fn: F) -> F:
        if id in CATALOGUE:
            raise ValueError(f"check {id} is declared twice")
        spec = CheckSpec(id, title, stage, evidence, baseline, hardened, user_set, category)
        at = next((n for n, s in enumerate(_SPECS) if s.id == "IG-PROJECT-TEST"), len(_SPECS))
        _SPECS.insert(at, spec)  # the project's own tests stay last in every table
        CATALOGUE[id] = spec
        IMPLEMENTATIONS[id] = fn
        return fn
    return register


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
    return CheckSpec(check_id, f"hadolint {check_id}", "lint", "dockerfile", level, hardened)


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
    return [s.id for s in _SPECS if s.stage == stage]


def rows() -> list[tuple[str, str, str, str, str, str]]:
    """(id, stage, evidence, baseline, hardened, title) for every catalogue check."""
    out: list[tuple[str, str, str, str, str, str]] = []
    for s in sorted(_SPECS, key=lambda spec: STAGE_ORDER.index(spec.stage)):
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
from imagegate.checks import flask as flask_checks  # noqa: E402, F401  (Flask's own)
from imagegate.facts import policy  # noqa: E402,F401  (the image checks)
