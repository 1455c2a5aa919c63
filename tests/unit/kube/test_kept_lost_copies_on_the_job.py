"""A Job back on-prem whose kept record holds copies lost with their cluster stays in the view
and has them settled on `federator.io/returned-record` (review 2, finding 1).

Its lost copies count against the budgets for as long as the Job exists, record or not, and
only the pass that sees them gone or finished closes them: so the view must show the Job even
once Kueue admits it on-prem, and the adapter must rewrite the kept record alone."""

from __future__ import annotations

import json
from dataclasses import replace

from federator.federation.records import LostCopy, Phase, PlacementRecord
from federator.kube import convert
from tests.unit.kube import objects as o
from tests.unit.kube.test_returned_record_kept_on_the_job import onprem_with

LOST = LostCopy("cloud-b", "team-a", "train-6f1c2d3e00-4", 4, usd_per_hour=8.0, since=5.0)
KEPT = PlacementRecord("cloud-b", "spot", 4, Phase.REQUEUED, 1.0, 4, lost_copies=(LOST,))


def admitted_on_prem(kept: PlacementRecord) -> dict[str, object]:
    """A Job without a record, admitted by Kueue (not suspended): not waiting."""
    job = o.job(suspend=False)
    note = convert.returned_record_note(kept, str(convert.meta(job)["uid"]))
    job["metadata"]["annotations"] = {convert.ANNOTATION_RETURNED_RECORD: note}
    return job


async def test_a_job_running_on_prem_with_kept_lost_copies_stays_in_the_view() -> None:
    onprem, _ = await onprem_with(admitted_on_prem(KEPT))
    onprem.workloads.items.clear()  # admitted and running: not pending
    (view,) = (await onprem.snapshot(o.T0_S)).jobs
    assert (view.record, view.waiting, view.returned_record) == (None, False, KEPT)
    onprem, _ = await onprem_with(admitted_on_prem(replace(KEPT, lost_copies=())))
    onprem.workloads.items.clear()
    assert (await onprem.snapshot(o.T0_S)).jobs == (), "nothing kept to count: as before"


async def test_the_kept_record_is_rewritten_alone_on_the_version_read() -> None:
    onprem, api = await onprem_with(admitted_on_prem(KEPT))
    onprem.workloads.items.clear()
    (view,) = (await onprem.snapshot(o.T0_S)).jobs
    settled = KEPT.settle([(LOST, 99.0)])
    written = await onprem.write_returned_record(view, settled)
    (patch,) = api.patches
    assert patch["metadata"]["resourceVersion"] == view.resource_version
    notes = patch["metadata"]["annotations"]
    assert set(notes) == {convert.ANNOTATION_RETURNED_RECORD}
    note = json.loads(notes[convert.ANNOTATION_RETURNED_RECORD])
    assert note["uid"] == view.uid
    assert note["lost_copies"][0]["ended_at"] == 99.0
    assert written.returned_record == settled
    assert written.resource_version == api.job["metadata"]["resourceVersion"]
    (again,) = (await onprem.snapshot(o.T0_S)).jobs
    assert again.returned_record == settled, "read back from the Job"
