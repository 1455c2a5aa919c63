"""The Warning Event of a re-placement names the placement once, whatever the loss.

`Moves.requeue` used to decide whether to put "<placement>: " in front of the reason by
looking for the placement in the reason's text; the step that writes the reason now says so
(`Step.reason_names_placement`). These pin the three messages an operator reads, so that a
change of wording in either place shows here instead of doubling or dropping the placement.
"""

from __future__ import annotations

from federator.federation.ports import CopyState
from tests.unit.federation.test_start_timeout_loop import (
    TIMEOUT_S,
    Telling,
    federation,
    two_pools,
)
from tests.unit.federation.test_start_timeout_planning import NOW, step_for


async def test_a_preemption_says_where_then_why() -> None:
    onprem, cloud = Telling(), two_pools()
    job = onprem.add("j1", 8)
    fed = federation(onprem, cloud)
    await fed.run_once(100.0)
    cloud.set_state(job.uid, CopyState.PREEMPTED)
    await fed.run_once(110.0)
    assert onprem.told[1:] == [
        ("Preempted", "cloud-a/spot: the copy lost its node or was disrupted; re-placing", True)
    ]


async def test_a_lost_cluster_says_where_then_why() -> None:
    onprem, cloud = Telling(), two_pools()
    onprem.add("j1", 8)
    fed = federation(onprem, cloud, default_lost_cluster_timeout_s=60.0)
    await fed.run_once(100.0)
    cloud.up, cloud.down_since = False, 110.0
    await fed.run_once(180.0)
    assert onprem.told[1:] == [
        ("ClusterLost", "cloud-a/spot: cloud-a unreachable 70s; re-placing", True)
    ]


async def test_a_start_timeout_names_the_pool_once_at_the_end() -> None:
    onprem, cloud = Telling(), two_pools()
    onprem.add("j1", 8)
    fed = federation(onprem, cloud)
    await fed.run_once(100.0)
    await fed.run_once(100.0 + TIMEOUT_S)
    assert onprem.told[1:] == [
        (
            "CloudStartTimeout",
            "no pod of the copy started within 5m on cloud-a/spot; re-placing",
            True,
        )
    ]


def test_the_step_that_writes_the_placement_into_its_reason_says_so() -> None:
    timed_out = step_for(CopyState.PENDING, NOW - 5000.0, 900.0)
    preempted = step_for(CopyState.PREEMPTED, NOW - 5000.0, 900.0)
    assert [timed_out.reason_names_placement, preempted.reason_names_placement] == [True, False]
