"""`federator simulate --replays N`: replay 0 is the trace as written, replay k the trace with
its submit times jittered from seed k (traces.jittered); JSON rows, the summary over the
replays, the plot and refusing a bad N."""

from __future__ import annotations

import json
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy
import pytest

from federator import cli
from federator.sim import report, runs, setup
from federator.sim.traces import jittered, read_trace, synthetic_trace, write_trace

REPO = Path(__file__).resolve().parents[3]
POLICY = REPO / "scripts" / "bench" / "simulate_policy.yaml"
POLICIES = ("never", "starburst", "federator")
FIGURES = ("cloud_cost_usd", "mean_jct_s", "p95_jct_s", "bursted_jobs", "cloud_gpu_hours")


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    """A small busy trace whose jobs arrive in hourly batches: jobs submitted in the same
    second are ordered by the jitter, so the replays differ (with arrivals seconds apart, a
    delay under a second reorders nothing and every replay gives the same figures)."""
    jobs = synthetic_trace(200, seed=3, cluster_gpus=32, load=1.2)
    batched = [replace(job, submit_s=float(job.submit_s // 3600 * 3600)) for job in jobs]
    path = tmp_path / "t.csv"
    write_trace(path, batched)
    return path


def simulated(trace: Path, out: Path, *flags: str) -> list[dict[str, Any]]:
    """The JSON rows of a run of the three policies on 32 on-prem GPUs."""
    argv = ["simulate", "--config", str(POLICY), "--trace", str(trace), "--onprem-gpus", "32"]
    chosen = [arg for name in POLICIES for arg in ("--policy", name)]
    assert cli.main([*argv, *chosen, "--json", str(out), *flags]) == 0
    rows: list[dict[str, Any]] = json.loads(out.read_text())
    return rows


def of_replay(rows: list[dict[str, Any]], replay: int) -> list[dict[str, Any]]:
    return [row for row in rows if row["replay"] == replay]


def test_each_run_gives_one_json_object_per_replay(trace: Path, tmp_path: Path) -> None:
    rows = simulated(trace, tmp_path / "runs.json", "--replays", "3")
    assert [(row["replay"], row["policy"]) for row in rows] == [
        (replay, policy) for replay in range(3) for policy in POLICIES
    ]


def test_without_replays_every_row_is_replay_0(trace: Path, tmp_path: Path) -> None:
    rows = simulated(trace, tmp_path / "runs.json")
    assert [row["replay"] for row in rows] == [0, 0, 0]


def test_replay_0_is_the_run_without_replays(trace: Path, tmp_path: Path) -> None:
    alone = simulated(trace, tmp_path / "alone.json")
    replayed = simulated(trace, tmp_path / "replayed.json", "--replays", "3")
    assert of_replay(replayed, 0) == alone


def test_replay_1_is_the_trace_jittered_from_seed_1(trace: Path, tmp_path: Path) -> None:
    rows = simulated(trace, tmp_path / "runs.json", "--replays", "2")
    jobs = read_trace(trace)
    world = setup.load_world(POLICY, jobs, setup.WorldOptions(onprem_gpus=32))
    planned = runs.plan_runs(POLICIES, False, world.policy)
    direct = runs.run_all(jittered(jobs, seed=1), world.scenario, world.policy, planned)
    expected = report.to_json_rows([replace(result, replay=1) for result in direct])
    assert of_replay(rows, 1) == expected
    assert _figures(of_replay(rows, 1)) != _figures(of_replay(rows, 0)), "the replays differ"


def _figures(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [tuple(row[key] for key in FIGURES) for row in rows]


def test_the_summary_shows_the_mean_of_the_replays_rows(
    trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = simulated(trace, tmp_path / "runs.json", "--replays", "3")
    summary = _summary_rows(capsys.readouterr().out, "over 3 replays")
    told_apart = []  # runs whose printed mean is not what replay 0 alone would print
    for policy in POLICIES:
        mine = [row for row in rows if row["policy"] == policy]
        costs = [row["cloud_cost_usd"] for row in mine]
        jcts = [row["mean_jct_s"] / 3600 for row in mine]
        cells = summary[policy]
        assert cells[1] == _dollars(statistics.fmean(costs))
        assert cells[2] == f"{_dollars(min(costs))}–{_dollars(max(costs))}"
        assert cells[3] == f"{statistics.fmean(jcts):.3f}h"
        assert cells[4] == f"{min(jcts):.3f}h–{max(jcts):.3f}h"
        assert cells[5] == "3"
        if cells[1] != _dollars(costs[0]):
            told_apart.append(policy)
    assert told_apart, "this trace's replays differ in cost, so the mean is not replay 0's"


def test_a_single_replay_prints_no_summary(
    trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    simulated(trace, tmp_path / "runs.json")
    out = capsys.readouterr().out
    assert "replay 0" not in out
    assert "over 1 replay" not in out
    assert "cloud $ mean" not in out


@pytest.mark.parametrize(
    ("replays", "jittered_note"),
    [("2", "1 delays each submit time"), ("3", "1..2 delay each submit time")],
)
def test_each_replay_is_named_and_the_note_says_how_they_were_made(
    trace: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    replays: str,
    jittered_note: str,
) -> None:
    simulated(trace, tmp_path / "runs.json", "--replays", replays)
    out = " ".join(capsys.readouterr().out.split())  # rich wraps the note
    assert f"replay 0 of {replays} (the trace as written)" in out
    assert f"replay 1 of {replays} (jitter seed 1)" in out
    assert f"over the {replays} replays: 0 is the trace as written, {jittered_note}" in out


def _summary_rows(out: str, title: str) -> dict[str, list[str]]:
    """The summary table's cells by policy: its first rows after its title (rich draws the
    header's borders ┃, the rows' │)."""
    lines = out[out.index(title) :].splitlines()
    header = next(line for line in lines if "┃" in line)
    assert [cell.strip() for cell in header.split("┃")[1:4]] == ["policy", "knob", "cloud $ mean"]
    cells = [[cell.strip() for cell in line.split("│")[1:-1]] for line in lines]
    table = [row for row in cells if row][: len(POLICIES)]
    return {row[0]: row[1:] for row in table}


def _dollars(value: float) -> str:
    """As the tables print dollars: whole from $100 on, else cents."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


@pytest.mark.parametrize("value", ["0", "-1", "x", "1.5"])
def test_a_bad_number_of_replays_is_refused_by_name(
    trace: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    argv = ["simulate", "--config", str(POLICY), "--trace", str(trace), "--replays", value]
    with pytest.raises(SystemExit) as caught:
        cli.main(argv)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --replays: '{value}' must be a whole number from 1 to 1000" in err
    assert "Traceback" not in err


def test_a_plot_of_several_replays_is_written(trace: Path, tmp_path: Path) -> None:
    plot = tmp_path / "curves.png"
    simulated(trace, tmp_path / "runs.json", "--replays", "3", "--sweep", "--plot", str(plot))
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_plot_draws_each_replay_faint_and_the_mean_bold(
    trace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matplotlib.figure import Figure

    drawn: list[Figure] = []
    save = Figure.savefig

    def keep(figure: Figure, *args: Any, **kwargs: Any) -> None:
        drawn.append(figure)
        save(figure, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    plot = tmp_path / "curves.png"
    flags = ("--replays", "3", "--sweep", "--plot", str(plot))
    rows = simulated(trace, tmp_path / "runs.json", *flags)
    (axes,) = drawn[0].axes
    drawn_legend = axes.get_legend()
    assert drawn_legend is not None
    legend = [text.get_text() for text in drawn_legend.get_texts()]
    assert legend == ["federator", "never: no cloud", "starburst",
                      "thin: each of 3 replays; bold: their mean"]  # fmt: skip
    faint = [line for line in axes.lines if line.get_label() == "_nolegend_"]
    assert {line.get_alpha() for line in faint} == {0.35}
    assert len(faint) == 3 * len(POLICIES)
    (bold,) = [line for line in axes.lines if line.get_label() == "federator"]
    assert bold.get_linewidth() == 2.5
    mine = [row for row in rows if row["policy"] == "federator"]
    by_knob = {row["knob"]: [r for r in mine if r["knob"] == row["knob"]] for row in mine}
    means = sorted(
        (statistics.fmean(r["cloud_cost_usd"] for r in same),
         statistics.fmean(r["mean_jct_s"] / 3600 for r in same))
        for same in by_knob.values()
    )  # fmt: skip
    drawn_jcts = numpy.asarray(bold.get_ydata(), dtype=float).tolist()
    assert drawn_jcts == pytest.approx([jct for _, jct in means])
