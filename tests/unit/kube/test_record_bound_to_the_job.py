"""The placement record is bound to the Job it was written on, by uid.

`kubectl get job X -o json | kubectl replace --force -f -` re-creates a Job (a new uid) with
all its annotations, the old placement's `federator.io/record` among them. Read as the new
Job's, a PLACED record made the loop re-create a copy on the old pool with no decision, and a
DONE one kept the new Job from ever being decided. Each live record now names the uid of its
Job, as the kept record (`federator.io/returned-record`) does, and a record of another uid
counts as none; a record without a uid (written by an older federator) is still read.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from federator.federation.ports import UNKNOWN_UID
from federator.federation.records import Phase, PlacementRecord
from federator.kube import convert
from tests.unit.kube import objects as o
from tests.unit.kube.test_returned_record_kept_on_the_job import onprem_with

PLACED = PlacementRecord("cloud-a", "spot", 2, Phase.PLACED, 10.0, 4, price_per_gpu_hour_usd=2.0)
OLD_UID = "uid-of-the-deleted-job"


def uid_of(job: dict[str, Any]) -> str:
    return str(convert.meta(job)["uid"])


def test_the_written_note_names_the_jobs_uid() -> None:
    note = json.loads(convert.record_note(PLACED, "uid-1"))
    assert note.pop("uid") == "uid-1"
    assert note == PLACED.to_data()


def test_a_record_of_this_job_is_read() -> None:
    job = o.job()
    bound = o.job(annotations={convert.ANNOTATION_RECORD: convert.record_note(PLACED, uid_of(job))})
    assert convert.record_of(bound) == PLACED
    assert convert.foreign_record_uid(bound) is None


def test_a_record_of_another_job_counts_as_none() -> None:
    job = o.job(annotations={convert.ANNOTATION_RECORD: convert.record_note(PLACED, OLD_UID)})
    assert convert.record_of(job) is None
    assert convert.foreign_record_uid(job) == OLD_UID


def test_a_record_without_a_uid_is_still_read() -> None:
    """Compatibility: the records an older federator wrote carry no uid. Placed after the Job
    was created (T0), or up to 5 minutes before it (two clocks), it is this Job's."""
    for placed_at in (o.T0_S + 3600.0, o.T0_S - 299.0):
        older = replace(PLACED, placed_at=placed_at)
        job = o.job(annotations={convert.ANNOTATION_RECORD: older.to_json()})
        assert convert.record_of(job) == older
        assert convert.foreign_record_uid(job) is None


def test_a_record_without_a_uid_placed_before_the_job_existed_is_another_jobs() -> None:
    """Review finding 1: a record an older federator wrote (no uid) on a Job re-created after
    the upgrade would still re-create a copy with no decision (PLACED) or keep the new Job from
    ever being decided (DONE). It was placed before the Job was created, so it is not its own."""
    for record in (PLACED, replace(PLACED, phase=Phase.DONE, finished_at=20.0)):
        older = replace(record, placed_at=o.T0_S - 3600.0)
        job = o.job(annotations={convert.ANNOTATION_RECORD: older.to_json()})
        assert convert.record_of(job) is None
        assert convert.foreign_record_uid(job) == UNKNOWN_UID


def test_an_unreadable_record_is_neither_read_nor_foreign() -> None:
    for text in ("{oops", '{"uid": "x"}', "[]"):
        job = o.job(annotations={convert.ANNOTATION_RECORD: text})
        assert convert.record_of(job) is None
        assert convert.foreign_record_uid(job) == ("x" if "uid" in text else None)


async def test_the_adapter_writes_the_record_with_the_jobs_uid() -> None:
    onprem, api = await onprem_with(o.job())
    (seen,) = (await onprem.snapshot(o.T0_S)).jobs
    await onprem.write_record(seen, PLACED)
    (patch,) = api.patches
    written = json.loads(patch["metadata"]["annotations"][convert.ANNOTATION_RECORD])
    assert written["uid"] == seen.uid
    (view,) = (await onprem.snapshot(o.T0_S)).jobs
    assert view.record == PLACED


def recreated_job(record: PlacementRecord, **kw: Any) -> dict[str, Any]:
    notes = {
        convert.ANNOTATION_RECORD: convert.record_note(record, OLD_UID),
        convert.ANNOTATION_PLACEMENT: record.placement,
        convert.ANNOTATION_REMOTE_STATE: "Running",
    }
    return o.job(annotations=notes, **kw)


async def test_a_recreated_job_waits_without_the_old_record_and_says_whose_it_was() -> None:
    onprem, api = await onprem_with(recreated_job(PLACED))
    (view,) = (await onprem.snapshot(o.T0_S)).jobs
    assert view.record is None
    assert view.waiting, "decided afresh like any new pending job"
    assert view.foreign_record_uid == OLD_UID
    await onprem.write_record(view, None)  # how the loop drops the stale annotations
    notes = api.job["metadata"]["annotations"]
    for name in (
        convert.ANNOTATION_RECORD,
        convert.ANNOTATION_PLACEMENT,
        convert.ANNOTATION_REMOTE_STATE,
        convert.ANNOTATION_RETURNED_RECORD,
    ):
        assert name not in notes, f"{name} left on the Job"
    (again,) = (await onprem.snapshot(o.T0_S)).jobs
    assert (again.record, again.foreign_record_uid, again.waiting) == (None, None, True)


async def test_a_recreated_job_that_does_not_wait_is_still_seen_to_be_cleaned() -> None:
    done = PlacementRecord("cloud-a", "spot", 1, Phase.DONE, 10.0, 4, finished_at=20.0)
    onprem, _ = await onprem_with(recreated_job(done, suspend=False))
    onprem.workloads.items.clear()  # running on-prem: no pending Workload
    (view,) = (await onprem.snapshot(o.T0_S)).jobs
    assert not view.waiting
    assert view.record is None
    assert view.foreign_record_uid == OLD_UID


async def test_a_new_placement_clears_a_copy_state_left_on_the_job() -> None:
    """Review finding 3: when the drop of another Job's record met a conflict, the job could
    burst in the same pass; the new record replaced `record` and `placement` but left the old
    copy's `remote-state` (e.g. Succeeded) on the Job until the first mirror."""
    onprem, api = await onprem_with(recreated_job(PLACED))
    (view,) = (await onprem.snapshot(o.T0_S)).jobs
    assert view.record is None
    placing = replace(PLACED, phase=Phase.PLACING, attempt=1)
    await onprem.write_record(view, placing)
    notes = api.job["metadata"]["annotations"]
    assert convert.ANNOTATION_REMOTE_STATE not in notes
    (again,) = (await onprem.snapshot(o.T0_S)).jobs
    assert again.record == placing
