"""One benchmark run as data: :class:`Results` in memory, :func:`to_data` for
``bench/results/results.json`` (raw: every run's values, not only medians).

Nothing here renders or judges: :mod:`bench.render` turns the JSON into RESULTS.md through a
template, :mod:`bench.targets` holds the targets and their verdicts.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .builds import BuildTimes, Variant
from .common import RESULTS_JSON, ROOT, SCHEMA, Stats
from .gatetime import GateTimes
from .load import LoadFigures, Round
from .sizes import SizeRow
from .startup import StartTimes
from .variants import Variant as StackVariant


@dataclass
class Params:
    """How many repetitions each figure used (printed with the method)."""

    build_reps: int = 3
    start_runs: int = 10
    load_requests: int = 2000
    load_rounds: int = 5
    load_concurrency: int = 20
    load_warmup: int = 300
    load_cap: float = 60.0
    gate_runs: int = 3
    pipeline_pairs: int = 5


@dataclass
class Results:
    """Everything one ``make bench`` measured."""

    params: Params
    machine: dict[str, str]
    ours: Variant
    seed: Variant
    sizes: list[SizeRow] = field(default_factory=list)
    builds: dict[str, BuildTimes] = field(default_factory=dict)
    starts: dict[str, StartTimes] = field(default_factory=dict)
    load: dict[str, dict[str, LoadFigures]] = field(default_factory=dict)
    gate: GateTimes | None = None
    #: `imagegate init` images vs the seed's recipe, per sample app.
    init_sizes: list[Any] = field(default_factory=list)
    #: The gate on the docker-init sample project (zero config), warm.
    sample_gate: GateTimes | None = None
    #: bench.variants' run (our stack with other settings vs the seed), when it ran.
    variants: Any = None
    #: bench.freshclone's run of .ci/run on a fresh clone, when it ran; else why not.
    ci: Any = None
    #: bench.pipeline's pairs per project ("dockerinit", "repo"), as :func:`bench.pipeline.measure`
    #: returns them (already plain data).
    pipeline: dict[str, Any] = field(default_factory=dict)
    #: Why a section was not measured, by results key ("gate": "skipped (--quick)").
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    busy: dict[str, str] = field(default_factory=dict)


def machine_facts(cli: Any) -> dict[str, str]:
    """nproc, CPU, memory, kernel, Docker versions, date and the commit measured."""
    def first(path: str, key: str) -> str:
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "?"

    from functools import partial

    from imagegate.proc import git as git_in

    git = partial(git_in, ROOT)

    mem_kb = first("/proc/meminfo", "MemTotal").split()[0]
    version = cli.version()
    dirty = " (with uncommitted changes)" if git("status", "--porcelain",
                                                   "--untracked-files=no") else ""
    return {
        "cpus": str(os.cpu_count()),
        "cpu": first("/proc/cpuinfo", "model name"),
        "memory": f"{int(mem_kb) / 1024 / 1024:.1f} GiB" if mem_kb.isdigit() else "?",
        "kernel": platform.release(),
        "docker": f"Engine {version.get('Version', '?')} (API {version.get('ApiVersion', '?')}), "
                  "classic builder",
        "python": platform.python_version(),
        "date": when(),
        "commit": (git("rev-parse", "--short", "HEAD") or "?") + dirty,
    }


def load_average() -> str:
    """The 1/5/15-minute load averages (other work on the machine shows up here)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"




def when() -> str:
    """Now, as RESULTS.md shows dates."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


# -- to plain data ---------------------------------------------------------------------------------

def plain(value: Any) -> Any:
    """``value`` as JSON-ready data: dataclasses → dicts (with the names tables show), Stats → its
    raw values, tuples → lists, NaN → None. A load round keeps its figures, not every latency."""
    if isinstance(value, Stats):
        return plain(value.values)
    if isinstance(value, Round):
        return {"requests": value.requests, "errors": value.errors, "seconds": value.seconds,
                "rps": plain(value.rps), "p50": plain(value.p50), "p99": plain(value.p99)}
    if isinstance(value, Variant):
        return {**plain_fields(value), "title": value.title}
    if isinstance(value, SizeRow):
        return {**plain(value.variant), "size": value.size, "base_size": value.base_size,
                "wheelhouse": value.wheelhouse}
    if isinstance(value, StackVariant):
        return {"name": value.name, "title": value.title, "settings": value.settings()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain_fields(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def plain_fields(value: Any) -> dict[str, Any]:
    """A dataclass's fields, each made plain (not :func:`dataclasses.asdict`: that would turn a
    Stats into ``{"values": …}`` before :func:`plain` sees it)."""
    return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}


def to_data(r: Results) -> dict[str, Any]:
    """The whole run as the JSON object ``results.json`` holds (see :data:`SCHEMA`)."""
    data = plain_fields(r)
    data["schema"] = SCHEMA
    if r.ci is not None:
        data["ci"]["passed"] = r.ci.passed
    return data


def write(data: dict[str, Any], path: Path = RESULTS_JSON) -> Path:
    """Write ``data`` as JSON (strict: no NaN) to ``path``; returns it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, allow_nan=False, ensure_ascii=False) + "\n")
    return path
