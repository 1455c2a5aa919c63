"""The hindsight oracle bursts exactly the jobs whose waiting is worth more than the cloud."""

from __future__ import annotations

import pytest

from federator.core.policy import DecisionPolicy, Strategy
from federator.sim.engine import Simulation
from federator.sim.oracle import HindsightPlanner, OracleController
from federator.sim.runs import per_job_value

from .helpers import on_demand_pool, tiny_scenario, tiny_trace

# In the tiny world j1 (4 GPUs, 1800 s) would wait 3500 s and j2 (2 GPUs, 600 s) 3400 s. Bursting
# costs 4·$2·1860 s = $4.13 and 2·$2·660 s = $0.73 and adds 60 s of startup, so j1 is worth
# bursting above v = 4.13·3600/3440 ≈ $4.33 per job-hour and j2 above 0.73·3600/3340 ≈ $0.79.


@pytest.mark.parametrize(
    ("value", "bursted"),
    [(0.5, [False, False, False]), (2.0, [False, False, True]), (10.0, [False, True, True])],
)
def test_the_oracle_bursts_where_waiting_is_worth_the_cloud(
    value: float, bursted: list[bool]
) -> None:
    trace, scenario = tiny_trace(), tiny_scenario(on_demand_pool())
    base = DecisionPolicy(strategy=Strategy.FEDERATOR)
    planner = HindsightPlanner(trace, scenario, lambda v: per_job_value(base, v))
    controller = OracleController(planner, knob=value, knob_name="value_usd_per_job_hour")
    result = Simulation(trace, scenario, controller).run()
    assert result.outcomes.bursted.tolist() == bursted
    if bursted[2]:
        assert result.outcomes.end_s[2] == 860.0  # bursted at its arrival, 60 s startup


def test_the_planner_reuses_its_path_across_a_sweep() -> None:
    trace, scenario = tiny_trace(), tiny_scenario(on_demand_pool())
    base = DecisionPolicy(strategy=Strategy.FEDERATOR)
    planner = HindsightPlanner(trace, scenario, lambda v: per_job_value(base, v))
    planner.plan_for(2.0)
    first = planner.simulations
    planner.plan_for(4.0)
    assert planner.simulations == first + 1
    assert planner.plan_for(2.0) is planner.plan_for(2.0)
