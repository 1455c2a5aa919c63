"""A copy lost with its cluster is charged until the cluster shows it gone.

An unreachable cluster is often a partition: its copy runs on (and bills) beside the job's
new placement until the cluster answers and GC deletes it. Before, the budgets counted the
lost attempt only up to its requeue, so those hours reached no budget, and federator could
overspend a cap it reported as kept. Now the record keeps the copy (`lost_copies`), the
budgets count it as running, and the pass that sees it gone (or finished) settles it: it keeps
its end (`ended_at`) and its cost is fixed. It counts under its own key, apart from the job's
attempts, whether the job has a record or only keeps one after going back on-prem
(`returned_record`), and the spend counter counts it on its cluster as it accrues, once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pytest
import structlog.testing

from federator import metrics
from federator.core.decisions import DecisionKind
from federator.core.policy import DecisionPolicy
from federator.federation import Federation, FederationSettings
from federator.federation.charges import JobRecord, count_spend
from federator.federation.ports import CloudView, CopyState, OnPremJob
from federator.federation.records import Phase, PlacementRecord
from tests.unit.kube.fakes import FakeCloud, FakeJob, FakeOnPrem
from tests.unit.kube.test_federation_loop import Offers, Scripted, offer
from tests.unit.kube.test_spending import MemoryStore

HOUR = 3600.0
T0 = datetime(2026, 12, 1, 1, 0, tzinfo=UTC).timestamp()  # placed on cloud-b
T1 = T0 + HOUR  # cloud-b stops answering
LOST_AT = T1 + 300.0  # clusters[].unreachable_timeout: 5 min


def federation(
    onprem: FakeOnPrem,
    *clouds: FakeCloud,
    decide: Scripted | None = None,
    book: MemoryStore | None = None,
) -> Federation:
    return Federation(
        onprem=onprem,
        clouds={c.name: c for c in clouds},
        policy=DecisionPolicy(),
        offers=Offers([offer("cloud-a", price=2.0), offer("cloud-b", price=1.0)]),
        settings=FederationSettings(interval_s=10, replace_backoff_s=5, gc_grace_s=0),
        decide=decide or Scripted(),
        spend_store=book,
    )


def spent_today(job: FakeJob, now: float) -> float:
    """The job's spend today: its record's attempts and its lost copies, or those of the
    record it keeps once back on-prem."""
    assert job.record is not None or job.returned_record is not None
    jobs = [JobRecord(job.uid, "team-a", job.record, job.returned_record)]
    return count_spend(jobs, None, now).today_spent


def cloud_spend(cluster: str) -> float:
    sample = metrics.REGISTRY.get_sample_value(
        "federator_cloud_spend_usd_total", {"cluster": cluster}
    )
    return sample or 0.0


@dataclass
class Scene:
    onprem: FakeOnPrem
    cloud_a: FakeCloud
    cloud_b: FakeCloud
    fed: Federation
    b_rate: float = 0.0  # USD per hour of the copy on cloud-b (8 GPUs)
    a_rate: float = 0.0  # and on cloud-a

    @property
    def job(self) -> FakeJob:
        return self.onprem.jobs["team-a/j1"]

    @property
    def until_requeue(self) -> float:
        return self.b_rate * (LOST_AT - T0) / HOUR


async def lost_and_re_placed(onprem: FakeOnPrem | None = None) -> Scene:
    """j1 on cloud-b from T0; cloud-b unreachable from T1, lost at T1+5m, j1 re-placed on
    cloud-a at T1+5m10s while its copy runs on on cloud-b."""
    onprem = onprem or FakeOnPrem()
    cloud_a, cloud_b = FakeCloud("cloud-a"), FakeCloud("cloud-b")
    job = onprem.add("j1", 8)
    scene = Scene(onprem, cloud_a, cloud_b, federation(onprem, cloud_a, cloud_b))
    await scene.fed.run_once(T0)
    assert job.record is not None
    assert job.record.placement == "cloud-b/spot"
    scene.b_rate = job.record.price_per_gpu_hour_usd * 8
    assert scene.b_rate > 0
    cloud_b.set_state(job.uid, CopyState.RUNNING)
    cloud_b.up, cloud_b.down_since = False, T1
    await scene.fed.run_once(LOST_AT)
    assert job.record.phase is Phase.REQUEUED
    await scene.fed.run_once(LOST_AT + 10)
    assert (job.record.placement, job.record.phase) == ("cloud-a/spot", Phase.PLACED)
    cloud_a.set_state(job.uid, CopyState.RUNNING)
    scene.a_rate = job.record.price_per_gpu_hour_usd * 8
    assert len(cloud_b.copies) == 1, "the partition hides the copy; it still runs"
    return scene


async def test_the_lost_copy_counts_until_its_cluster_shows_it_gone_and_is_settled_once() -> None:
    """Adapted from the settle-into-`earlier_usd` mechanics: the settled copy now keeps its end
    on the record, and the counter counts it on cloud-b as it accrues, not at the settle."""
    counted_b, counted_a = cloud_spend("cloud-b"), cloud_spend("cloud-a")
    scene = await lost_and_re_placed()
    job, fed, b_rate, a_rate = scene.job, scene.fed, scene.b_rate, scene.a_rate
    a_placed_at = LOST_AT + 10
    at = T1 + 2 * HOUR
    await fed.run_once(at)
    # cloud-b's copy up to T1+2h (3 h), and cloud-a's since it was placed
    expected = b_rate * 3 + a_rate * (at - a_placed_at) / HOUR
    assert spent_today(job, at) == pytest.approx(expected), "before: cloud-b to the requeue"

    back = T1 + 3 * HOUR  # cloud-b answers, the copy still running: GC deletes it
    scene.cloud_b.up, scene.cloud_b.down_since = True, None
    await fed.run_once(back)
    assert scene.cloud_b.copies == {}
    assert job.record is not None
    assert job.record.earlier_usd == scene.until_requeue, "running when seen: not settled yet"
    expected = b_rate * 4 + a_rate * (back - a_placed_at) / HOUR
    assert spent_today(job, back) == pytest.approx(expected)

    seen_gone = back + 10
    (lost,) = job.record.lost_copies
    with structlog.testing.capture_logs() as logged:
        report = await fed.run_once(seen_gone)
    settled = b_rate * (seen_gone - LOST_AT) / HOUR
    assert job.record.earlier_usd == scene.until_requeue, "the copy is counted on its own"
    assert job.record.lost_copies == (replace(lost, ended_at=seen_gone),)
    assert job.record.cluster == "cloud-a"
    (line,) = [entry for entry in logged if entry["event"] == "lost_copy_settled"]
    assert (line["job"], line["cluster"]) == ("team-a/j1", "cloud-b")
    assert line["usd"] == round(settled, 4)
    assert line["hours"] == round((seen_gone - LOST_AT) / HOUR, 4)
    assert any(action.startswith("settle team-a/j1: lost copy") for action in report.actions)
    expected = scene.until_requeue + settled + a_rate * (seen_gone - a_placed_at) / HOUR
    assert spent_today(job, seen_gone) == pytest.approx(expected)

    for later in (seen_gone + 10, seen_gone + 20):
        await fed.run_once(later)
    assert job.record.earlier_usd == scene.until_requeue
    assert job.record.lost_copies == (replace(lost, ended_at=seen_gone),), "settled once"
    expected = scene.until_requeue + settled + a_rate * (later - a_placed_at) / HOUR
    assert spent_today(job, later) == pytest.approx(expected), "its cost is fixed"
    assert cloud_spend("cloud-b") - counted_b == pytest.approx(b_rate * (seen_gone - T0) / HOUR), (
        "cloud-b's copy counted where it ran, up to the pass that saw it gone, once"
    )
    assert cloud_spend("cloud-a") - counted_a == pytest.approx(
        a_rate * (later - a_placed_at) / HOUR
    ), "and none of it on the job's new cluster"


async def test_a_copy_that_finished_during_the_partition_is_charged_until_it_finished() -> None:
    """Adapted: the settled copy keeps its finish as its end (no more `earlier_usd`)."""
    scene = await lost_and_re_placed()
    job = scene.job
    back = T1 + 3 * HOUR
    scene.cloud_b.set_state(job.uid, CopyState.SUCCEEDED)  # the fake's finish: the snapshot's
    scene.cloud_b.up, scene.cloud_b.down_since = True, None
    await scene.fed.run_once(back)
    assert job.record is not None
    settled = scene.b_rate * (back - LOST_AT) / HOUR
    assert job.record.earlier_usd == scene.until_requeue
    (lost,) = job.record.lost_copies
    assert lost.ended_at == back
    assert lost.cost_usd(back + HOUR) == pytest.approx(settled)
    assert job.terminal is None, "only the record's copy may finish the job"


async def test_a_cluster_still_down_settles_nothing() -> None:
    scene = await lost_and_re_placed()
    scene.cloud_b.copies.clear()  # gone meanwhile, but nobody can see that yet
    await scene.fed.run_once(T1 + 2 * HOUR)
    assert scene.job.record is not None
    assert len(scene.job.record.lost_copies) == 1


async def test_a_cluster_removed_from_the_policy_never_settles_its_lost_copy() -> None:
    scene = await lost_and_re_placed()
    scene.cloud_b.up, scene.cloud_b.down_since = True, None
    scene.cloud_b.copies.clear()
    restarted = federation(scene.onprem, scene.cloud_a)  # cloud-b no longer in the policy file
    at = T1 + 2 * HOUR
    await restarted.run_once(at)
    assert scene.job.record is not None
    assert len(scene.job.record.lost_copies) == 1, "nobody may say where that copy is"
    assert spent_today(scene.job, at) >= scene.b_rate * 3


async def test_a_done_job_still_settles_its_lost_copy() -> None:
    scene = await lost_and_re_placed()
    job = scene.job
    scene.cloud_a.set_state(job.uid, CopyState.SUCCEEDED)
    await scene.fed.run_once(T1 + HOUR)
    assert job.record is not None
    assert job.record.phase is Phase.DONE
    assert len(job.record.lost_copies) == 1
    scene.cloud_b.up, scene.cloud_b.down_since = True, None
    scene.cloud_b.copies.clear()
    await scene.fed.run_once(T1 + 2 * HOUR)
    (lost,) = job.record.lost_copies
    assert lost.ended_at == T1 + 2 * HOUR  # adapted: kept with its end, not in earlier_usd
    assert job.record.earlier_usd == scene.until_requeue


class ChangedMeanwhile(FakeOnPrem):
    """Another writer changes the Job just before its settlement is written, once."""

    armed = False

    async def write_record(self, job: OnPremJob, record: PlacementRecord | None) -> OnPremJob:
        if self.armed and record is not None and any(c.settled for c in record.lost_copies):
            self.armed = False
            self.jobs[job.key].version += 1
        return await super().write_record(job, record)


async def test_a_settlement_that_meets_a_conflict_is_made_by_the_next_pass() -> None:
    onprem = ChangedMeanwhile()
    scene = await lost_and_re_placed(onprem)
    job = scene.job
    scene.cloud_b.up, scene.cloud_b.down_since = True, None
    scene.cloud_b.copies.clear()
    onprem.armed = True
    report = await scene.fed.run_once(T1 + HOUR)
    assert any("409" in failure for failure in report.failures)
    assert job.record is not None
    assert not job.record.lost_copies[0].settled
    await scene.fed.run_once(T1 + HOUR + 10)
    assert job.record.lost_copies[0].ended_at == T1 + HOUR + 10  # adapted: its end kept


async def test_a_lost_copy_is_carried_over_a_return_on_prem_and_settled_after_the_next_burst() -> (
    None
):
    onprem, cloud_a, cloud_b = FakeOnPrem(), FakeCloud("cloud-a"), FakeCloud("cloud-b")
    job = onprem.add("j1", 8)
    decide = Scripted(DecisionKind.STAY)
    decide.bursting = {job.key}
    fed = federation(onprem, cloud_a, cloud_b, decide=decide)
    await fed.run_once(T0)
    assert job.record is not None
    b_rate = job.record.price_per_gpu_hour_usd * 8
    cloud_b.set_state(job.uid, CopyState.RUNNING)
    cloud_b.up, cloud_b.down_since = False, T1
    await fed.run_once(LOST_AT)
    decide.bursting = set()  # decided again: it stays on-prem
    await fed.run_once(LOST_AT + 10)
    assert job.record is None
    assert job.returned_record is not None
    (lost,) = job.returned_record.lost_copies
    decide.bursting = {job.key}  # and bursts again later, to cloud-a (cloud-b still down)
    await fed.run_once(T1 + HOUR)
    assert job.record is not None
    assert job.record.placement == "cloud-a/spot"
    assert job.record.lost_copies == (lost,), "cloud-b's copy may still run: still counted"
    assert job.record.earlier_usd == 0.0, "the spend book took what it spent before"
    cloud_a.set_state(job.uid, CopyState.RUNNING)
    cloud_b.up, cloud_b.down_since = True, None
    cloud_b.copies.clear()
    await fed.run_once(T1 + 2 * HOUR)
    (settled,) = job.record.lost_copies  # adapted: kept with its end, not in earlier_usd
    assert settled.ended_at == T1 + 2 * HOUR
    fixed = b_rate * (T1 + 2 * HOUR - LOST_AT) / HOUR
    assert settled.cost_usd(T1 + 3 * HOUR) == pytest.approx(fixed)
    assert job.record.earlier_usd == 0.0


async def test_the_counter_counts_a_copy_that_finished_early_only_to_its_finish() -> None:
    """Review 3: cloud-b's copy finished 10 minutes after the requeue, but cloud-b stayed
    unreachable for 3 hours. Counted as it accrued, the counter had the whole outage ($114.83
    for a $10 copy at $60/h) and could not go back down when the settle found the finish."""
    counted_b = cloud_spend("cloud-b")
    scene = await lost_and_re_placed()
    job = scene.job
    before_outage = cloud_spend("cloud-b") - counted_b  # its attempt up to the requeue
    for at in (T1 + HOUR, T1 + 2 * HOUR):
        await scene.fed.run_once(at)
    finished = LOST_AT + 600.0
    scene.cloud_b.set_state(job.uid, CopyState.SUCCEEDED)
    answers = scene.cloud_b.snapshot

    async def with_its_own_finish(now: float) -> CloudView:  # as the real adapter reports it
        view = await answers(now)
        return replace(view, copies=tuple(replace(c, finished_at=finished) for c in view.copies))

    scene.cloud_b.snapshot = with_its_own_finish  # type: ignore[method-assign]
    scene.cloud_b.up, scene.cloud_b.down_since = True, None
    await scene.fed.run_once(T1 + 3 * HOUR)
    assert job.record is not None
    assert [c.ended_at for c in job.record.lost_copies] == [finished]
    counted = cloud_spend("cloud-b") - counted_b - before_outage
    assert counted == pytest.approx(scene.b_rate * (finished - LOST_AT) / HOUR)
