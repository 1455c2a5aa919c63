"""A job short of cloud room is woken only by room freed in a pool its tenant may use: room
freed in a cloud its tenant may not use asks it for nothing, and room freed in one it may use
asks it at once, even while the other cloud had room all along."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest

from federator.core.policy import Caps, TenantRule
from federator.sim.cloud import CloudPool
from federator.sim.controllers import Order
from federator.sim.engine import Simulation
from federator.sim.scenarios import Scenario
from federator.sim.traces import TraceJob
from federator.sim.world import World

from .helpers import ScriptedController, on_demand_pool, tiny_scenario

AWS = dataclasses.replace(
    on_demand_pool(startup_s=100.0), cluster="aws", region="us-east-1", max_gpus=8
)
GCP = dataclasses.replace(
    on_demand_pool(startup_s=100.0), cluster="gcp", region="us-central1", max_gpus=8
)
ROOMY_GCP = dataclasses.replace(GCP, max_gpus=1000)

# "a" fills the one on-prem node for 10 h. "b" bursts to aws until 2,100 s (startup 100 s),
# "g" to gcp until 1,100 s; "c" is of team-a, whose tenant alpha may use only aws.
TRACE = (
    TraceJob("a", 0.0, 8, 36_000.0),
    TraceJob("b", 0.0, 8, 2000.0),
    TraceJob("g", 0.0, 8, 1000.0),
    TraceJob("c", 0.0, 8, 600.0, queue="team-a"),
)
B, G, C = 1, 2, 3

ONLY_AWS = {
    "clusters": TenantRule(allowed_clusters=frozenset({"aws"})),
    "regions": TenantRule(allowed_regions=frozenset({"us-east-1"})),
}


class AsksAboutC(ScriptedController):
    """Bursts b to aws and g to the gcp pool; leaves c queued (its own revisit at 10,000 s) until
    2,000 s, then bursts it to aws."""

    def __init__(self, gcp: CloudPool, aws: CloudPool = AWS) -> None:
        self.aws, self.gcp = aws, gcp
        self.asked_about_c: list[float] = []

    def decide(self, world: World, now: float, due: Sequence[int]) -> list[Order]:
        orders = []
        for job in due:
            if job == B:
                orders.append(Order(job, pool=self.aws))
            elif job == G:
                orders.append(Order(job, pool=self.gcp))
            elif job == C:
                self.asked_about_c.append(now)
                if now < 2000.0:
                    orders.append(Order(job, revisit_at=10_000.0))
                else:
                    orders.append(Order(job, pool=self.aws))
            else:
                orders.append(Order(job))
        return orders


def scenario(gcp: CloudPool, rule: TenantRule | None, period_s: float, **extra: object) -> Scenario:
    rules = {"alpha": rule} if rule is not None else {}
    return dataclasses.replace(
        tiny_scenario(AWS, gcp, period_s=period_s),
        tenants={"team-a": "alpha"},
        tenant_rules=rules,
        **extra,
    )


def asked_about_c(
    scenario: Scenario, gcp: CloudPool, aws: CloudPool = AWS
) -> tuple[list[float], float]:
    controller = AsksAboutC(gcp, aws)
    result = Simulation(TRACE, scenario, controller).run()
    return controller.asked_about_c, float(result.outcomes.start_s[C])


@pytest.mark.parametrize("period_s", [0.0, 30.0])
@pytest.mark.parametrize("rule", sorted(ONLY_AWS))
def test_room_freed_in_a_cloud_its_tenant_may_not_use_does_not_wake_a_job(
    rule: str, period_s: float
) -> None:
    # Both clouds full at 0 s; gcp frees room at 1,100 s, aws at 2,100 s.
    asked, started = asked_about_c(scenario(GCP, ONLY_AWS[rule], period_s), GCP)
    assert asked[0] == 0.0
    assert len(asked) == 2  # not asked at 1,100 s for room it may not use
    assert 2100.0 <= asked[1] <= 2100.0 + period_s  # asked when aws frees room
    assert started == pytest.approx(asked[1] + AWS.startup_latency_s)


@pytest.mark.parametrize("period_s", [0.0, 30.0])
@pytest.mark.parametrize("rule", sorted(ONLY_AWS))
def test_room_freed_in_its_tenants_cloud_wakes_a_job_while_another_cloud_has_room(
    rule: str, period_s: float
) -> None:
    # gcp has room all along (g runs there); c's tenant may use only aws, full until 2,100 s.
    asked, _ = asked_about_c(scenario(ROOMY_GCP, ONLY_AWS[rule], period_s), ROOMY_GCP)
    assert asked[0] == 0.0
    assert len(asked) == 2
    assert 2100.0 <= asked[1] <= 2100.0 + period_s  # not only at its revisit, 10,000 s


@pytest.mark.parametrize("period_s", [0.0, 30.0])
def test_a_job_its_tenant_lets_use_every_cloud_is_woken_by_room_freed_in_either(
    period_s: float,
) -> None:
    asked, _ = asked_about_c(scenario(GCP, None, period_s), GCP)
    assert asked[0] == 0.0
    assert 1100.0 <= asked[1] <= 1100.0 + period_s  # gcp's room wakes it as before


def test_room_a_shared_cap_frees_in_its_tenants_cloud_wakes_a_job() -> None:
    # aws could take c by its own max_gpus, but the clouds together may run 2 jobs: g's end on
    # gcp at 1,100 s frees room in aws under that cap.
    roomy_aws = dataclasses.replace(AWS, max_gpus=16)
    world = dataclasses.replace(
        scenario(GCP, ONLY_AWS["clusters"], 0.0),
        pools=(roomy_aws, GCP),
        caps=Caps(max_bursted_jobs=2),
    )
    asked, _ = asked_about_c(world, GCP, roomy_aws)
    assert asked[:2] == [0.0, 1100.0]
