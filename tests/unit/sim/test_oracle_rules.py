"""The oracle obeys the rules every policy obeys, and plans for jobs on-prem can never hold."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise

import pytest

from federator.core.models import CapacityType
from federator.core.policy import Budgets, Caps, DecisionPolicy, Strategy, TenantRule
from federator.sim.cloud import AvailabilityTrace, CloudPool
from federator.sim.engine import Simulation
from federator.sim.results import RunResult
from federator.sim.runs import RunSpec, controller_for
from federator.sim.scenarios import Scenario
from federator.sim.traces import TraceJob

from .helpers import on_demand_pool, spot_pool, tiny_scenario, tiny_trace

BASE = DecisionPolicy(strategy=Strategy.FEDERATOR)


def _oracle(
    trace: tuple[TraceJob, ...], scenario: Scenario, value: float, policy: DecisionPolicy = BASE
) -> RunResult:
    scenario = replace(scenario, caps=policy.caps)  # as `setup` copies the policy file's caps
    controller = controller_for(RunSpec("oracle", value), policy, trace, scenario)
    return Simulation(trace, scenario, controller).run()


def _v100_pool(price: float = 3.0) -> CloudPool:
    return replace(on_demand_pool(), pool="v100", gpu_type="V100", price_per_gpu_hour_usd=price)


@pytest.mark.parametrize("value", [0.5, 10.0])
def test_a_job_bigger_than_the_cluster_bursts_at_every_value(value: float) -> None:
    """16 GPUs never fit the 8-GPU node: the first plan (burst nothing) could not finish it."""
    trace = (*tiny_trace(), TraceJob("big", 300.0, 16, 600.0))
    result = _oracle(trace, tiny_scenario(on_demand_pool()), value)
    assert result.outcomes.bursted.tolist()[3]
    assert result.outcomes.end_s[3] == 300.0 + 60.0 + 600.0  # at once, 60 s startup


def test_a_big_job_held_back_by_a_cap_goes_when_room_frees() -> None:
    """Two 16-GPU jobs under a 16-GPU cap: the second bursts when the first has finished."""
    trace = (TraceJob("big1", 0.0, 16, 600.0), TraceJob("big2", 10.0, 16, 600.0))
    policy = replace(BASE, caps=Caps(max_bursted_gpus=16))
    result = _oracle(trace, tiny_scenario(on_demand_pool()), 0.5, policy)
    assert result.outcomes.bursted.tolist() == [True, True]
    assert result.outcomes.end_s[0] == 660.0
    assert result.outcomes.start_s[1] - 60.0 >= 660.0


def test_a_job_asking_for_a_gpu_type_goes_only_to_a_pool_of_that_type() -> None:
    trace = tiny_trace()
    trace = (trace[0], replace(trace[1], gpu_type="V100"), replace(trace[2], gpu_type="H100"))
    scenario = tiny_scenario(on_demand_pool(), _v100_pool())
    result = _oracle(trace, scenario, 1000.0)
    assert result.outcomes.bursted.tolist() == [False, True, False]
    assert scenario.pools[int(result.outcomes.pool[1])].gpu_type == "V100"


def test_the_oracle_keeps_the_cap_on_bursted_gpus() -> None:
    """Three 8-GPU jobs behind a full node, a cap of 8 bursted GPUs: one in the clouds at once."""
    trace = (
        TraceJob("j0", 0.0, 8, 7200.0),
        *(TraceJob(f"j{i}", 100.0 + i, 8, 1800.0) for i in range(1, 4)),
    )
    policy = replace(BASE, caps=Caps(max_bursted_gpus=8))
    result = _oracle(trace, tiny_scenario(on_demand_pool()), 1000.0, policy)
    outcomes = result.outcomes
    runs = sorted(
        (float(outcomes.start_s[job]) - 60.0, float(outcomes.end_s[job]))
        for job in range(len(trace))
        if outcomes.bursted[job]
    )
    assert len(runs) >= 2  # the cap is used again once room frees, not given up
    assert all(later[0] >= earlier[1] for earlier, later in pairwise(runs))


def test_the_oracle_keeps_a_clusters_cap_on_bursted_jobs() -> None:
    trace = tiny_trace()
    policy = replace(BASE, caps=Caps(cluster_max_bursted_jobs={"cloud": 1}))
    result = _oracle(trace, tiny_scenario(on_demand_pool()), 1000.0, policy)
    outcomes = result.outcomes
    # j1 bursts at 100 and runs until 1960; j2 (due at 200) cannot join it, and goes when j1
    # has finished: still long before on-prem would start it at 3600.
    assert outcomes.bursted.tolist() == [False, True, True]
    assert outcomes.end_s[1] == 1960.0
    assert outcomes.start_s[2] - 60.0 >= 1960.0


def test_the_oracle_keeps_the_daily_budget() -> None:
    """j1 ($4.13) and j2 ($0.73) both pay at v = 10, but only $4.50 may be spent today."""
    policy = replace(BASE, budgets=Budgets(max_usd_per_day=4.5))
    result = _oracle(tiny_trace(), tiny_scenario(on_demand_pool()), 10.0, policy)
    assert result.outcomes.bursted.tolist() == [False, True, False]
    assert float(result.outcomes.cost_usd.sum()) <= 4.5


def test_a_tenant_that_never_bursts_keeps_its_jobs_on_prem() -> None:
    policy = replace(BASE, tenants={"default": TenantRule(burst_allowed=False)})
    result = _oracle(tiny_trace(), tiny_scenario(on_demand_pool()), 1000.0, policy)
    assert not result.outcomes.bursted.any()


def test_a_pool_whose_replayed_market_never_has_room_for_the_job_is_no_option() -> None:
    """The spot market never has more than one 8-GPU instance: the 16-GPU job goes on-demand."""
    spot = replace(spot_pool(), availability=AvailabilityTrace(tick_s=60.0, alive=(1,) * 10))
    trace = (TraceJob("big", 0.0, 16, 600.0),)
    scenario = tiny_scenario(spot, on_demand_pool())
    result = _oracle(trace, scenario, 0.5)
    assert scenario.pools[int(result.outcomes.pool[0])].capacity_type is CapacityType.ON_DEMAND


def test_a_queue_that_may_not_burst_keeps_its_jobs_on_prem() -> None:
    """The policy file's queue rules (Scenario.burst_refused) hold for the oracle too."""
    trace = tuple(replace(job, queue="private") for job in tiny_trace())
    refused = {"private": "ClusterQueue private never bursts"}
    scenario = replace(tiny_scenario(on_demand_pool()), burst_refused=refused)
    result = _oracle(trace, scenario, 1000.0)
    assert not result.outcomes.bursted.any()


