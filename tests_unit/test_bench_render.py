"""bench.render: RESULTS.md from a fixed run's results, its targets, history and errors.

The run is built in memory from the bench's own dataclasses (as ``make bench`` collects it),
turned into results.json data by :func:`bench.results.to_data`, and rendered; no Docker.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench import render, results
from bench.builds import BuildTimes, Variant
from bench.common import Stats
from bench.freshclone import CiRun
from bench.gatetime import GateRun, GateTimes
from bench.initsizes import InitSizeRow
from bench.load import LoadFigures, Round
from bench.sizes import SizeRow
from bench.startup import StartTimes
from bench.targets import BY_KEY, MET, MISSED, NOT_MEASURED, REPORTED, TARGETS, verdicts
from bench.variants import Variant as StackVariant
from bench.variants import VariantRun

BASE = "imagegate/python:3.11-bookworm"
OURS, SEED = Variant("ours", "imagegate", BASE), Variant("seed", "imagegate", BASE)
HISTORY = {
    "before": [{"target": "sample_gate", "round": "issue 99", "figure": "10.3 s",
                "source": "bench median of 3, commit feed123"},
               {"target": "gate", "round": "issue 99", "figure": "13.1 s",
                "source": "fresh-clone CI gate stage, commit 9d6fd10"}],
    "changes": [{"target": "sample_gate", "what": "reports left out of the build context",
                 "before": "8.1 s", "after": "4.0 s", "where": "5 interleaved, commit abc1234"}],
}


def gate_run(seconds: float, exit_code: int = 0) -> GateRun:
    """A gate run with two stages."""
    return GateRun(seconds, exit_code, "passed" if exit_code == 0 else "failed",
                   {"lint": 0.7, "image": seconds - 1.0}, () if exit_code == 0 else ("image: x",))


def load_round(rps: float, p99: float) -> Round:
    """A 1-second round of ``rps`` requests whose slowest 1 % took ``p99`` ms."""
    n = int(rps)
    return Round(n, 0, 1.0, tuple([10.0] * (n - n // 100) + [p99] * (n // 100)))


def fixed_run() -> results.Results:
    """One run: size ratio missed, start met, this repo's gate skipped, the sample gate met,
    a fresh clone green but slow (missed), the docker-init pipeline ratio missed."""
    r = results.Results(results.Params(), {"cpus": "2", "cpu": "Test CPU", "memory": "1 GiB",
                                           "kernel": "6.0", "docker": "Engine 20.10",
                                           "python": "3.11", "date": "2026-12-05 10:00 UTC",
                                           "commit": "abc1234"}, OURS, SEED)
    r.sizes = [SizeRow(OURS, 56_100_000, 43_100_000, 0), SizeRow(SEED, 59_500_000, 43_100_000, 0)]
    r.builds = {OURS.title: BuildTimes(Stats((6.1, 5.9, 6.3)), Stats((0.2, 0.3, 0.2)),
                                       Stats((1.0, 1.1, 1.0)), 12, 11, 7, "classic")}
    r.starts = {OURS.title: StartTimes(Stats((0.62, 0.52, 0.69)), Stats((0.3, 0.31, 0.29)))}
    r.load = {"ours": {"/": LoadFigures((load_round(1500, 45.0),))},
              "seed": {"/": LoadFigures((load_round(900, 50.0),))}}
    r.skipped = {"gate": "skipped (--quick)"}
    r.sample_gate = GateTimes(gate_run(4.3), (gate_run(4.0), gate_run(4.5), gate_run(4.2)))
    r.ci = CiRun("abc1234", 411.0, 0, (("make test", 351.0), ("venv", 43.0)), ("9 passed",), "")
    r.pipeline = {"dockerinit": {"project": "dockerinit", "date": "2026-12-05 10:10 UTC",
                                 "load_average": ["0.3 0.3 0.3", "0.4 0.3 0.3"],
                                 "pairs": [{"pipeline": 1.0, "gate": 4.1, "gate_exit": 0},
                                           {"pipeline": 0.96, "gate": 4.2, "gate_exit": 0},
                                           {"pipeline": 0.93, "gate": 4.3, "gate_exit": 0}]}}
    r.variants = VariantRun((StackVariant("nolog", "access log off", access_log=False),),
                            {"seed": {"/": LoadFigures((load_round(900, 50.0),))},
                             "nolog": {"/": LoadFigures((load_round(1200, 40.0),))}},
                            300, 1, 20, 50, 20.0, {"seed": 0, "nolog": 2},
                            {"seed": "sync, 4 workers, 0 access lines"}, 60.0)
    r.init_sizes = [InitSizeRow("blog", "flaskr:create_app()", 50_300_000, 185_000_000,
                                187_900_000, 2_900_000, 43_100_000, 177_800_000)]
    r.seconds = 600.0
    return r


def section(text: str, title: str) -> str:
    """The text of one ``## title`` section."""
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def table_row(text: str, first_cell: str) -> str:
    """The one table row of ``text`` whose first cell is ``first_cell``."""
    rows = [line for line in text.splitlines() if line.startswith(f"| {first_cell} |")]
    assert len(rows) == 1, f"expected one row starting {first_cell!r}, saw {rows}"
    return rows[0]


