"""A copy deleted because it never started has its own `federator_placements_total` outcome,
`start_timeout`, on the cluster that never started it; a preemption is counted as before.

Before, the only trace in that counter was the re-placement's `replaced`, exactly as after a
spot preemption, so an operator could not tell "the cloud never started my job" from "spot
took it back"."""

from __future__ import annotations

from federator import metrics
from federator.federation.ports import CopyState
from tests.unit.federation.test_start_timeout_loop import TIMEOUT_S, federation, two_pools
from tests.unit.kube.fakes import FakeOnPrem


def placements(outcome: str) -> float:
    labels = {"cluster": "cloud-a", "outcome": outcome}
    return metrics.REGISTRY.get_sample_value("federator_placements_total", labels) or 0.0


def preemptions() -> float:
    labels = {"cluster": "cloud-a"}
    return metrics.REGISTRY.get_sample_value("federator_preemptions_total", labels) or 0.0


def test_start_timeout_is_an_outcome_created_at_zero_for_every_cloud() -> None:
    metrics.initialise(cloud_clusters=["cloud-st"])
    labels = {"cluster": "cloud-st", "outcome": "start_timeout"}
    assert metrics.REGISTRY.get_sample_value("federator_placements_total", labels) == 0


async def test_a_copy_that_never_started_counts_as_start_timeout_not_as_a_preemption() -> None:
    onprem, cloud = FakeOnPrem(), two_pools()
    onprem.add("j1", 8)
    fed = federation(onprem, cloud)
    timed_out, preempted = placements("start_timeout"), preemptions()
    await fed.run_once(100.0)
    assert placements("start_timeout") == timed_out, "nothing timed out yet"
    await fed.run_once(100.0 + TIMEOUT_S)
    assert placements("start_timeout") == timed_out + 1
    assert preemptions() == preempted
    await fed.run_once(100.0 + TIMEOUT_S + 10)  # re-placed on the other pool
    assert placements("start_timeout") == timed_out + 1, "the re-placement is no second timeout"


async def test_a_preemption_is_counted_as_before_and_is_no_start_timeout() -> None:
    onprem, cloud = FakeOnPrem(), two_pools()
    job = onprem.add("j1", 8)
    fed = federation(onprem, cloud)
    timed_out, preempted, replaced = (
        placements("start_timeout"),
        preemptions(),
        placements("replaced"),
    )
    await fed.run_once(100.0)
    cloud.set_state(job.uid, CopyState.PREEMPTED)
    await fed.run_once(110.0)
    await fed.run_once(120.0)  # past the 5 s backoff: re-placed
    assert preemptions() == preempted + 1
    assert placements("replaced") == replaced + 1
    assert placements("start_timeout") == timed_out
