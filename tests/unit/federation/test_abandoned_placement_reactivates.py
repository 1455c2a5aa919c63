"""A placement abandoned because Kueue reserved quota leaves the Workload active.

Kueue's scheduler writes an admission without a resourceVersion precondition, so it can land
just after our deactivation: the hold's verify then sees the Workload reserved and answers "may
start on-prem". Dropping the record there left the Workload inactive (Kueue evicts an inactive
Workload it reserved), and a Kueue job without a record and with an inactive Workload is
neither admitted on-prem nor decided again: a lost job. The same holds when a pass sees the
reservation on a placed job and withdraws it. Invariant: a Kueue job left without a record has
an active Workload.
"""

from __future__ import annotations

from federator.federation.ports import OnPremJob
from federator.federation.records import Phase
from tests.unit.kube.fakes import FakeCloud, FakeOnPrem
from tests.unit.kube.test_federation_loop import Scripted, federation, offer


class KueueAdmitsRightAfterOurDeactivation(FakeOnPrem):
    async def hold_on_prem(self, job: OnPremJob) -> bool:
        fake = self.jobs[job.key]
        fake.active_workload = False  # our deactivation landed...
        fake.admitted = True  # ...then Kueue's admission, computed before it
        self.writes.append(f"hold {job.key}")
        return False  # the verify sees the reservation


async def test_an_abandoned_placement_reactivates_the_workload_before_dropping_the_record() -> None:
    onprem, cloud = KueueAdmitsRightAfterOurDeactivation(), FakeCloud("cloud-a")
    job = onprem.add("j1", 8)
    fed = federation(onprem, [cloud], [offer("cloud-a")], Scripted())
    report = await fed.run_once(100.0)
    assert any(a.startswith("abandon team-a/j1") for a in report.actions)
    assert job.record is None
    assert job.active_workload, "an inactive Workload without a record is a lost job"
    assert onprem.writes.index("release team-a/j1") < onprem.writes.index("record team-a/j1 None")
    assert not cloud.created


async def test_a_withdrawal_after_kueue_reserved_the_held_workload_reactivates_it() -> None:
    onprem, cloud = FakeOnPrem(), FakeCloud("cloud-a")
    job = onprem.add("j1", 8)
    fed = federation(onprem, [cloud], [offer("cloud-a")], Scripted())
    await fed.run_once(100.0)
    assert job.record is not None
    assert job.record.phase is Phase.PLACED
    assert not job.active_workload
    job.admitted = True  # Kueue reserved quota for the inactive Workload (it will evict it)
    report = await fed.run_once(110.0)
    assert any(a.startswith("withdraw team-a/j1") for a in report.actions)
    assert job.record is None
    assert job.active_workload
    assert not cloud.copies
