"""Summary figures: on-prem utilization over the arrival window, and the table's small amounts."""

from __future__ import annotations

import dataclasses

import pytest
from rich.console import Console

from federator import cli
from federator.core.policy import DecisionPolicy, Strategy
from federator.sim.engine import Simulation
from federator.sim.policies import CoreController
from federator.sim.report import results_table
from federator.sim.results import RunResult
from federator.sim.traces import TraceJob

from .helpers import on_demand_pool, tiny_scenario

STAGGERED = (
    TraceJob("a", 0.0, 8, 1000.0),
    TraceJob("b", 500.0, 8, 1000.0),
    TraceJob("c", 1000.0, 8, 1000.0),
)


def never(trace: tuple[TraceJob, ...]) -> RunResult:
    controller = CoreController("never", DecisionPolicy(strategy=Strategy.NEVER))
    return Simulation(trace, tiny_scenario(), controller).run()


def shifted(trace: tuple[TraceJob, ...], by_s: float) -> tuple[TraceJob, ...]:
    return tuple(dataclasses.replace(job, submit_s=job.submit_s + by_s) for job in trace)


def test_utilization_does_not_depend_on_where_the_trace_clock_starts() -> None:
    # The node is busy the whole arrival window [0, 1000] (a runs 0-1000, b 1000-2000).
    assert never(STAGGERED).summary.onprem_utilization == pytest.approx(1.0)
    assert never(shifted(STAGGERED, 100_000.0)).summary.onprem_utilization == pytest.approx(1.0)


def test_utilization_of_jobs_arriving_at_once_is_over_the_makespan() -> None:
    at_once = (TraceJob("a", 0.0, 8, 3600.0), TraceJob("b", 0.0, 4, 3600.0))
    summary = never(shifted(at_once, 50.0)).summary
    # 8 GPUs x 2 h of makespan; busy 8 x 1 h + 4 x 1 h.
    assert summary.onprem_utilization == pytest.approx((8 + 4) / (8 * 2))


def test_small_cloud_amounts_are_shown_with_cents() -> None:
    trace = (TraceJob("a", 0.0, 8, 3600.0), TraceJob("b", 0.0, 1, 700.0))
    pool = on_demand_pool(price=2.0, startup_s=20.0)
    controller = CoreController("always", DecisionPolicy(strategy=Strategy.ALWAYS))
    result = Simulation(trace, tiny_scenario(pool), controller).run()
    assert result.summary.cloud_cost_usd == pytest.approx(0.4)
    console = Console(width=250, record=True)
    console.print(results_table([result], "t"))
    row = next(line for line in console.export_text().splitlines() if "always" in line)
    assert "0.40" in row  # cloud $, not "0"
    assert "0.20" in row  # cloud GPU-hours: 720 s of one GPU


def test_the_help_names_the_knob_federator_sweeps_in_the_unit_it_uses(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        cli.main(["simulate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "knob: value of waiting in $ per job-hour" in text
    assert "value of waiting in $ per GPU-hour" not in text
