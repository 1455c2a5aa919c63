"""A finish or a return on-prem decided on a version of the Job that changed meanwhile is not
applied: the adapter's precondition refuses it (`Conflict`), and the next pass decides again
on what it reads then (154b09b). The fakes keep that precondition, so the loop is seen meeting
it here; before, `FakeOnPrem.finish` and `note_return` took any version.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from federator.federation.ports import CopyState, OnPremView
from federator.federation.records import Phase
from tests.unit.kube.fakes import FakeCloud, FakeOnPrem
from tests.unit.kube.test_federation_loop import Scripted, federation, offer


@dataclass
class ChangedAfterRead(FakeOnPrem):
    """Another writer changes the Jobs in `changed` just after the pass's next read."""

    changed: set[str] = field(default_factory=set)

    async def snapshot(self, now: float) -> OnPremView:
        view = await super().snapshot(now)
        for key in self.changed:
            self.jobs[key].version += 1
        self.changed.clear()
        return view


async def test_a_finish_on_a_stale_version_is_decided_again_next_pass() -> None:
    onprem, cloud = ChangedAfterRead(), FakeCloud("cloud-a")
    job = onprem.add("j1", 8)
    fed = federation(onprem, [cloud], [offer("cloud-a")], Scripted())
    await fed.run_once(100.0)
    cloud.set_state(job.uid, CopyState.SUCCEEDED)
    onprem.changed.add(job.key)
    report = await fed.run_once(110.0)
    assert any("409" in failure for failure in report.failures), report.failures
    assert job.terminal is None, "a finish on a version the Job no longer has is not applied"
    assert job.record is not None
    assert job.record.phase is Phase.PLACED
    await fed.run_once(120.0)
    assert job.terminal is not None
    assert job.terminal.succeeded
    assert job.record.phase is Phase.DONE


async def test_a_return_on_prem_on_a_stale_version_is_decided_again_next_pass() -> None:
    onprem, cloud = ChangedAfterRead(), FakeCloud("cloud-a")
    job = onprem.add("j1", 8)
    fed = federation(
        onprem, [cloud], [offer("cloud-a")], Scripted(), max_replacements=0, block_pool_for_s=0
    )
    await fed.run_once(100.0)
    cloud.set_state(job.uid, CopyState.PREEMPTED)
    await fed.run_once(110.0)
    assert job.record is not None
    assert job.record.phase is Phase.REQUEUED
    onprem.changed.add(job.key)
    report = await fed.run_once(200.0)  # out of re-placements: it goes back on-prem
    assert any("409" in failure for failure in report.failures), report.failures
    assert job.returned == "", "the note is not written on a version the Job no longer has"
    assert not job.active_workload, "nothing released"
    assert job.record.phase is Phase.REQUEUED
    await fed.run_once(210.0)
    assert job.returned == "too many re-placements"
    assert job.active_workload
    assert job.record is None