@pytest.fixture
def data() -> dict:
    """The fixed run as results.json holds it."""
    return results.to_data(fixed_run())


def test_targets_table_shows_met_missed_and_not_measured(data: dict) -> None:
    """Each verdict kind, with this run's figures and the declared limits."""
    table = section(render.render(data, HISTORY), "Targets")
    assert table_row(table, "start → healthy ≤ 1.5 s") == (
        "| start → healthy ≤ 1.5 s | 0.62 s (median of 3, ours on the imagegate base) | **met** |")
    assert table_row(table, "our image ÷ the seed's, same base ≤ 0.5x") == (
        "| our image ÷ the seed's, same base ≤ 0.5x | 0.94x on the imagegate base | **missed** |")
    assert table_row(table, "warm gate, this repo ≤ 8 s") == (
        "| warm gate, this repo ≤ 8 s | not measured (skipped (--quick)) | — |")
    assert "| warm gate ÷ plain pipeline, docker-init sample ≤ 1.5x | 4.38x (gate 4.2 s ÷ " \
           "pipeline 1.0 s, medians, n=3) | **missed** |" in table
    assert "| fresh clone → green `.ci/run` ≤ 4:00 | 6:51 green | **missed** |" in table


def test_every_declared_target_appears_once_in_the_table(data: dict) -> None:
    """One row per declaration, no more: the table is generated from bench/targets.py."""
    table = section(render.render(data, HISTORY), "Targets")
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == len(TARGETS) + 1  # the header row
    for t in TARGETS:
        assert sum(row.startswith(f"| {t.label} |") for row in rows) == 1, t.key


def test_verdicts_follow_the_declared_limit_and_direction(data: dict) -> None:
    """≤ and ≥ both; a red CI run misses however fast; a target with no limit is reported."""
    found = verdicts(data)
    assert found["sample_gate"].status == MET and found["sample_gate"].measured.value == 4.2
    assert found["rps"].target.direction == "at least" and found["rps"].status == MET
    assert found["p99"].status == MET
    assert found["gate"].status == NOT_MEASURED
    assert found["pipeline_repo"].status == NOT_MEASURED
    data["ci"].update(seconds=100.0, exit_code=1)
    assert verdicts(data)["ci"].status == MISSED
    data["pipeline"]["repo"] = {**data["pipeline"]["dockerinit"], "project": "repo"}
    assert verdicts(data)["pipeline_repo"].status == REPORTED
    data["load"]["seed"]["/"]["rounds"][0]["rps"] = 2000.0
    assert verdicts(data)["rps"].status == MISSED


def test_before_and_after_reads_history_and_this_run(data: dict) -> None:
    """Rows from history.toml's entries, the last column from this run's figure."""
    text = section(render.render(data, HISTORY), "Before and after")
    assert ("| warm gate, docker-init sample | issue 99 | 10.3 s | bench median of 3, commit "
            "feed123 | 4.2 s |") in text
    assert ("| warm gate, this repo | issue 99 | 13.1 s | fresh-clone CI gate stage, commit "
            "9d6fd10 | not measured (skipped (--quick)) |") in text
    assert ("| reports left out of the build context | warm gate, docker-init sample | 8.1 s | "
            "4.0 s | 5 interleaved, commit abc1234 |") in text


def test_the_kept_history_file_is_valid() -> None:
    """bench/history.toml names declared targets only and every entry has its fields."""
    history = render.load_history(render.HISTORY)
    assert {b["target"] for b in history["before"]} >= {"gate", "ci", "pipeline_dockerinit"}
    assert history["changes"]


def test_missing_sections_render_as_not_measured() -> None:
    """A results file with nothing measured renders every target as not measured."""
    text = render.render({"schema": 1}, HISTORY)
    table = section(text, "Targets")
    for t in TARGETS:
        assert re.search(rf"\| {re.escape(t.label)} \| not measured \(no `[\w.]+` in the results\) "
                         r"\| — \|", table), t.key
    assert "## Notes" in text


