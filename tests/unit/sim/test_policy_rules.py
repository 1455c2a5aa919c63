"""The simulated world keeps the policy file's rules the way the daemon does: which queues may
burst, the caps across rounds, the data path's prices, pools' preemption priors, and a job that
could never run anywhere is refused before any run."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest

from federator import cli, errors
from federator.core.models import CapacityType
from federator.core.policy import Budgets, Caps, DecisionPolicy, Strategy
from federator.policy import parse_policy
from federator.sim import setup
from federator.sim.cloud import AvailabilityTrace
from federator.sim.engine import Simulation
from federator.sim.policies import CoreController, pool_offer
from federator.sim.results import RunResult
from federator.sim.runs import RunSpec, controller_for
from federator.sim.traces import TraceJob
from federator.sim.world import World

from .helpers import on_demand_pool, spot_pool, tiny_scenario

# One 8-GPU on-prem node, one cloud cluster with a spot and an on-demand V100 pool.
POLICY = """\
version: 1
instance: sim-test
clusters:
  - name: onprem
    role: onprem
    provider: onprem
    region: dc1
    egress_usd_per_gb: 0.05
    connection: {in_cluster: true}
  - name: aws
    role: cloud
    provider: aws
    region: us-east-1
    connection: {in_cluster: true}
    startup_latency: 100s
    egress_usd_per_gb: 0.10
    transfer_bandwidth_per_second: 100MB
    pools:
      - name: spot
        gpu_type: V100
        gpus_per_node: 8
        capacity_type: spot
        max_gpus: 1000
        preemption_rate_per_hour: 0.0
        price: {source: fixed, usd_per_gpu_hour: 1.0}
      - name: od
        gpu_type: V100
        gpus_per_node: 8
        capacity_type: on-demand
        max_gpus: 1000
        price: {source: fixed, usd_per_gpu_hour: 3.6}
queues:
  - kind: ClusterQueue
    name: onprem
burst:
  policy: cost-model
  decision_interval: 30s
  min_wait: 0s
cost:
  default_checkpoint_interval: 30m
