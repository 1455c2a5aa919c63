"""What `federator_placements_total{outcome="replaced"}` counts, as docs/operations.md says it:
one per placement of a job again after its copy was lost, on the cluster the job is placed
on NOW (not the one that lost the copy: that one counts the loss, here as a preemption), and
that placement counts as `placed` too. The dashboard's "Placements and preemptions" panel
shows both per cluster, so which cluster a figure lands on is what an operator reads."""

from __future__ import annotations

from federator import metrics
from federator.federation.ports import CopyState
from federator.federation.records import Phase
from tests.unit.kube.fakes import FakeCloud, FakeOnPrem
from tests.unit.kube.test_federation_loop import Scripted, federation, offer


def counted(metric: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(metric, labels) or 0.0


def figures() -> dict[str, float]:
    return {
        f"{cluster} {outcome}": counted(
            "federator_placements_total", cluster=cluster, outcome=outcome
        )
        for cluster in ("cloud-a", "cloud-b")
        for outcome in ("placed", "replaced")
    } | {
        f"{cluster} preempted": counted("federator_preemptions_total", cluster=cluster)
        for cluster in ("cloud-a", "cloud-b")
    }


async def test_a_re_placement_counts_on_the_cluster_it_goes_to_and_as_placed_too() -> None:
    onprem = FakeOnPrem()
    cloud_a, cloud_b = FakeCloud("cloud-a"), FakeCloud("cloud-b")
    job = onprem.add("j1", 8)
    offers = [offer("cloud-b", price=1.0), offer("cloud-a", price=2.0)]
    fed = federation(onprem, [cloud_a, cloud_b], offers, Scripted())
    await fed.run_once(100.0)
    assert job.record is not None
    assert job.record.cluster == "cloud-b"
    before = figures()
    cloud_b.set_state(job.uid, CopyState.PREEMPTED)
    await fed.run_once(110.0)
    await fed.run_once(120.0)  # past the 5 s backoff; cloud-b's pool is blocked
    assert (job.record.cluster, job.record.attempt, job.record.phase) == (
        "cloud-a",
        2,
        Phase.PLACED,
    )
    after = figures()
    moved = {name: after[name] - before[name] for name in after if after[name] != before[name]}
    assert moved == {"cloud-b preempted": 1.0, "cloud-a placed": 1.0, "cloud-a replaced": 1.0}
