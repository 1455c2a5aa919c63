"""The event loop against hand-computed runs, and its invariants on a bigger trace."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from federator.core.policy import DecisionPolicy, Strategy
from federator.sim.engine import Simulation
from federator.sim.metrics import wait_forecasts
from federator.sim.policies import CoreController
from federator.sim.report import forecasts_table
from federator.sim.results import RunResult
from federator.sim.runs import RunSpec, controller_for
from federator.sim.traces import TraceJob, synthetic_trace

from .helpers import on_demand_pool, spot_pool, tiny_scenario, tiny_trace


def run_tiny(strategy: Strategy, **knobs: float) -> RunResult:
    policy = DecisionPolicy(strategy=strategy, **knobs)  # type: ignore[arg-type]
    controller = CoreController(str(strategy), policy)
    return Simulation(tiny_trace(), tiny_scenario(on_demand_pool()), controller).run()


def test_never_queues_behind_the_running_job() -> None:
    result = run_tiny(Strategy.NEVER)
    out = result.outcomes
    assert out.start_s.tolist() == [0.0, 3600.0, 3600.0]  # both fit once j0 is done
    assert out.end_s.tolist() == [3600.0, 5400.0, 4200.0]
    summary = result.summary
    assert summary.mean_jct_s == pytest.approx((3600 + 5300 + 4000) / 3)
    assert summary.mean_wait_s == pytest.approx((0 + 3500 + 3400) / 3)
    assert summary.cloud_cost_usd == 0.0
    assert summary.bursted_jobs == 0


def test_always_bursts_on_demand_at_once() -> None:
    result = run_tiny(Strategy.ALWAYS)
    out = result.outcomes
    # startup 60 s; billed from launch: 4 GPUs x 1860 s and 2 GPUs x 660 s at $2/GPU-h
    assert out.start_s.tolist() == [0.0, 160.0, 260.0]
    assert out.end_s.tolist() == [3600.0, 1960.0, 860.0]
    assert out.cost_usd.tolist() == pytest.approx([0.0, 4 * 2 * 1860 / 3600, 2 * 2 * 660 / 3600])
    summary = result.summary
    assert summary.bursted_jobs == 2
    assert summary.mean_jct_s == pytest.approx((3600 + 1860 + 660) / 3)
    assert summary.cloud_gpu_hours == pytest.approx((4 * 1860 + 2 * 660) / 3600)


def test_starburst_bursts_each_job_at_its_compute_wait_timeout() -> None:
    # Σ(g·r)/Σr = 37200/6000 = 6.2, so ρ = 0.62 gives β = 0.1: j1 waits 0.1·4·1800 = 720 s
    # (timeout 820), j2 waits 0.1·2·600 = 120 s (timeout 320).
    result = run_tiny(
        Strategy.STARBURST, starburst_waiting_budget=0.62, starburst_runtime_weighted_mean_gpus=6.2
    )
    out = result.outcomes
    assert out.start_s.tolist() == pytest.approx([0.0, 880.0, 380.0])
    assert out.end_s.tolist() == pytest.approx([3600.0, 2680.0, 980.0])
    assert result.summary.cloud_cost_usd == pytest.approx(4 * 2 * 1860 / 3600 + 2 * 2 * 660 / 3600)


def test_decision_rounds_follow_the_decision_period() -> None:
    policy = DecisionPolicy(strategy=Strategy.ALWAYS)
    scenario = tiny_scenario(on_demand_pool(), period_s=30.0)
    result = Simulation(tiny_trace(), scenario, CoreController("always", policy)).run()
    # j1 arrives at 100 and j2 at 200: rounds at 120 and 210.
    assert result.outcomes.start_s.tolist() == [0.0, 180.0, 270.0]


@pytest.mark.parametrize(
    ("policy", "queue_weight"),
    [
        ("never", 0.0),
        ("always", 0.0),
        ("greedy-spot", 0.0),
        ("starburst", 0.0),
        ("federator", 0.0),
        ("federator", 1.0),  # with the price of the queue behind (`queued_behind` passed)
    ],
)
def test_every_policy_keeps_the_invariants_and_is_deterministic(
    policy: str, queue_weight: float
) -> None:
    trace = synthetic_trace(1500, seed=7, cluster_gpus=64, load=1.3)
    scenario = dataclasses.replace(
        tiny_scenario(on_demand_pool(), spot_pool(rate=0.5), period_s=30.0), onprem_gpus=64
    )
    spec = RunSpec(policy, 0.5 if policy == "starburst" else None)
    base = DecisionPolicy(queue_externality_weight=queue_weight)
    runs = [
        Simulation(trace, scenario, controller_for(spec, base, trace, scenario)).run()
        for _ in range(2)
    ]
    first, second = runs
    out = first.outcomes
    assert (out.finished_count == 1).all()
    assert first.max_onprem_gpus_used <= 64
    assert sum(first.cloud_usd_by_pool.values()) == pytest.approx(out.cost_usd.sum())
    # fixed prices, no data: each job's charge is its billed GPU-seconds at its pool's price,
    # except after the restart limit, where the rest of the run is billed at the on-demand $2
    price = np.array([pool.price_per_gpu_hour_usd for pool in scenario.pools] + [0.0])
    plain = out.preemptions < scenario.pools[-1].max_restarts
    at_list_price = out.cloud_gpu_s / 3600 * price[out.pool]
    assert out.cost_usd[plain] == pytest.approx(at_list_price[plain])
    assert (out.cost_usd[~plain] > at_list_price[~plain]).all()
    assert (out.cost_usd[~plain] < out.cloud_gpu_s[~plain] / 3600 * 2.0).all()
    assert (out.pool >= 0).sum() == first.summary.bursted_jobs
    assert np.array_equal(out.end_s, second.outcomes.end_s)
    assert np.array_equal(out.cost_usd, second.outcomes.cost_usd)
    if policy == "never":
        assert first.summary.bursted_jobs == 0
    else:
        assert first.summary.bursted_jobs > 0


def test_a_gang_forecast_waits_for_a_node_and_is_held_against_the_real_start() -> None:
    """Two 2-GPU nodes, each with one GPU back at t=100 and one at t=1000. The replay follows
    nodes, so it forecasts the 2-GPU job b at 1000 s, when a node drains (pooling GPUs, it
    said 100 s). It does not foresee arrivals: x1 and x2 come at 100 and backfill one GPU on
    each node, so b really starts at 2100. No cloud pool: federator can only stay, and its
    first forecast is kept."""
    trace = (
        TraceJob("a1", 0.0, 1, 100.0),
        TraceJob("a2", 0.0, 1, 1000.0),
        TraceJob("c1", 0.0, 1, 100.0),
        TraceJob("c2", 0.0, 1, 1000.0),
        TraceJob("b", 1.0, 2, 50.0),
        TraceJob("x1", 100.0, 1, 2000.0),
        TraceJob("x2", 100.0, 1, 2000.0),
    )
    scenario = dataclasses.replace(tiny_scenario(), onprem_gpus=4, gpus_per_node=2)
    controller = CoreController("federator", DecisionPolicy(strategy=Strategy.FEDERATOR))
    result = Simulation(trace, scenario, controller).run()
    out = result.outcomes
    assert out.start_s.tolist() == [0.0, 0.0, 0.0, 0.0, 2100.0, 100.0, 100.0]
    assert out.forecast_at_s[4] == 1.0
    assert out.forecast_start_s[4] == 1000.0
    assert np.isnan(out.forecast_start_s[:4]).all(), "jobs that started at once were not asked"
    (gangs,) = wait_forecasts(out)
    assert (gangs.gpus, gangs.jobs) == ("2-4", 1)
    assert (gangs.forecast_mean_s, gangs.real_mean_s) == (999.0, 2099.0)
    assert gangs.ratio == pytest.approx(2099 / 999)


def test_the_replay_knows_the_simulated_node_size() -> None:
    """Two 4-GPU nodes: a 6-GPU job runs on one whole node and 2 GPUs of the other. Told 8-GPU
    nodes, the replay cut it into one 6-GPU pod that fits no node and forecast "never"."""
    trace = (
        TraceJob("a", 0.0, 4, 200.0),
        TraceJob("c", 0.0, 2, 1000.0),
        TraceJob("b", 1.0, 6, 50.0),
    )
    scenario = dataclasses.replace(tiny_scenario(), onprem_gpus=8, gpus_per_node=4)
    controller = CoreController("federator", DecisionPolicy(strategy=Strategy.FEDERATOR))
    out = Simulation(trace, scenario, controller).run().outcomes
    assert out.start_s.tolist() == [0.0, 0.0, 200.0]
    assert out.forecast_start_s[2] == 200.0


def test_policies_without_a_replay_forecast_nothing() -> None:
    result = run_tiny(Strategy.NEVER)
    assert np.isnan(result.outcomes.forecast_start_s).all()
    assert wait_forecasts(result.outcomes) == ()
    assert forecasts_table([result]) is None
