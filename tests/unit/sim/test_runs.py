"""Which values of waiting a run uses: the policy file's as written, or the sweep's knob alone."""

from __future__ import annotations

import pytest

from federator.core.policy import DecisionPolicy
from federator.sim.engine import Simulation
from federator.sim.results import RunResult
from federator.sim.runs import Planners, controller_for, decision_policy, plan_runs

from .helpers import on_demand_pool, tiny_scenario, tiny_trace

# The tiny world (helpers.tiny_trace): j1 (4 GPUs) is worth bursting above $4.33 per job-hour
# and j2 (2 GPUs) above $0.79; at $2 per GPU-hour they are worth $8 and $4 per hour.


def _run(policy: str, base: DecisionPolicy, *, sweep: bool = False) -> list[RunResult]:
    trace, scenario = tiny_trace(), tiny_scenario(on_demand_pool())
    planners: Planners = {}
    results = []
    for spec in plan_runs([policy], sweep=sweep, base=base):
        controller = controller_for(spec, base, trace, scenario, planners)
        results.append(Simulation(trace, scenario, controller).run())
    return results


def test_the_oracle_without_sweep_prices_waiting_per_gpu_hour_as_the_file_says() -> None:
    """$2 per GPU-hour makes both j1 and j2 worth bursting; read as $2 per job-hour, j1 stayed."""
    base = DecisionPolicy(value_of_time_usd_per_gpu_hour=2.0)
    (oracle,) = _run("oracle", base)
    (federator,) = _run("federator", base)
    assert oracle.outcomes.bursted.tolist() == [False, True, True]
    assert federator.outcomes.bursted.tolist() == [False, True, True]
    assert (oracle.knob, oracle.knob_name) == (None, "")  # no knob: the file's values


def test_the_oracle_without_sweep_uses_the_queues_own_values() -> None:
    base = DecisionPolicy(
        value_of_time_usd_per_gpu_hour=2.0, queue_value_of_time_usd_per_gpu_hour={"default": 0.0}
    )
    (oracle,) = _run("oracle", base)
    assert not oracle.outcomes.bursted.any()


@pytest.mark.parametrize("policy", ["federator", "oracle"])
def test_a_sweep_prices_every_job_at_the_knob_alone(policy: str) -> None:
    """A queue's $100 per GPU-hour would burst everything at every grid point."""
    base = DecisionPolicy(
        queue_value_of_time_usd_per_gpu_hour={"default": 100.0},
        priority_value_multipliers=((0, 3.0),),
    )
    for spec in plan_runs([policy], sweep=True, base=base):
        assert spec.knob is not None
        swept = decision_policy(spec, base, tiny_trace())
        for gpus in (1, 8):
            value = swept.value_of_time_usd_per_hour(gpus=gpus, queue="default", priority=0)
            assert value == spec.knob
    cheapest = _run(policy, base, sweep=True)[0]  # $0.1 per job-hour: nothing pays
    assert cheapest.knob == 0.1
    assert not cheapest.outcomes.bursted.any()