def test_one_missing_section_leaves_the_others(data: dict) -> None:
    """Without ``load``: its targets say so, the sizes still render."""
    del data["load"]
    text = render.render(data, HISTORY)
    assert "| p99 ours ÷ seed ≤ 1x | not measured (no `load` in the results) | — |" in text
    assert "## Throughput and latency" not in text
    assert "| ours | imagegate | 56.1 | 43.1 | 13.0 | 0.0 | 0.94x |" in text


def test_json_round_trip_renders_the_same(data: dict, tmp_path: Path) -> None:
    """Results → results.json → render equals the render of the run in memory."""
    path = results.write(data, tmp_path / "results.json")
    out = tmp_path / "RESULTS.md"
    history = tmp_path / "history.toml"
    history.write_text(render.HISTORY.read_text())
    assert render.main([str(path), "--out", str(out), "--history", str(history)]) == 0
    assert out.read_text() == render.render(results.to_data(fixed_run()),
                                            render.load_history(history))
    assert json.loads(path.read_text())["sample_gate"]["runs"][0]["seconds"] == 4.0  # raw


def test_raw_values_are_kept_not_only_medians(data: dict) -> None:
    """Every run's value is in the JSON: Stats as lists, each load round's figures."""
    assert data["builds"][OURS.title]["cold"] == [6.1, 5.9, 6.3]
    assert data["starts"][OURS.title]["to_200"] == [0.62, 0.52, 0.69]
    assert set(data["load"]["ours"]["/"]["rounds"][0]) == {"requests", "errors", "seconds",
                                                           "rps", "p50", "p99"}


@pytest.mark.parametrize(("content", "said"), [
    (None, "no such file"),
    ("{not json", "not JSON (line 1"),
    ("[1, 2]", "holds a JSON list, not an object"),
    ('{"schema": 7}', "schema 7, this renderer reads schema 1"),
    ('{"schema": 1, "sizes": [{"recipe": "ours"}]}', "a section is not in the shape"),
])
def test_a_bad_results_file_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              content: str | None, said: str) -> None:
    """Exit 2 and a line naming the file and what is wrong; no traceback, no output file."""
    path = tmp_path / "results.json"
    if content is not None:
        path.write_text(content)
    out = tmp_path / "RESULTS.md"
    assert render.main([str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bench.render: {path}: ") and said in err
    assert "Traceback" not in err and not out.exists()


@pytest.mark.parametrize(("entry", "said"), [
    ('[[changes]]\ntarget = "nope"\nwhat = "w"\nbefore = "1"\nafter = "2"\nwhere = "x"\n',
     "target 'nope' is not declared in bench/targets.py"),
    ('[[before]]\ntarget = "gate"\nround = "r"\nfigure = "1 s"\n', "[[before]] #1 lacks source"),
    ("[[before]\n", "not TOML"),
])
def test_a_bad_history_entry_is_refused(tmp_path: Path, entry: str, said: str) -> None:
    """An entry naming no declared target, or missing a field, stops the render."""
    path = tmp_path / "history.toml"
    path.write_text(entry)
    with pytest.raises(render.ResultsError, match=re.escape(said)):
        render.load_history(path)


def test_notes_read_numbers_from_the_run_and_limits_from_targets(data: dict) -> None:
    """The missed targets' notes quote this run's figures and the declared limit."""
    notes = section(render.render(data, HISTORY), "Notes")
    assert "**Size target missed on the same base** (0.94x on the imagegate base; target our " \
           "image ÷ the seed's, same base ≤ 0.5x)" in notes
    assert "**Fresh-clone target missed** (6:51; target fresh clone → green `.ci/run` ≤ 4:00)." \
           " Where it goes: make test 351 s, venv 43 s." in notes
    assert f"(4.38x: gate 4.2 s, pipeline 1.0 s; target {BY_KEY['pipeline_dockerinit'].label})" \
           in notes
    assert "Start target missed" not in notes


def test_variants_and_init_sections_render_from_the_same_data(data: dict) -> None:
    """The sections bench.variants and bench/initsizes.py also print alone."""
    text = render.render(data, HISTORY)
    assert ("| `/` | access log off | access log off | 1200 (1200-1200) | 10.0 | 10.0 | 0 | "
            "1.33x | 1.00x |") in section(text, "Stack variants: where our p99 goes")
    assert re.search(r"WORKER TIMEOUT`s while paused:\s+nolog 2\.", text)
    assert ("| blog | `flaskr:create_app()` | 50.3 | 185.0 | 187.9 | 2.9 | 0.27x | 0.98x |"
            in section(text, "`imagegate init` images vs the seed's recipe"))
