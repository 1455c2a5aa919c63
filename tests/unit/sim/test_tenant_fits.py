"""The pre-run checks read a tenant's allowed clusters and regions: a job too big for on-prem
whose tenant may use only pools that can never take it is refused before the run, and a queue
whose tenant may use only clusters or regions where no cloud pool is gets the warning about
queues kept on-prem."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from federator import cli, errors
from federator.core.policy import DecisionPolicy, Strategy, TenantRule
from federator.policy import parse_policy
from federator.sim import setup
from federator.sim.engine import Simulation
from federator.sim.policies import CoreController
from federator.sim.runs import RunSpec, controller_for
from federator.sim.traces import TraceJob

from .helpers import on_demand_pool, tiny_scenario

# One 8-GPU on-prem node. aws (us-east-1) has a V100 pool of at most 8 GPUs; gcp (us-central1)
# a V100 pool that takes anything; azure (westeurope) an A100 pool that takes anything.
POLICY = """\
version: 1
instance: sim-tenant-fits
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
    pools:
      - name: od
        gpu_type: V100
        gpus_per_node: 8
        capacity_type: on-demand
        max_gpus: 8
        price: {source: fixed, usd_per_gpu_hour: 3.0}
  - name: gcp
    role: cloud
    provider: gcp
    region: us-central1
    connection: {in_cluster: true}
    pools:
      - name: od
        gpu_type: V100
        gpus_per_node: 8
        capacity_type: on-demand
        max_gpus: 1000
        price: {source: fixed, usd_per_gpu_hour: 2.0}
  - name: azure
    role: cloud
    provider: azure
    region: westeurope
    connection: {in_cluster: true}
    pools:
      - name: od
        gpu_type: A100
        gpus_per_node: 8
        capacity_type: on-demand
        max_gpus: 1000
        price: {source: fixed, usd_per_gpu_hour: 4.0}
queues:
  - kind: ClusterQueue
    name: onprem
  - kind: LocalQueue
    namespace: team-a
    name: team-a
burst:
  policy: cost-model
  decision_interval: 30s
  min_wait: 0s
cost:
  default_checkpoint_interval: 30m
tenants:
  - name: alpha
    namespaces: [team-a]
TENANT_RULE
"""


def world(trace: tuple[TraceJob, ...], rule: str) -> setup.WorldSetup:
    config = parse_policy(POLICY.replace("TENANT_RULE\n", rule), "fits.yaml")
    return setup.build_world(config, trace, setup.WorldOptions(onprem_gpus=8))


def simulation(trace: tuple[TraceJob, ...], rule: str, policy: str) -> Simulation:
    built = world(trace, rule)
    value = 100.0 if policy == "oracle" else None  # the oracle's $ per job-hour of waiting
    controller = controller_for(RunSpec(policy, value), built.policy, trace, built.scenario)
    return Simulation(trace, built.scenario, controller)


def big(gpu_type: str = "") -> tuple[TraceJob, ...]:
    """A 1-GPU job, then a 16-GPU one of team-a: more than the 8-GPU on-prem node holds."""
    return (
        TraceJob("small", 0.0, 1, 600.0, queue="team-a"),
        TraceJob("big", 10.0, 16, 600.0, queue="team-a", gpu_type=gpu_type),
    )


# --- a job too big for on-prem, for its tenant's pools too ---------------------------------


@pytest.mark.parametrize(
    ("rule", "gpu_type", "why"),
    [
        (
            "    allowed_clusters: [aws]\n",
            "",
            "tenant alpha may use only aws, whose pools have at most 8 GPUs per job: "
            "aws/od has max_gpus 8",
        ),
        (
            "    allowed_regions: [us-east-1]\n",
            "",
            "tenant alpha may use only region us-east-1, whose pools have at most 8 GPUs",
        ),
        (
            "    allowed_clusters: [gcp]\n    allowed_regions: [us-east-1]\n",
            "",
            "tenant alpha may use only gcp in region us-east-1, where no cloud pool is (the "
            "pools are in aws (us-east-1), azure (westeurope), gcp (us-central1))",
        ),
        (
            "    allowed_clusters: [aws, gcp]\n",
            "A100",
            "tenant alpha may use only aws, gcp, whose pools do not offer gpu_type 'A100' "
            "(their GPU types: V100)",
        ),
    ],
)
@pytest.mark.parametrize("policy", ["always", "federator", "oracle"])
def test_a_job_its_tenants_pools_can_never_take_is_refused_before_the_run(
    rule: str, gpu_type: str, why: str, policy: str
) -> None:
    with pytest.raises(errors.UserError) as refused:
        simulation(big(gpu_type), rule, policy)
    message = str(refused.value)
    assert "job big needs 16 GPUs, more than the simulated on-prem cluster" in message
    assert why in message


def test_a_region_none_of_the_pools_offers_carry_holds_no_pool() -> None:
    """The policy file only names regions some cloud cluster is in, but a pool's offers carry
    its price quote's region, which may differ: the check reads the offers' regions."""
    pool = dataclasses.replace(on_demand_pool(), region="us-west-2")
    scenario = dataclasses.replace(
        tiny_scenario(pool),
        tenants={"team-a": "alpha"},
        tenant_rules={"alpha": TenantRule(allowed_regions=frozenset({"us-east-1"}))},
    )
    trace = (TraceJob("big", 0.0, 16, 600.0, queue="team-a"),)
    with pytest.raises(errors.UserError) as refused:
        Simulation(
            trace, scenario, CoreController("always", DecisionPolicy(strategy=Strategy.ALWAYS))
        )
    assert (
        "tenant alpha may use only region us-east-1, where no cloud pool is (the pools are in "
        "cloud (us-west-2))" in str(refused.value)
    )
    assert "may use only region us-east-1" in (setup.refused_queues(trace, scenario) or "")


def test_a_baseline_names_the_tenant_when_none_of_its_pools_is_of_the_capacity_it_uses() -> None:
    """greedy-spot bursts to spot pools only; alpha's gcp has none."""
    with pytest.raises(errors.UserError) as refused:
        simulation(big(), "    allowed_clusters: [gcp]\n", "greedy-spot")
    assert (
        "the greedy-spot policy bursts only to spot pools, and none (tenant alpha may use only "
        "gcp) offers its GPU type" in str(refused.value)
    )


