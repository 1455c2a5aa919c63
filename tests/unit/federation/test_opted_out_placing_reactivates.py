"""A job opted out while its placement is `placing` gets its Workload back before its record goes.

The hold may already have deactivated the Workload when the copy's create failed (a cloud
timeout; or the process died there). If the owner then labels the job `federator.io/burst:
never` (or a reloaded policy keeps its queue on-prem), the next pass drops the record; it used
to leave the Workload inactive, and the job, without a record, was never admitted nor decided
again.
"""

from __future__ import annotations

from federator.errors import ClusterUnavailable
from federator.federation.ports import CopyRequest
from federator.federation.records import Phase
from tests.unit.kube.fakes import FakeCloud, FakeOnPrem
from tests.unit.kube.test_federation_loop import Scripted, federation, offer


class CloudTimesOutOnce(FakeCloud):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.timeouts = 1

    async def create_copy(self, request: CopyRequest) -> bool:
        if self.timeouts:
            self.timeouts -= 1
            raise ClusterUnavailable(self.name, "timeout")
        return await super().create_copy(request)


async def test_an_opt_out_while_placing_reactivates_the_held_workload() -> None:
    onprem, cloud = FakeOnPrem(), CloudTimesOutOnce("cloud-a")
    job = onprem.add("j1", 8)
    fed = federation(onprem, [cloud], [offer("cloud-a")], Scripted())
    await fed.run_once(100.0)
    assert job.record is not None
    assert job.record.phase is Phase.PLACING
    assert not job.active_workload  # held, the copy not created
    job.burst_allowed = False  # the owner's label, or a reloaded policy
    report = await fed.run_once(110.0)
    assert job.record is None
    assert job.active_workload, "an inactive Workload without a record is a lost job"
    assert onprem.writes.index("release team-a/j1") < onprem.writes.index("record team-a/j1 None")
    assert any("placement dropped" in f for f in report.failures)
    view = await onprem.snapshot(120.0)
    assert [j.key for j in view.jobs] == ["team-a/j1"], "the job waits on-prem again"
    assert not cloud.created
