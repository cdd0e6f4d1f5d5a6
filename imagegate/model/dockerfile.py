"""The one Dockerfile parser: the file as the builder reads it, with line numbers kept.

Parser directives (``# syntax=``, ``# escape=``), ``\\`` continuations (comment lines inside
them skipped, as the builder does), heredocs, stages and JSON vs shell form. Comments are not
instructions, but two kinds matter to a gate and are kept: ``# imagegate ignore=ID[,ID]`` on the
line before an instruction (an inline suppression, hadolint's convention), recorded in
:attr:`Dockerfile.suppressions`.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field

from imagegate.errors import UsageError

DIRECTIVE = re.compile(r"^#\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(.*?)\s*$")
SUPPRESS = re.compile(r"^#\s*imagegate\s+ignore\s*=\s*([A-Za-z0-9_,\s-]+?)\s*$", re.IGNORECASE)
HEREDOC = re.compile(r"(?<!<)<<(-?)\s*([\"']?)([A-Za-z_][A-Za-z0-9_]*)\2")
VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::([-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


@dataclass(frozen=True)
class Instruction:
    """One logical instruction: continuations joined, comments dropped."""

    line: int
    keyword: str
    args: str
    heredoc: str = ""

    @property
    def flags(self) -> list[str]:
        """The leading ``--flag[=value]`` words."""
        return self.args.split()[: _flag_count(self.args)]

    @property
    def rest(self) -> str:
        """The arguments after the flags."""
        words = self.args.split(None, _flag_count(self.args))
        return words[-1] if len(words) > _flag_count(self.args) else ""

    @property
    def exec_form(self) -> list[str] | None:
        """The argv when written as a JSON array, else None (shell form)."""
        text = self.rest.strip()
        if not text.startswith("["):
            return None
        try:
            value = json.loads(text)
        except ValueError:
            return None
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return value if ok else None


@dataclass
class Stage:
    """One ``FROM`` and what follows it."""

    base: str
    name: str
    start: Instruction
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    """A parsed Dockerfile: parser directives, global ARGs (before the first FROM), stages."""

    directives: dict[str, tuple[int, str]]
    preamble: list[Instruction]
    stages: list[Stage]
    #: check id → the lines of the instructions a ``# imagegate ignore=ID`` comment precedes.
    suppressions: dict[str, list[int]] = field(default_factory=dict)

    @property
    def instructions(self) -> list[Instruction]:
        """Every instruction in file order."""
        return [*self.preamble, *(i for s in self.stages for i in (s.start, *s.instructions))]

    def final_chain(self, target: str = "") -> list[Instruction]:
        """The final stage's (or stage ``target``'s) instructions, preceded by those of the stages
        it is built ``FROM``."""
        chain: list[Stage] = []
        stage: Stage | None = self.stages[-1] if self.stages else None
        if target:
            stage = next((s for s in self.stages if s.name == target.lower()), stage)
        while stage is not None and stage not in chain:
            chain.insert(0, stage)
            stage = next((s for s in self.stages[: self.stages.index(stage)]
                          if s.name and s.name == stage.base.lower()), None)
        return [i for s in chain for i in (s.start, *s.instructions)]


def parse(text: str) -> Dockerfile:
    """Parse Dockerfile ``text`` the way the builder reads it."""
    lines = text.splitlines()
    directives: dict[str, tuple[int, str]] = {}
    i = 0
    while i < len(lines):
        found = DIRECTIVE.match(lines[i].strip())
        if not found or found.group(1).lower() in directives:
            break
        directives[found.group(1).lower()] = (i + 1, found.group(2))
        i += 1
    escape = directives.get("escape", (0, "\\"))[1] or "\\"
    continuation = re.compile(re.escape(escape) + r"[ \t]*$")
    out: list[Instruction] = []
    pending: list[str] = []  # ids of an ``imagegate ignore=`` comment awaiting its instruction
    suppressions: dict[str, list[int]] = {}
    while i < len(lines):
        stripped = lines[i].strip()
        if not stripped or stripped.startswith("#"):
            wanted = SUPPRESS.match(stripped)
            if wanted:
                pending += [w.strip().upper() for w in wanted.group(1).split(",") if w.strip()]
            i += 1
            continue
        for check_id in pending:
            suppressions.setdefault(check_id, []).append(i + 1)
        pending = []
        start, text_parts = i + 1, []
        while True:
            current = lines[i]
            joined = continuation.search(current)
            text_parts.append(current[: joined.start()] if joined else current)
            i += 1
            if not joined:
                break
            while i < len(lines) and (not lines[i].strip() or lines[i].lstrip().startswith("#")):
                i += 1
            if i >= len(lines):
                break
        keyword, _, args = "".join(text_parts).strip().partition(" ")
        heredoc = ""
        marker = HEREDOC.search(args) if keyword.upper() in ("RUN", "COPY", "ADD") else None
        if marker:
            heredoc, strip_tabs = marker.group(3), marker.group(1) == "-"
            while i < len(lines) and (lines[i].lstrip("\t") if strip_tabs else lines[i]) != heredoc:
                i += 1
            i += 1
        out.append(Instruction(start, keyword.upper(), args.strip(), heredoc))
    preamble: list[Instruction] = []
    stages: list[Stage] = []
    for ins in out:
        if ins.keyword == "FROM":
            words = ins.rest.split()
            name = words[2].lower() if len(words) >= 3 and words[1].upper() == "AS" else ""
            stages.append(Stage(words[0] if words else "", name, ins))
        elif stages:
            stages[-1].instructions.append(ins)
        else:
            preamble.append(ins)
    return Dockerfile(directives, preamble, stages, suppressions)


def assignments(ins: Instruction) -> list[tuple[str, str | None]]:
    """``ENV``/``ARG`` as (name, value) pairs: ``k=v k2="v 2"``, legacy ``ENV k v``, ``ARG k``."""
    rest = ins.rest.strip()
    first = rest.split(None, 1)
    if ins.keyword == "ENV" and first and "=" not in first[0]:
        return [(first[0], first[1] if len(first) > 1 else "")]
    pairs: list[tuple[str, str | None]] = []
    for word in _words(rest):
        name, eq, value = word.partition("=")
        pairs.append((name, value if eq else None))
    return pairs




def _expand(word: str, scope: dict[str, str]) -> str:
    """``$VAR``, ``${VAR}``, ``${VAR:-default}`` and ``${VAR:+alt}`` from ``scope``."""
    def one(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(4)
        value = scope.get(name, "")
        if m.group(2) == "-":
            return value or m.group(3)
        if m.group(2) == "+":
            return m.group(3) if value else ""
        return value
    return VAR.sub(one, word)


def _words(text: str) -> list[str]:
    """Shell-like words (quotes honoured); plain whitespace split if the quoting is broken."""
    try:
        return shlex.split(text, comments=False, posix=True)
    except ValueError:
        return text.split()


def _flag_count(args: str) -> int:
    """How many leading words of ``args`` are ``--flags``."""
    count = 0
    for word in args.split():
        if not word.startswith("--"):
            break
        count += 1
    return count




def expand(word: str, scope: Mapping[str, str]) -> str:
    """``$VAR``, ``${VAR}``, ``${VAR:-default}`` and ``${VAR:+alt}`` from ``scope``."""
    return _expand(word, dict(scope))


def global_args(df: Dockerfile) -> dict[str, str]:
    """The ARGs declared before the first FROM, with their defaults ("" when none)."""
    return {n: (v or "") for i in df.preamble if i.keyword == "ARG" for n, v in assignments(i)}


def from_images(text: str, buildargs: Mapping[str, str]) -> list[str]:
    """The external images the Dockerfile's ``FROM`` lines name, build args substituted.

    Stage names and ``scratch`` are not images; an unresolvable ``${VAR}`` is a UsageError.
    """
    df = parse(text)
    scope = {**global_args(df), **{k: v for k, v in buildargs.items() if v}}
    stages: set[str] = set()
    images: list[str] = []
    for stage in df.stages:
        ref = stage.base
        for name in VAR.findall(ref):
            var = name[0] or name[3]
            if not scope.get(var) and name[1] != "-":
                raise UsageError(f"FROM {ref}: build arg {var} has no value")
        ref = _expand(ref, scope)
        if ref.lower() not in stages and ref != "scratch" and ref not in images:
            images.append(ref)
        if stage.name:
            stages.add(stage.name)
    return images


def exposed_ports(df: Dockerfile, target: str = "") -> list[int]:
    """The TCP ports the final stage (or stage ``target``) EXPOSEs, in file order."""
    chain = df.final_chain(target)
    scope = global_args(df)
    ports: list[int] = []
    for ins in chain:
        if ins.keyword in ("ARG", "ENV"):
            scope.update({n: _expand(v, scope) for n, v in assignments(ins) if v is not None})
        if ins.keyword == "EXPOSE":
            for word in _expand(ins.rest, scope).split():
                number, _, proto = word.partition("/")
                if number.isdigit() and proto in ("", "tcp") and int(number) not in ports:
                    ports.append(int(number))
    return ports


def final_base(df: Dockerfile, target: str = "", buildargs: Mapping[str, str] | None = None) -> str:
    """The external image the final stage (or stage ``target``) is built on, build args
    substituted (its chain followed through the file's own stages); "" when there is none."""
    chain = df.final_chain(target)
    if not chain:
        return ""
    root = next((s for s in df.stages if s.start is chain[0]), None)
    if root is None:
        return ""
    scope = {**global_args(df), **{k: v for k, v in (buildargs or {}).items() if v}}
    return _expand(root.base, scope)


def run_argv(df: Dockerfile, target: str = "") -> tuple[list[str], list[str]]:
    """(ENTRYPOINT, CMD) of the final stage (or ``target``) as argvs; shell form becomes
    ``/bin/sh -c TEXT`` as the builder records it; [] where the file sets none."""
    entrypoint: list[str] = []
    cmd: list[str] = []
    for ins in df.final_chain(target):
        if ins.keyword in ("ENTRYPOINT", "CMD"):
            argv = ins.exec_form
            if argv is None:
                argv = ["/bin/sh", "-c", ins.rest.strip()] if ins.rest.strip() else []
            if ins.keyword == "ENTRYPOINT":
                entrypoint, cmd = argv, []  # a new ENTRYPOINT resets an inherited CMD
            else:
                cmd = argv
    return entrypoint, cmd