@pytest.mark.parametrize(
    "rule",
    [
        "",  # no restriction: gcp and azure take it
        "    allowed_clusters: [aws, gcp]\n",
        "    allowed_regions: [us-central1]\n",
    ],
)
def test_a_job_a_pool_of_its_tenant_can_take_is_not_refused(rule: str) -> None:
    """A guard: the check refuses only what no allowed pool takes (held before as well)."""
    result = simulation(big(), rule, "always").run()
    assert result.summary.bursted_jobs >= 1


def test_the_command_refuses_it_with_the_tenants_reason_and_no_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.replace("TENANT_RULE\n", "    allowed_clusters: [aws]\n"))
    trace = tmp_path / "t.csv"
    trace.write_text(
        "job_id,submit_time_s,num_gpus,duration_s,queue\nsmall,0,1,600,team-a\n"
        "big,10,16,600,team-a\n"
    )
    args = ["simulate", "--config", str(policy), "--trace", str(trace), "--onprem-gpus", "8"]
    assert cli.main([*args, "--policy", "always"]) == 2
    err = capsys.readouterr().err
    assert "job big needs 16 GPUs" in err
    assert "tenant alpha may use only aws, whose pools have at most 8 GPUs per job" in err
    assert "Traceback" not in err


# --- the warning about queues kept on-prem -------------------------------------------------


def warning_for(tmp_path: Path, capsys: pytest.CaptureFixture[str], rule: str) -> str:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.replace("TENANT_RULE\n", rule))
    trace = tmp_path / "t.csv"
    trace.write_text(
        "job_id,submit_time_s,num_gpus,duration_s,queue\n1,0,1,10,team-a\n2,5,1,10,team-a\n"
        "3,5,1,10,onprem\n"
    )
    args = ["simulate", "--config", str(policy), "--trace", str(trace), "--policy", "never"]
    assert cli.main(args) == 0
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("rule", "scope"),
    [
        ("    allowed_clusters: [gcp]\n    allowed_regions: [westeurope]\n", "gcp in region "),
        ("    allowed_clusters: [aws, azure]\n    allowed_regions: [us-central1]\n", "aws, "),
    ],
)
def test_a_queue_whose_tenant_may_use_no_pool_at_all_is_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rule: str, scope: str
) -> None:
    err = warning_for(tmp_path, capsys, rule)
    assert "2 trace job(s) may never burst, by the policy file" in err
    assert f"queue 'team-a' (2 job(s)): tenant alpha may use only {scope}" in err
    assert "where no cloud pool is" in err
    assert "queue 'onprem'" not in err  # its tenant (default) is unrestricted


def test_a_queue_whose_tenant_may_use_some_pool_is_not_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A guard (held before as well): aws's pool, however small, is a pool."""
    err = warning_for(tmp_path, capsys, "    allowed_clusters: [aws]\n")
    assert "may never burst" not in err
