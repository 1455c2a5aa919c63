"""What `federator simulate` tells a newcomer beside its table: --json's shape as its help
says it, and the trace's figure docs/configuration.md says simulate prints for Starburst."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from federator import cli
from federator.commands import simulate
from federator.core import starburst
from federator.sim.traces import read_trace, synthetic_trace, write_trace

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "scripts" / "bench" / "simulate_policy.yaml"


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    path = tmp_path / "t.csv"
    write_trace(path, synthetic_trace(200, seed=3, cluster_gpus=32, load=1.2))
    return path


def simulated(trace: Path, *more: str) -> None:
    argv = ["simulate", "--config", str(POLICY), "--trace", str(trace), "--onprem-gpus", "32"]
    assert cli.main([*argv, *more]) == 0


def test_json_is_the_list_the_help_says(trace: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs.json"
    simulated(trace, "--policy", "never", "--policy", "federator", "--json", str(out))
    rows = json.loads(out.read_text())
    assert [row["policy"] for row in rows] == ["never", "federator"]
    assert "JSON list, one object per run" in _help_of("--json")


def _help_of(flag: str) -> str:
    parser = argparse.ArgumentParser()
    simulate.add_parser(parser.add_subparsers())
    (command,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    (option,) = (a for a in command.choices["simulate"]._actions if flag in a.option_strings)
    return str(option.help)


def test_a_starburst_run_prints_the_traces_runtime_weighted_mean_gpus(
    trace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = read_trace(trace)
    weighted = starburst.runtime_weighted_mean_gpus((job.gpus, job.duration_s) for job in jobs)
    simulated(trace, "--policy", "starburst")
    out = capsys.readouterr().out
    assert f"is {weighted:.2f}, so β = ρ / {weighted:.2f}" in out
    assert "burst.starburst.runtime_weighted_mean_gpus" in out


def test_without_starburst_the_figure_is_left_out(
    trace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    simulated(trace, "--policy", "never")
    assert "runtime-weighted" not in capsys.readouterr().out
