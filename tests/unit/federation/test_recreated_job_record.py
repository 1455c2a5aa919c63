"""A Job re-created from an export is decided afresh, never carried on the old Job's record.

`kubectl get job X -o json | kubectl replace --force -f -` re-creates a Job (a new uid) with
all its annotations: the old placement's `federator.io/record`, `placement` and `remote-state`.
Read as the new Job's, a PLACED record found no copy of the new uid and the loop re-created one
on the old pool, with no decision and no budget check; a DONE record kept the new Job from
ever being decided. The record names its Job's uid now, so the new Job has none: it waits and
is decided like any new job, the stale annotations are dropped once, with one Warning Event,
and nothing of the old record (its price, its lost copies) is charged to the budgets.
"""

from __future__ import annotations

from federator.core.decisions import DecisionKind
from federator.federation.ports import CopyState
from federator.federation.records import LostCopy, Phase, PlacementRecord, copy_name
from tests.unit.kube.fakes import FakeCloud, FakeJob, FakeOnPrem
from tests.unit.kube.test_federation_loop import Scripted, federation, offer

OLD_UID, NEW_UID = "uid-j1", "uid-j1-new"
DELETED = "uid-of-a-deleted-job"  # what a Job added as "j1" (uid-j1) was re-created from


def recreate(onprem: FakeOnPrem, old: FakeJob) -> FakeJob:
    """What `kubectl replace --force` leaves: a new Job, the old one's annotations."""
    assert old.record is not None
    new = FakeJob(
        old.name,
        old.gpus,
        uid=NEW_UID,
        record=old.record,
        record_uid=old.record_uid,
        remote_state=old.remote_state,
    )
    onprem.jobs[new.key] = new
    return new


async def placed_then_recreated(decide: Scripted) -> tuple[FakeOnPrem, FakeCloud, FakeJob]:
    onprem, cloud = FakeOnPrem(), FakeCloud("cloud-a")
    old = onprem.add("j1", 8)
    fed = federation(onprem, [cloud], [offer("cloud-a")], Scripted())
    await fed.run_once(100.0)
    cloud.set_state(OLD_UID, CopyState.RUNNING)
    await fed.run_once(110.0)
    assert old.record is not None
    assert old.record.phase is Phase.PLACED
    assert (old.record_uid, old.remote_state) == (OLD_UID, "Running")
    return onprem, cloud, recreate(onprem, old)


async def test_a_recreated_placed_job_gets_no_copy_without_a_decision() -> None:
    decide = Scripted(DecisionKind.STAY)
    onprem, cloud, new = await placed_then_recreated(decide)
    fed = federation(onprem, [cloud], [offer("cloud-a")], decide)
    created, told = list(cloud.created), len(onprem.events)
    report = await fed.run_once(120.0)
    assert cloud.created == created, "no copy of the new Job without a decision"
    assert not cloud.running_copies_of(NEW_UID)
    (decision,) = report.decisions
    assert (decision.job_key, decision.kind) == ("team-a/j1", DecisionKind.STAY), "decided afresh"
    assert (new.record, new.record_uid, new.remote_state) == (None, None, "")
    assert new.returned_record is None, "the old Job's record is not kept as this one's"
    assert onprem.events[told:] == [("team-a/j1", "FederatorRecordIgnored")]
    assert "record team-a/j1 None" in onprem.writes
    assert not cloud.running_copies_of(OLD_UID), "the old Job's copy is collected"
    await fed.run_once(130.0)
    assert onprem.events[told:] == [("team-a/j1", "FederatorRecordIgnored")], "said once"


async def test_a_recreated_job_bursts_afresh_from_attempt_1() -> None:
    onprem, cloud, new = await placed_then_recreated(Scripted())
    fed = federation(onprem, [cloud], [offer("cloud-a")], Scripted())
    report = await fed.run_once(120.0)
    assert [d.kind for d in report.decisions] == [DecisionKind.BURST]
    assert new.record is not None
    assert (new.record.attempt, new.record.history, new.record_uid) == (1, (), NEW_UID)
    (copy,) = cloud.running_copies_of(NEW_UID)
    assert copy.name == copy_name("j1", NEW_UID, 1)
    assert onprem.events.count(("team-a/j1", "FederatorRecordIgnored")) == 1


async def test_a_recreated_done_job_is_decided() -> None:
    onprem, cloud = FakeOnPrem(), FakeCloud("cloud-a")
    done = PlacementRecord("cloud-a", "spot", 1, Phase.DONE, 50.0, 8, finished_at=90.0)
    new = onprem.add("j1", 8, record=done, record_uid=DELETED, remote_state="Succeeded")
    assert new.uid != DELETED
    decide = Scripted(DecisionKind.STAY)
    report = await federation(onprem, [cloud], [offer("cloud-a")], decide).run_once(120.0)
    assert [d.job_key for d in report.decisions] == ["team-a/j1"]
    assert (new.record, new.remote_state) == (None, "")
    assert onprem.events == [("team-a/j1", "FederatorRecordIgnored")]


async def test_the_old_records_spend_is_not_charged_to_the_new_job() -> None:
    onprem, cloud = FakeOnPrem(), FakeCloud("cloud-a")
    lost = LostCopy("cloud-b", "team-a", "j1-old-1", 1, usd_per_hour=40.0, since=0.0)
    placed = PlacementRecord(
        "cloud-a",
        "spot",
        2,
        Phase.PLACED,
        placed_at=0.0,
        gpus=8,
        price_per_gpu_hour_usd=5.0,
        expected_cost_usd=500.0,
        earlier_usd=30.0,
        lost_copies=(lost,),
    )
    onprem.add("j1", 8, record=placed, record_uid=DELETED)
    decide = Scripted(DecisionKind.STAY)
    report = await federation(onprem, [cloud], [offer("cloud-a")], decide).run_once(1800.0)
    assert report.spend is not None
    assert (report.spend.last_hour_usd, report.spend.today_usd) == (0.0, 0.0)
    assert dict(report.spend.tenant_month_usd) == {}
    assert report.spend.bursted_jobs == 0


async def test_a_record_without_a_uid_is_still_the_jobs_own() -> None:
    """Compatibility: records an older federator wrote name no uid, and are carried on."""
    onprem, cloud = FakeOnPrem(), FakeCloud("cloud-a")
    placing = PlacementRecord("cloud-a", "spot", 1, Phase.PLACING, 100.0, 8)
    job = onprem.add("j1", 8, record=placing, record_uid=None, waiting=False)
    decide = Scripted(DecisionKind.STAY)
    await federation(onprem, [cloud], [offer("cloud-a")], decide).run_once(110.0)
    assert job.record is not None
    assert job.record.phase is Phase.PLACED
    assert [c.source_uid for c in cloud.copies.values()] == ["uid-j1"]
    assert ("team-a/j1", "FederatorRecordIgnored") not in onprem.events
