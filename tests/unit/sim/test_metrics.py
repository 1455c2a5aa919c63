"""Summary figures: on-prem utilization over the arrival window."""

from __future__ import annotations

import dataclasses

import pytest

from federator.core.policy import DecisionPolicy, Strategy
from federator.sim.engine import RunResult, Simulation
from federator.sim.policies import CoreController
from federator.sim.traces import TraceJob

from .helpers import tiny_scenario

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
