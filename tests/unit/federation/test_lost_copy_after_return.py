"""A copy lost with its cluster counts once, whatever becomes of its job's record.

Review 2, finding 1: a job whose record was dropped (back on-prem: stay, hold, out of
re-placements; withdrawn; its Job deleted) took its lost copies into
`federator.io/returned-record`, or nowhere, where nothing counted or settled them. With 8 GPUs
on cloud-b and a 3-hour partition, the day's spend read $65.17 where the copy alone cost
$240, and `federator_cloud_spend_usd_total` never counted a dollar of it on cloud-b. Now each
lost copy counts under its own key while the Job exists, record or kept record, is settled on
the kept record too, and the spend counter counts it on its cluster as it accrues.
"""

from __future__ import annotations

import pytest

from federator.core.decisions import DecisionKind
from federator.federation import Federation
from federator.federation.ports import CopyState
from federator.federation.records import Phase
from federator.federation.spending import SpendBook
from tests.unit.federation.test_lost_copy_spend import (
    HOUR,
    LOST_AT,
    T0,
    T1,
    cloud_spend,
    federation,
)
from tests.unit.kube.fakes import FakeCloud, FakeJob, FakeOnPrem
from tests.unit.kube.test_federation_loop import Scripted
from tests.unit.kube.test_spending import MemoryStore


async def lost_and_sent_home() -> tuple[FakeOnPrem, FakeCloud, FakeCloud, Scripted, Federation]:
    """j1 (8 GPUs) on cloud-b from T0; cloud-b unreachable from T1 with j1's copy running, lost
    at T1+5m; decided again, j1 stays on-prem: its record is dropped, the lost copy kept."""
    onprem, cloud_a, cloud_b = FakeOnPrem(), FakeCloud("cloud-a"), FakeCloud("cloud-b")
    job = onprem.add("j1", 8)
    decide = Scripted()
    fed = federation(onprem, cloud_a, cloud_b, decide=decide, book=MemoryStore())
    await fed.run_once(T0)
    assert job.record is not None
    assert job.record.cluster == "cloud-b"
    cloud_b.set_state(job.uid, CopyState.RUNNING)
    cloud_b.up, cloud_b.down_since = False, T1
    await fed.run_once(LOST_AT)
    assert job.record.phase is Phase.REQUEUED
    assert job.record.lost_copies
    decide.kind = DecisionKind.STAY
    await fed.run_once(LOST_AT + 10)
    assert job.record is None, "returned on-prem"
    assert job.returned_record is not None
    assert job.returned_record.lost_copies
    return onprem, cloud_a, cloud_b, decide, fed


def rate_of(job: FakeJob) -> float:
    kept = job.returned_record or job.record
    assert kept is not None
    return kept.price_per_gpu_hour_usd * 8


async def test_a_job_that_goes_home_and_stays_counts_its_lost_copy_until_seen_gone() -> None:
    """Before: the day's spend stopped at the return ($65.17 where the truth was $240), and
    cloud-b's counter never counted the copy's hours after the requeue."""
    counted_b = cloud_spend("cloud-b")
    onprem, _, cloud_b, _, fed = await lost_and_sent_home()
    job = onprem.jobs["team-a/j1"]
    rate = rate_of(job)
    job.admitted = True  # Kueue runs it on-prem: no longer waiting, its kept copy still counts
    at = T1 + 3 * HOUR  # the copy ran on cloud-b all along, T0 .. at
    report = await fed.run_once(at)
    assert report.spend is not None
    assert report.spend.today_usd == pytest.approx(rate * (at - T0) / HOUR)

    cloud_b.up, cloud_b.down_since = True, None
    cloud_b.copies.clear()
    seen_gone = at + 10
    report = await fed.run_once(seen_gone)
    assert job.returned_record is not None
    (lost,) = job.returned_record.lost_copies
    assert lost.ended_at == seen_gone, "settled on the record the job keeps"
    assert any(action.startswith("settle team-a/j1: lost copy") for action in report.actions)
    truth = rate * (seen_gone - T0) / HOUR
    report = await fed.run_once(seen_gone + HOUR)
    assert report.spend is not None
    assert report.spend.today_usd == pytest.approx(truth), "fixed once settled"
    assert cloud_spend("cloud-b") - counted_b == pytest.approx(truth), "counted on cloud-b, once"


