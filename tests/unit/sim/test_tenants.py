"""The simulator applies the policy file's tenants as the daemon does: each job gets the tenant
of the namespace its trace queue maps to, offers carry their cluster's region, and a tenant's
allowed clusters, allowed regions and monthly budget hold for every policy."""

from __future__ import annotations

import pytest

from federator.policy import parse_policy
from federator.sim import setup
from federator.sim.engine import Simulation
from federator.sim.results import RunResult
from federator.sim.runs import RunSpec, controller_for
from federator.sim.traces import TraceJob
from federator.sim.world import World, calendar_month

# One 8-GPU on-prem node; two cloud clusters, each with one on-demand V100 pool: gcp (in
# us-central1) is the cheaper, aws (us-east-1) the dearer.
POLICY = """\
version: 1
instance: sim-tenants
clusters:
  - name: onprem
    role: onprem
    provider: onprem
    region: dc1
    connection: {in_cluster: true}
  - name: aws
    role: cloud
    provider: aws
    region: us-east-1
    connection: {in_cluster: true}
    startup_latency: 100s
    pools:
      - name: od
        gpu_type: V100
        gpus_per_node: 8
        capacity_type: on-demand
        max_gpus: 1000
        price: {source: fixed, usd_per_gpu_hour: 3.0}
  - name: gcp
    role: cloud
    provider: gcp
    region: us-central1
    connection: {in_cluster: true}
    startup_latency: 100s
    pools:
      - name: od
        gpu_type: V100
        gpus_per_node: 8
        capacity_type: on-demand
        max_gpus: 1000
        price: {source: fixed, usd_per_gpu_hour: 2.0}
queues:
  - kind: ClusterQueue
    name: onprem
  - kind: LocalQueue
    namespace: team-a
    name: team-a
  - kind: LocalQueue
    namespace: lab
    name: research
burst:
  policy: cost-model
  decision_interval: 30s
  min_wait: 0s
cost:
  default_checkpoint_interval: 30m
  value_of_waiting_usd_per_gpu_hour: 100
tenants:
  - name: alpha
    namespaces: [team-a]
TENANT_RULE
  - name: beta
    namespaces: [lab]
"""

HOUR = 3600.0


def world(trace: tuple[TraceJob, ...], rule: str) -> setup.WorldSetup:
    config = parse_policy(POLICY.replace("TENANT_RULE\n", rule), "tenants.yaml")
    return setup.build_world(config, trace, setup.WorldOptions(onprem_gpus=8))


def run(built: setup.WorldSetup, trace: tuple[TraceJob, ...], policy: str) -> RunResult:
    value = 100.0 if policy == "oracle" else None  # the oracle's $ per job-hour of waiting
    controller = controller_for(RunSpec(policy, value), built.policy, trace, built.scenario)
    return Simulation(trace, built.scenario, controller).run()


def bursted_to(result: RunResult, built: setup.WorldSetup) -> list[str]:
    """Where each job ran: the cloud cluster it bursted to, or "onprem"."""
    pools = built.scenario.pools
    outcomes = result.outcomes
    return [
        pools[int(outcomes.pool[index])].cluster if outcomes.bursted[index] else "onprem"
        for index in range(len(outcomes.bursted))
    ]


def behind_a_long_job(*queues: str, every_s: float = 60.0) -> tuple[TraceJob, ...]:
    """The on-prem node is busy for 100 h; one hour-long 8-GPU job per queue arrives behind."""
    waiting = (
        TraceJob(f"j{index}", 10.0 + index * every_s, 8, HOUR, queue=queue)
        for index, queue in enumerate(queues)
    )
    return (TraceJob("long", 0.0, 8, 100 * HOUR), *waiting)


# --- how a trace queue gets its tenant ---------------------------------------------------


def test_a_trace_queue_gets_the_tenant_of_the_namespace_it_maps_to() -> None:
    """team-a is a LocalQueue of namespace team-a (alpha's); research one of namespace lab
    (beta's); a queue no tenant owns is its own namespace's, as the daemon names it."""
    trace = behind_a_long_job("team-a", "research", "other")
    built = world(trace, "")
    assert built.scenario.tenants == {
        "default": "default",
        "team-a": "alpha",
        "research": "beta",
        "other": "other",
    }
    jobs = World(trace, built.scenario)
    for index in range(len(trace)):
        jobs.estimate_at_submission(index)
    assert [jobs.pending_job(index).tenant for index in range(4)] == [
        "default",
        "alpha",
        "beta",
        "other",
    ]


