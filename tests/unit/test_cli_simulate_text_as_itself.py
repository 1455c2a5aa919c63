"""`federator simulate` names the trace file in its table's title as it is. A table title is
rich markup: before, a trace `run-[train].csv` was titled `run-.csv`. (A file name cannot hold
`/`, so no closing tag like `[/x]` can come from it; an opening one is the case to cover.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from federator import cli
from federator.sim.traces import synthetic_trace, write_trace

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "scripts" / "bench" / "simulate_policy.yaml"


@pytest.mark.parametrize("name", ["run-[train].csv", "run-[bold red]x.csv"])
def test_the_title_names_the_trace_file_whole(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / name
    write_trace(trace, synthetic_trace(50, seed=3, cluster_gpus=32, load=1.2))
    argv = ["simulate", "--config", str(POLICY), "--trace", str(trace), "--onprem-gpus", "32"]
    assert cli.main([*argv, "--policy", "never"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith(f"{name}: 50 jobs, on-prem 32 GPUs") for line in lines)