async def test_a_job_that_bursts_again_after_a_return_counts_its_lost_copy_once() -> None:
    """Before: the book took the copy's part up to the return, and the new record counted it
    again from the requeue."""
    onprem, cloud_a, _, decide, fed = await lost_and_sent_home()
    job = onprem.jobs["team-a/j1"]
    b_rate = rate_of(job)
    assert job.returned_record is not None
    kept = job.returned_record.lost_copies
    decide.kind = DecisionKind.BURST
    at = T1 + 3 * HOUR
    await fed.run_once(at)  # bursts again on cloud-a (cloud-b still down), the copy carried
    assert job.record is not None
    assert job.record.cluster == "cloud-a"
    assert job.record.lost_copies == kept
    cloud_a.set_state(job.uid, CopyState.RUNNING)
    report = await fed.run_once(at + 10)
    a_cost = job.record.price_per_gpu_hour_usd * 8 * 10 / HOUR
    # cloud-b's copy from T0, whole and once; cloud-a's attempt at what the budgets promise it
    truth = b_rate * (at + 10 - T0) / HOUR + max(a_cost, job.record.expected_cost_usd)
    assert report.spend is not None
    assert report.spend.today_usd == pytest.approx(truth)


class JsonStore(MemoryStore):
    """Keeps the book as the ConfigMap does, as JSON: what a restart reads back."""

    async def load(self) -> SpendBook:
        return SpendBook.from_json(self.book.to_json())


async def test_a_job_deleted_with_its_lost_copy_unsettled_counts_it_until_it_is_settled() -> None:
    """Re-placed on cloud-a, finished there, then deleted (ttlSecondsAfterFinished) while
    cloud-b is still partitioned and its copy may run on. Before: the book kept what the copy
    had counted at the last pass that saw the Job, and nothing ever settled it, so the day's
    spend stopped growing ($174.83 where an hour later the truth was $234.83) and cloud-b's
    counter never counted the copy's hours after the requeue. Now the book keeps the copy (an
    orphan) and counts it as running, across a restart, until cloud-b shows it gone."""
    counted_b = cloud_spend("cloud-b")
    onprem, cloud_a, cloud_b = FakeOnPrem(), FakeCloud("cloud-a"), FakeCloud("cloud-b")
    job = onprem.add("j1", 8)
    store = JsonStore()
    fed = federation(onprem, cloud_a, cloud_b, book=store)
    await fed.run_once(T0)
    rate = rate_of(job)
    cloud_b.set_state(job.uid, CopyState.RUNNING)
    cloud_b.up, cloud_b.down_since = False, T1
    await fed.run_once(LOST_AT)
    await fed.run_once(LOST_AT + 10)  # re-placed on cloud-a
    cloud_a.set_state(job.uid, CopyState.SUCCEEDED)
    await fed.run_once(T1 + HOUR)  # finished on cloud-a: done, the lost copy unsettled
    assert job.record is not None
    assert job.record.phase is Phase.DONE
    assert len(job.record.lost_copies) == 1, "cloud-b still down: not settled"
    a_cost = job.record.attempt_cost_usd(T1 + HOUR)
    del onprem.jobs["team-a/j1"]

    def truth(end: float) -> float:  # cloud-b's copy from T0 to its end, and cloud-a's run
        return rate * (end - T0) / HOUR + a_cost

    gone = await fed.run_once(T1 + 2 * HOUR)
    assert gone.spend is not None
    assert gone.spend.today_usd == pytest.approx(truth(T1 + 2 * HOUR)), "still running"
    assert gone.spend.last_hour_usd >= rate, "a copy that may run counts its rate this hour"
    assert len(store.book.orphans) == 1, "the book keeps it"

    restarted = federation(onprem, cloud_a, cloud_b, book=store)
    again = await restarted.run_once(T1 + 3 * HOUR)
    assert again.spend is not None
    assert again.spend.today_usd == pytest.approx(truth(T1 + 3 * HOUR)), "across a restart"

    cloud_b.up, cloud_b.down_since = True, None
    cloud_b.copies.clear()  # GC deleted it, or it never came back
    seen_gone = T1 + 3 * HOUR + 60
    settling = await restarted.run_once(seen_gone)
    assert any("lost copy of a Job that is gone" in a for a in settling.actions)
    assert settling.spend is not None
    assert settling.spend.today_usd == pytest.approx(truth(seen_gone))
    later = await restarted.run_once(seen_gone + HOUR)
    assert later.spend is not None
    assert later.spend.today_usd == pytest.approx(truth(seen_gone)), "fixed once settled"
    assert not store.book.orphans, "settled: in the gone totals"
    assert store.book.gone_today_usd == pytest.approx(truth(seen_gone))
    counted = cloud_spend("cloud-b") - counted_b
    assert counted == pytest.approx(rate * (seen_gone - T0) / HOUR), "counted on cloud-b, once"
