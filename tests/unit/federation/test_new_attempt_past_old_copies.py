"""A new placement never takes the copy name of an earlier placement's surviving copy.

A Kueue job's record is dropped when it goes back on-prem, so its next burst used to restart
at attempt 1; copy names are deterministic in (name, uid, attempt), so the create met the
copy attempt 1 had left on a cluster that was lost meanwhile, adopted it, and that copy
(failed during the outage) finished the job as Failed: a job ended by a copy no live record
named. The new placement now takes the attempt after every copy the target still holds.
"""

from __future__ import annotations

from federator.federation.ports import CopyState
from federator.federation.records import copy_name
from tests.unit.kube.fakes import FakeCloud, FakeCopy, FakeOnPrem
from tests.unit.kube.test_federation_loop import Scripted, federation, offer


def leftover(cloud: FakeCloud, uid: str, attempt: int, state: CopyState) -> str:
    name = copy_name("j1", uid, attempt)
    cloud.copies[f"team-a/{name}"] = FakeCopy("spot", uid, attempt, "team-a", name, state, False)
    return f"team-a/{name}"


async def test_a_surviving_copy_of_an_earlier_placement_is_not_adopted() -> None:
    onprem, cloud = FakeOnPrem(), FakeCloud("cloud-a")
    job = onprem.add("j1", 8)  # returned on-prem: no record, waiting again
    old = leftover(cloud, job.uid, 1, CopyState.FAILED)
    fed = federation(onprem, [cloud], [offer("cloud-a")], Scripted())
    await fed.run_once(100.0)
    assert job.record is not None
    assert job.record.attempt == 2
    assert cloud.created == [f"team-a/{copy_name('j1', job.uid, 2)}"]
    assert old in cloud.deleted, "the old copy is collected as stale"
    await fed.run_once(110.0)
    assert job.terminal is None, "the old copy's failure must not finish the job"


async def test_the_new_attempt_is_past_every_copy_the_target_still_holds() -> None:
    onprem, cloud = FakeOnPrem(), FakeCloud("cloud-a")
    job = onprem.add("j1", 8)
    leftover(cloud, job.uid, 1, CopyState.SUCCEEDED)
    leftover(cloud, job.uid, 3, CopyState.RUNNING)
    fed = federation(onprem, [cloud], [offer("cloud-a")], Scripted())
    await fed.run_once(100.0)
    assert job.record is not None
    assert job.record.attempt == 4
    assert job.terminal is None