def test_a_burst_held_back_until_it_no_longer_pays_stays_on_prem() -> None:
    """At $20 per job-hour j2 pays to burst until 3276 s (on-prem starts it at 3600: 3600 -
    60 s startup - $1.47 x 3600 / 20); the cap of one job holds it back while j1 runs in the
    clouds, until 3360 s: then it stays, though room freed."""
    trace = (
        TraceJob("j0", 0.0, 8, 3600.0),
        TraceJob("j1", 100.0, 4, 3200.0),
        TraceJob("j2", 110.0, 4, 600.0),
    )
    policy = replace(BASE, caps=Caps(cluster_max_bursted_jobs={"cloud": 1}))
    result = _oracle(trace, tiny_scenario(on_demand_pool()), 20.0, policy)
    assert result.outcomes.bursted.tolist() == [False, True, False]
    assert result.outcomes.end_s[1] == 3360.0
    assert result.outcomes.start_s[2] == 3600.0


def test_a_big_job_worth_nothing_waiting_still_goes_when_a_cap_frees() -> None:
    """A value of waiting of 0 makes no burst pay, but a job on-prem cannot hold must go."""
    trace = (TraceJob("big1", 0.0, 16, 600.0), TraceJob("big2", 10.0, 16, 600.0))
    policy = replace(BASE, caps=Caps(max_bursted_gpus=16))
    result = _oracle(trace, tiny_scenario(on_demand_pool()), 0.0, policy)
    assert result.outcomes.bursted.tolist() == [True, True]


def test_the_oracle_keeps_burst_min_wait() -> None:
    """No burst before a job has been pending 300 s: j1 goes at 400 s, j2 at 500 s."""
    policy = replace(BASE, min_pending_before_burst_s=300.0)
    result = _oracle(tiny_trace(), tiny_scenario(on_demand_pool()), 1000.0, policy)
    assert result.outcomes.bursted.tolist() == [False, True, True]
    assert result.outcomes.end_s.tolist()[1:] == [400.0 + 60.0 + 1800.0, 500.0 + 60.0 + 600.0]