"""

# The on-prem node is busy for 10 h with `a`; the others arrive behind it.
BEHIND_A_LONG_JOB = (
    TraceJob("a", 0.0, 8, 36000.0),
    TraceJob("b", 0.0, 8, 3600.0),
    TraceJob("c", 60.0, 8, 3600.0),
    TraceJob("d", 120.0, 8, 3600.0),
)


def world(
    trace: tuple[TraceJob, ...], edit: tuple[str, str] = ("", ""), **options: object
) -> setup.WorldSetup:
    old, new = edit
    document = POLICY.replace(old, new, 1) if old else POLICY
    config = parse_policy(document, "test.yaml")
    return setup.build_world(config, trace, setup.WorldOptions(onprem_gpus=8, **options))  # type: ignore[arg-type]


def run(built: setup.WorldSetup, trace: tuple[TraceJob, ...], policy: str) -> RunResult:
    spec = RunSpec(policy, None)
    controller = controller_for(spec, built.policy, trace, built.scenario)
    return Simulation(trace, built.scenario, controller).run()


# --- which queues may burst ----------------------------------------------------------------


QUEUED = tuple(dataclasses.replace(job, queue="onprem") for job in BEHIND_A_LONG_JOB)


@pytest.mark.parametrize("policy", ["always", "greedy-spot", "federator"])
def test_a_queue_that_never_bursts_keeps_its_jobs_on_prem(policy: str) -> None:
    built = world(
        QUEUED, ("    name: onprem\nburst:", "    name: onprem\n    burst: never\nburst:")
    )
    result = run(built, QUEUED, policy)
    assert result.summary.bursted_jobs == 0
    assert result.summary.cloud_cost_usd == 0.0
    assert built.scenario.burst_refused == {"onprem": "ClusterQueue onprem never bursts"}


def test_burst_rules_and_opt_in_queues_apply_by_the_traces_queue_column() -> None:
    trace = (
        TraceJob("a", 0.0, 8, 36000.0, queue="team-a"),
        TraceJob("b", 0.0, 8, 3600.0, queue="team-a"),
        TraceJob("c", 0.0, 8, 3600.0, queue="team-b"),
        TraceJob("d", 0.0, 8, 3600.0, queue="research"),
        TraceJob("e", 0.0, 8, 3600.0, queue="other"),
    )
    queues = (
        "  - kind: ClusterQueue\n    name: onprem\n"
        "  - kind: LocalQueue\n    namespace: team-a\n    name: team-a\n"
        "  - kind: LocalQueue\n    namespace: team-b\n    name: team-b\n    burst: opt-in\n"
        "  - kind: LocalQueue\n    namespace: lab\n    name: research\n"
        "burst_rules:\n  - burst: deny\n    queues: [research]\n    reason: GDPR\n"
    )
    built = world(trace, ("  - kind: ClusterQueue\n    name: onprem\n", queues))
    refused = built.scenario.burst_refused
    assert set(refused) == {"team-b", "research"}
    assert "opt-in" in refused["team-b"]
    assert refused["research"].startswith("burst_rules[0] (GDPR)")
    result = run(built, trace, "always")
    bursted = {job.job_id for job, out in zip(trace, result.outcomes.bursted, strict=True) if out}
    assert bursted == {"b", "e"}  # team-a's LocalQueue and an unlisted queue (the ClusterQueue)


def test_a_job_of_a_queue_that_may_not_burst_is_asked_with_burst_allowed_false() -> None:
    built = world(
        QUEUED, ("    name: onprem\nburst:", "    name: onprem\n    burst: never\nburst:")
    )
    simulated = World(QUEUED, built.scenario)
    simulated.estimate_at_submission(1)
    assert simulated.pending_job(1).burst_allowed is False


def test_refused_queues_are_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        POLICY.replace("    name: onprem\nburst:", "    name: onprem\n    burst: never\nburst:")
    )
    trace = tmp_path / "t.csv"
    trace.write_text("job_id,submit_time_s,num_gpus,duration_s,queue\n1,0,1,10,onprem\n")
    args = ["simulate", "--config", str(policy), "--trace", str(trace), "--policy", "never"]
    assert cli.main(args) == 0
    err = capsys.readouterr().err
    assert "1 trace job(s) may never burst" in err
    assert "queue 'onprem' (1 job(s)): ClusterQueue onprem never bursts" in err


# --- caps hold across rounds ---------------------------------------------------------------


def cloud_intervals(result: RunResult) -> list[tuple[float, float]]:
    out = result.outcomes
    return sorted(
        (float(start), float(end))
        for start, end, bursted in zip(out.start_s, out.end_s, out.bursted, strict=True)
        if bursted
    )


@pytest.mark.parametrize("cap", ["max_bursted_jobs: 1", "max_bursted_gpus: 8"])
def test_a_clusters_cap_holds_across_rounds(cap: str) -> None:
    edit = ("    startup_latency: 100s\n", f"    startup_latency: 100s\n    {cap}\n")
    built = world(BEHIND_A_LONG_JOB, edit)
    intervals = cloud_intervals(run(built, BEHIND_A_LONG_JOB, "always"))
    assert len(intervals) == 3
    for (_, end), (start, _) in itertools.pairwise(intervals):
        assert start >= end, f"two cloud jobs at once under {cap}: {intervals}"


# --- freed cloud room wakes the jobs waiting for it ----------------------------------------


@pytest.mark.parametrize("period_s", [0.0, 30.0])
def test_a_job_waiting_for_cloud_room_is_asked_again_when_room_frees(period_s: float) -> None:
    pool = dataclasses.replace(on_demand_pool(startup_s=100.0), max_gpus=8)
    trace = (
        TraceJob("a", 0.0, 8, 36000.0),
        TraceJob("b", 0.0, 8, 2000.0),
        TraceJob("c", 0.0, 8, 600.0),
    )
    policy = DecisionPolicy(strategy=Strategy.ALWAYS)
    scenario = tiny_scenario(pool, period_s=period_s)
    result = Simulation(trace, scenario, CoreController("always", policy)).run()
    out = result.outcomes
    b_end, c_start = float(out.end_s[1]), float(out.start_s[2])
    assert b_end == pytest.approx(2100.0)
    # Asked again when b's GPUs come back (at most one round later), not at its doubled
    # revisit (3840 s); then 100 s of startup.
    assert b_end + 100.0 <= c_start <= b_end + period_s + 100.0


def test_a_job_waiting_for_a_replayed_trace_is_asked_again_when_instances_return() -> None:
    alive = (1,) + (0,) * 39 + (1,) * 60  # 100-s ticks: gone from 100 s to 4000 s
    pool = dataclasses.replace(
        spot_pool(startup_s=0.0), availability=AvailabilityTrace(tick_s=100.0, alive=alive)
    )
    trace = (TraceJob("a", 0.0, 8, 36000.0), TraceJob("b", 150.0, 8, 600.0))
    policy = DecisionPolicy(strategy=Strategy.GREEDY_SPOT)
    result = Simulation(trace, tiny_scenario(pool), CoreController("greedy-spot", policy)).run()
    assert float(result.outcomes.start_s[1]) == pytest.approx(4000.0)  # not 5 h later


# --- a job that fits nowhere ---------------------------------------------------------------


BIG = (TraceJob("small", 0.0, 4, 1000.0), TraceJob("big", 10.0, 16, 600.0))


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({}, "cloud/od has max_gpus 8"),
        (
            {"caps": Caps(cluster_max_bursted_gpus={"cloud": 8})},
            "in cluster cloud with max_bursted_gpus 8",
        ),
        ({"caps": Caps(max_bursted_gpus=12)}, "cloud/od is under burst.max_bursted_gpus 12"),
        (
            {"caps": Caps(cluster_max_bursted_jobs={"cloud": 0})},
            "in cluster cloud with max_bursted_jobs 0",
        ),
        ({"burst_refused": {"default": "why"}}, "its queue 'default' may not burst (why)"),
    ],
)
def test_a_job_that_fits_no_pool_is_refused_before_the_run(
    changes: dict[str, object], why: str
) -> None:
    pool = on_demand_pool() if changes else dataclasses.replace(on_demand_pool(), max_gpus=8)
    scenario = dataclasses.replace(tiny_scenario(pool), **changes)  # type: ignore[arg-type]
    policy = DecisionPolicy(strategy=Strategy.ALWAYS)
    with pytest.raises(errors.UserError) as refused:
        Simulation(BIG, scenario, CoreController("always", policy))
    message = str(refused.value)
    assert "job big needs 16 GPUs" in message
    assert why in message


@pytest.mark.parametrize("strategy", [Strategy.ALWAYS, Strategy.FEDERATOR])
def test_a_job_whose_every_cloud_option_a_budget_refuses_for_ever_is_a_user_error(
    strategy: Strategy,
) -> None:
    """The 16-GPU job costs about $5 on the only pool that fits it, over a $1 daily budget: no
    day ever lets it out, and it never fits on-prem (its revisits used to double until the
    clock overflowed: OverflowError)."""
    policy = DecisionPolicy(
        strategy=strategy,
        value_of_time_usd_per_gpu_hour=100.0,
        budgets=Budgets(max_usd_per_day=1.0),
    )
    simulation = Simulation(BIG, tiny_scenario(on_demand_pool()), CoreController("x", policy))
    with pytest.raises(errors.UserError, match=r"job\(s\) big can never run"):
        simulation.run()


def test_a_job_too_big_for_every_replayed_spot_instance_is_refused() -> None:
    pool = dataclasses.replace(
        spot_pool(), availability=AvailabilityTrace(tick_s=60.0, alive=(1, 2, 1))
    )
    trace = (TraceJob("small", 0.0, 4, 1000.0), TraceJob("big", 10.0, 24, 600.0))
    policy = DecisionPolicy(strategy=Strategy.GREEDY_SPOT)
    with pytest.raises(errors.UserError, match="never has more than 2 instance"):
        Simulation(trace, tiny_scenario(pool), CoreController("greedy-spot", policy))


def test_a_baseline_is_refused_when_only_pools_it_never_uses_could_take_the_job() -> None:
    scenario = tiny_scenario(dataclasses.replace(on_demand_pool(), max_gpus=8), spot_pool())
    policy = DecisionPolicy(strategy=Strategy.ALWAYS)
    with pytest.raises(errors.UserError, match="cloud/od has max_gpus 8"):
        Simulation(BIG, scenario, CoreController("always", policy))
    Simulation(BIG, scenario, CoreController("federator", DecisionPolicy()))  # spot takes it


def test_a_job_bigger_than_every_pool_is_a_user_error_from_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.replace("max_gpus: 1000", "max_gpus: 8"))
    trace = tmp_path / "t.csv"
    trace.write_text("job_id,submit_time_s,num_gpus,duration_s\na,0,4,1000\nbig,10,16,600\n")
    args = ["simulate", "--config", str(policy), "--trace", str(trace), "--onprem-gpus", "8"]
    assert cli.main([*args, "--policy", "always"]) == 2
    err = capsys.readouterr().err
    assert "job big needs 16 GPUs" in err
    assert "aws/od has max_gpus 8" in err


# --- prices and priors as the daemon's offers ----------------------------------------------


def test_data_copied_in_is_charged_at_the_onprem_clusters_egress_price() -> None:
    trace = (TraceJob("a", 0.0, 8, 36000.0), TraceJob("b", 0.0, 8, 1000.0))
    built = world(trace, dataset_gb_per_job=20.0)
    assert {pool.ingress_usd_per_gb for pool in built.scenario.pools} == {0.05}
    result = run(built, trace, "always")
    assert result.summary.cloud_data_usd == pytest.approx(20 * 0.05)


def test_an_on_demand_pools_configured_preemption_rate_is_kept_and_simulated() -> None:
    built = world(
        BEHIND_A_LONG_JOB,
        (
            "capacity_type: on-demand\n",
            "capacity_type: on-demand\n        preemption_rate_per_hour: 2.0\n",
        ),
    )
    rates = {pool.pool: pool.preemption_rate_per_hour for pool in built.scenario.pools}
    assert rates == {"spot": 0.0, "od": 2.0}
    result = run(built, BEHIND_A_LONG_JOB, "always")
    assert result.summary.preemptions > 0


def test_an_on_demand_pool_without_a_rate_is_never_preempted() -> None:  # a guard: held before
    built = world(BEHIND_A_LONG_JOB)
    od = next(pool for pool in built.scenario.pools if pool.capacity_type is CapacityType.ON_DEMAND)
    assert od.preemption_rate_per_hour == 0.0


def test_a_replayed_trace_offers_no_more_gpus_than_it_ever_has_instances() -> None:
    pool = dataclasses.replace(
        spot_pool(), availability=AvailabilityTrace(tick_s=60.0, alive=(1, 2, 0))
    )
    simulated = World((TraceJob("a", 0.0, 1, 10.0),), tiny_scenario(pool))
    assert pool_offer(pool, simulated, 0.0).free_gpus == 16  # 2 instances of 8 GPUs
    assert pool_offer(pool, simulated, 130.0).free_gpus == 0  # none alive now
