"""A preemption is counted once, however many passes its requeue's record write takes.

It used to be counted (the pool's preemption evidence, which prices spot in every later
decision and is saved, and `federator_preemptions_total`) before the REQUEUED record was
written; a write that failed left the copy preempted under its placed record, and each
following pass counted the same preemption again.
"""

from __future__ import annotations

from federator.errors import ClusterUnavailable
from federator.federation.ports import CopyState, OnPremJob
from federator.federation.records import Phase, PlacementRecord
from federator.metrics import REGISTRY
from tests.unit.kube.fakes import FakeCloud, FakeOnPrem
from tests.unit.kube.test_federation_loop import Scripted, federation, offer


class RequeueWriteFailsTwice(FakeOnPrem):
    failures = 2

    async def write_record(self, job: OnPremJob, record: PlacementRecord | None) -> OnPremJob:
        if record is not None and record.phase is Phase.REQUEUED and self.failures:
            self.failures -= 1
            raise ClusterUnavailable("onprem", "503")
        return await super().write_record(job, record)


def preemptions_metric() -> float:
    value = REGISTRY.get_sample_value("federator_preemptions_total", {"cluster": "cloud-a"})
    return value or 0.0


async def test_a_requeue_write_that_fails_does_not_count_the_preemption_again() -> None:
    onprem, cloud = RequeueWriteFailsTwice(), FakeCloud("cloud-a")
    job = onprem.add("j1", 8)
    fed = federation(onprem, [cloud], [offer("cloud-a")], Scripted())
    await fed.run_once(100.0)
    cloud.set_state(job.uid, CopyState.PREEMPTED)
    before = preemptions_metric()
    for now in (110.0, 120.0, 130.0):
        await fed.run_once(now)
    assert job.record is not None
    assert job.record.preemptions == 1
    assert fed.preemptions[("cloud-a", "spot")] == 1
    assert preemptions_metric() - before == 1