def test_an_offer_carries_its_clusters_region() -> None:
    built = world(behind_a_long_job("team-a"), "")
    assert {pool.cluster: pool.region for pool in built.scenario.pools} == {
        "aws": "us-east-1",
        "gcp": "us-central1",
    }


# --- where a tenant may burst ------------------------------------------------------------

POLICIES = ["always", "federator", "oracle"]


@pytest.mark.parametrize("policy", POLICIES)
def test_a_tenant_allowed_one_cluster_bursts_only_there(policy: str) -> None:
    """alpha may use aws only: its job goes there though gcp is cheaper; the others go to gcp."""
    trace = behind_a_long_job("team-a", "research", "other")
    built = world(trace, "    allowed_clusters: [aws]\n")
    assert bursted_to(run(built, trace, policy), built) == ["onprem", "aws", "gcp", "gcp"]


@pytest.mark.parametrize("policy", POLICIES)
def test_a_tenant_allowed_one_region_bursts_only_there(policy: str) -> None:
    """alpha may use us-east-1 only (aws's region, as its offers say)."""
    trace = behind_a_long_job("team-a", "research")
    built = world(trace, "    allowed_regions: [us-east-1]\n")
    assert bursted_to(run(built, trace, policy), built) == ["onprem", "aws", "gcp"]


# --- a tenant's monthly budget -----------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
def test_a_tenant_stops_bursting_at_its_monthly_budget(policy: str) -> None:
    """alpha may spend $40 a month: two gcp jobs ($16.58 each: startup, the hour, checkpoint
    writes), not a third; beta, no budget, bursts every job. alpha's last two jobs wait for
    the on-prem node."""
    trace = behind_a_long_job("team-a", "team-a", "research", "team-a", "team-a", "research")
    built = world(trace, "    budget_usd_per_month: 40\n")
    result = run(built, trace, policy)
    where = bursted_to(result, built)
    assert where == ["onprem", "gcp", "gcp", "gcp", "onprem", "onprem", "gcp"]
    alpha = [index for index, job in enumerate(trace) if job.queue == "team-a"]
    alpha_usd = sum(float(result.outcomes.cost_usd[index]) for index in alpha)
    assert 40.0 - 16.58 < alpha_usd <= 40.0


def test_a_monthly_budget_starts_again_in_the_next_calendar_month() -> None:
    """Time 0 is 1970-01-01 00:00 UTC, as the day budget reads it: alpha's $20 pays for one
    job a month ($16.58). January's is spent on January 31st; from February 1st one more of
    alpha's waiting jobs bursts, and no third."""
    january_31, february_1 = 30 * 24 * HOUR, 31 * 24 * HOUR
    trace = (
        TraceJob("long", 0.0, 8, 800 * HOUR),
        TraceJob("jan", january_31, 8, HOUR, queue="team-a"),
        TraceJob("jan-late", january_31 + 600.0, 8, HOUR, queue="team-a"),
        TraceJob("feb", february_1 + 600.0, 8, HOUR, queue="team-a"),
    )
    built = world(trace, "    budget_usd_per_month: 20\n")
    outcomes = run(built, trace, "always").outcomes
    bursted = [index for index in range(len(trace)) if outcomes.bursted[index]]
    in_january = [trace[index].job_id for index in bursted if outcomes.start_s[index] < february_1]
    assert in_january == ["jan"]
    assert len(bursted) == 2  # one in February


def test_the_months_spend_per_tenant_is_what_the_core_is_told() -> None:
    trace = behind_a_long_job("team-a", "research")
    built = world(trace, "")
    jobs = World(trace, built.scenario)
    jobs.book_cloud_cost(1, 10.0, 100.0)
    jobs.book_cloud_cost(2, 4.0, 200.0)
    jobs.book_cloud_cost(1, 1.0, 31 * 24 * HOUR)  # February
    assert dict(jobs.spend(300.0).tenant_month_usd) == {"alpha": 10.0, "beta": 4.0}
    assert dict(jobs.spend(31 * 24 * HOUR + 5.0).tenant_month_usd) == {"alpha": 1.0}
    assert calendar_month(31 * 24 * HOUR - 1.0) == 0  # January 31st, 23:59:59 UTC
    assert calendar_month(31 * 24 * HOUR) == 1
