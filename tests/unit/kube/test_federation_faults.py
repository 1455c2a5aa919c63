"""The federation loop where a review found it wrong: a crash between writes, a step that raises
something unexpected, bursting turned off under a requeued job, a forged record, and the
bookkeeping around them (spend, exposure, queue gauges). Each test failed before its fix."""

from __future__ import annotations

from dataclasses import replace

import pytest
from kubernetes_asyncio.client.rest import ApiException

from federator import metrics
from federator.core.decisions import DecisionKind
from federator.core.policy import DecisionPolicy
from federator.errors import ClusterUnavailable
from federator.federation import Federation, FederationSettings
from federator.federation.ports import (
    CopyRequest,
    CopyState,
    DataReadiness,
    OnPremJob,
    OnPremView,
    QueueView,
)
from federator.federation.records import Phase, PlacementRecord
from federator.kube.errors import Conflict, Refused, translate
from tests.unit.kube.fakes import FakeCloud, FakeJob, FakeOnPrem
from tests.unit.kube.test_federation_loop import (
    Offers,
    Scripted,
    federation,
    offer,
    preempted_until_out_of_replacements,
)
from tests.unit.kube.test_spending import MemoryStore

NOW = 1_800_000_000.0  # 2027-01-15 08:00 UTC


async def placed(onprem: FakeOnPrem) -> tuple[FakeJob, Federation, FakeCloud]:
    """One 8-GPU job bursted to cloud-a's spot pool by a first pass at t=100."""
    cloud = FakeCloud("cloud-a")
    job = onprem.add("j1", 8)
    fed = federation(onprem, [cloud], [offer("cloud-a")], Scripted())
    await fed.run_once(100.0)
    return job, fed, cloud


class FailingHold(FakeOnPrem):
    """Holding one job raises what no adapter translates (a bug, a raw library error)."""

    async def hold_on_prem(self, job: OnPremJob) -> bool:
        if job.name == "broken":
            raise KeyError("status")
        return await super().hold_on_prem(job)


async def test_one_jobs_unexpected_error_does_not_stop_the_pass_for_the_others() -> None:
    onprem, cloud = FailingHold(), FakeCloud("cloud-a")
    onprem.add("broken", 8)
    onprem.add("fine", 8)
    fed = federation(onprem, [cloud], [offer("cloud-a")], Scripted())
    report = await fed.run_once(100.0)
    assert any("broken" in f and "KeyError" in f for f in report.failures), report.failures
    assert [c.source_uid for c in cloud.copies.values()] == ["uid-fine"], "the other one placed"


class RequeueWriteFails(FakeOnPrem):
    """The write of a REQUEUED record fails `failures` times (a 409, a dead apiserver, a crash)."""

    failures = 1

    async def write_record(self, job: OnPremJob, record: PlacementRecord | None) -> OnPremJob:
        if record is not None and record.phase is Phase.REQUEUED and self.failures:
            self.failures -= 1
            raise ClusterUnavailable("onprem", "connection refused")
        return await super().write_record(job, record)


async def test_a_requeue_cut_short_never_recreates_the_copy_on_the_preempted_pool() -> None:
    onprem, cloud = RequeueWriteFails(), FakeCloud("cloud-a", pools={"spot": 32, "od": 32})
    job = onprem.add("j1", 8)
    offers = [offer("cloud-a", "spot", 1.0), offer("cloud-a", "od", 3.0)]
    fed = federation(onprem, [cloud], offers, Scripted())
    await fed.run_once(100.0)
    cloud.set_state(job.uid, CopyState.PREEMPTED)
    await fed.run_once(110.0)  # the requeue's record write fails
    assert job.record is not None
    assert job.record.phase is Phase.PLACED
    assert len(cloud.copies) == 1, "the copy stays until a record says it is stale"
    await fed.run_once(111.0)  # the write goes through now
    assert job.record.phase is Phase.REQUEUED
    assert job.record.preemptions == 1
    assert cloud.copies == {}
    await fed.run_once(130.0)
    assert (job.record.pool, job.record.attempt) == ("od", 2)
    assert len(cloud.created) == 2, "attempt 1 was never created a second time"


async def test_a_requeued_job_goes_home_when_bursting_is_turned_off() -> None:
    onprem = FakeOnPrem()
    job, fed, cloud = await placed(onprem)
    fed.settings = replace(fed.settings, burst_enabled=False)  # a reload to `policy: never`
    cloud.set_state(job.uid, CopyState.PREEMPTED)
    await fed.run_once(110.0)
    assert job.record is not None
    assert job.record.phase is Phase.REQUEUED
    await fed.run_once(130.0)  # past the backoff
    assert job.record is None
    assert job.active_workload, "Kueue may run it on-prem again"
    assert "bursting is off" in job.returned


class Outputs:
    """A DataGate whose outputs are home for every job but `failing`, which raises."""

    def __init__(self, failing: str = "") -> None:
        self.failing = failing
        self.asked: list[str] = []

    async def ensure_replicated(self, dataset: str, cluster: str) -> DataReadiness:
        return DataReadiness(may_start=True)

    async def outputs_synced(self, job_key: str, cluster: str) -> bool:
        self.asked.append(job_key)
        if job_key.endswith(self.failing) and self.failing:
            raise ConnectionError("the staging store is down")
        return True


async def test_outputs_are_asked_only_while_a_copy_waits_and_one_failure_blocks_no_other() -> None:
    onprem, cloud = FakeOnPrem(), FakeCloud("cloud-a")
    for name in ("a", "b"):
        onprem.add(name, 8)
    fed = federation(onprem, [cloud], [offer("cloud-a")], Scripted())
    fed.data = data = Outputs(failing="/a")
    await fed.run_once(100.0)
    for job in onprem.jobs.values():
        cloud.set_state(job.uid, CopyState.SUCCEEDED)
    await fed.run_once(110.0)  # both finish; a's outputs cannot be checked
    report = await fed.run_once(120.0)
    assert any("outputs not synced back" in f for f in report.failures)
    assert [c.source_uid for c in cloud.copies.values()] == ["uid-a"], "b was collected"
    data.asked.clear()
    data.failing = ""
    await fed.run_once(130.0)
    await fed.run_once(140.0)
    assert cloud.copies == {}
    assert data.asked == ["team-a/a"], "a DONE job without a copy is not asked about again"


class Unsynced(FakeOnPrem):
    synced = True

    async def snapshot(self, now: float) -> OnPremView:
        return replace(await super().snapshot(now), synced=self.synced)


async def test_a_skipped_pass_does_not_count_running_hours_twice() -> None:
    onprem = Unsynced()
    job, fed, cloud = await placed(onprem)
    cloud.set_state(job.uid, CopyState.RUNNING)
    onprem.synced = False
    await fed.run_once(1000.0)  # skipped: on-prem cache not synced
    onprem.synced = True
    await fed.run_once(2000.0)
    assert fed.exposure_h[("cloud-a", "spot")] == pytest.approx(1900 / 3600)


class WithQueues(FakeOnPrem):
    queues: tuple[QueueView, ...] = ()

    async def snapshot(self, now: float) -> OnPremView:
        return replace(await super().snapshot(now), queues=self.queues)


def gauge(name: str, queue: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(name, {"queue": queue})


async def test_a_queue_that_empties_shows_zero_not_its_last_values() -> None:
    onprem = WithQueues()
    onprem.queues = (QueueView("q-empties", 3, 24, 900.0),)
    fed = federation(onprem, [], [], Scripted())
    await fed.run_once(100.0)
    assert gauge("federator_queue_oldest_pending_seconds", "q-empties") == 900.0
    onprem.queues = ()
    await fed.run_once(110.0)
    for name in (
        "federator_queue_pending_workloads",
        "federator_queue_pending_gpus",
        "federator_queue_oldest_pending_seconds",
    ):
        assert gauge(name, "q-empties") == 0.0, name


async def test_a_job_without_gpus_is_not_decided_or_bursted() -> None:
    onprem, cloud = FakeOnPrem(), FakeCloud("cloud-a")
    onprem.add("cpu-only", 0)
    onprem.add("gpu", 1)
    decide = Scripted()
    fed = federation(onprem, [cloud], [offer("cloud-a")], decide)
    await fed.run_once(100.0)
    assert decide.calls[0][0] == ["team-a/gpu"]
    assert [c.source_uid for c in cloud.copies.values()] == ["uid-gpu"]


async def test_a_hand_written_placing_record_on_an_opted_out_job_places_nothing() -> None:
    onprem, cloud = FakeOnPrem(), FakeCloud("cloud-a")
    job = onprem.add("j1", 8, burst_allowed=False)
    job.record = PlacementRecord("cloud-a", "spot", 1, Phase.PLACING, placed_at=90.0, gpus=8)
    fed = federation(onprem, [cloud], [offer("cloud-a")], Scripted())
    report = await fed.run_once(100.0)
    assert cloud.copies == {}
    assert job.record is None
    assert any("may not leave" in f for f in report.failures)


async def test_a_lost_attempt_counts_on_its_own_day_not_on_every_later_one() -> None:
    onprem = FakeOnPrem()
    job = onprem.add("j1", 2)
    last_month = NOW - 20 * 86_400  # 2026-12-26
    job.record = PlacementRecord(
        "cloud-a", "spot", 2, Phase.DONE, placed_at=last_month, gpus=2,
        price_per_gpu_hour_usd=2.0, finished_at=last_month + 1800, earlier_usd=60.0,
    )  # fmt: skip
    fed = federation(onprem, [FakeCloud("cloud-a")], [offer("cloud-a")], Scripted())
    report = await fed.run_once(NOW)
    assert report.spend is not None
    assert report.spend.today_usd == 0.0
    assert report.spend.tenant_month_usd.get("default", 0.0) == 0.0
    job.record = replace(job.record, placed_at=NOW - 5 * 86_400, finished_at=NOW - 5 * 86_400)
    report = await fed.run_once(NOW + 10)
    assert report.spend is not None
    assert report.spend.today_usd == 0.0
    assert report.spend.tenant_month_usd["default"] == pytest.approx(60.0), "same month"


async def test_a_placement_that_goes_away_leaves_what_it_spent_not_what_it_promised() -> None:
    onprem, store = FakeOnPrem(), MemoryStore()
    job = onprem.add("j1", 2)
    job.record = PlacementRecord(
        "cloud-a", "spot", 1, Phase.PLACED, placed_at=NOW - 1800, gpus=2,
        price_per_gpu_hour_usd=2.0, expected_cost_usd=10.0,
    )  # fmt: skip
    fed = Federation(
        onprem=onprem, clouds={"cloud-a": FakeCloud("cloud-a")}, policy=DecisionPolicy(),
        offers=Offers([offer("cloud-a")]), settings=FederationSettings(interval_s=10),
        decide=Scripted(), spend_store=store,
    )  # fmt: skip
    report = await fed.run_once(NOW)
    assert report.spend is not None
    assert report.spend.today_usd == pytest.approx(10.0), "the whole promise counts while it runs"
    del onprem.jobs["team-a/j1"]
    report = await fed.run_once(NOW + 10)
    assert report.spend is not None
    assert report.spend.today_usd == pytest.approx(2.0), "30 min of 2 GPUs at $2 were spent"


async def test_a_plain_job_out_of_replacements_fails_instead_of_bursting_again_as_new() -> None:
    onprem, cloud = FakeOnPrem(), FakeCloud("cloud-a")
    job = onprem.add("plain", 8, plain=True)
    fed = federation(
        onprem, [cloud], [offer("cloud-a")], Scripted(), max_replacements=1, block_pool_for_s=0
    )
    now = await preempted_until_out_of_replacements(fed, cloud, job)
    assert job.terminal is not None
    assert not job.terminal.succeeded
    assert "gave up: too many re-placements (tried cloud-a/spot, cloud-a/spot)" in (
        job.terminal.message
    )
    assert job.record is not None
    assert job.record.phase is Phase.DONE
    assert ("team-a/plain", "FederatorGaveUp") in onprem.events
    for _ in range(3):
        now += 100
        await fed.run_once(now)
    assert len(cloud.created) == 2, "two attempts, then no new 'attempt 1'"


async def test_a_plain_job_decided_to_stay_after_a_requeue_keeps_its_history() -> None:
    onprem, cloud = FakeOnPrem(), FakeCloud("cloud-a")
    job = onprem.add("plain", 8, plain=True)
    decide = Scripted(DecisionKind.STAY)
    decide.bursting = {"team-a/plain"}
    fed = federation(onprem, [cloud], [offer("cloud-a")], decide, block_pool_for_s=0)
    await fed.run_once(100.0)
    cloud.set_state(job.uid, CopyState.PREEMPTED)
    await fed.run_once(110.0)
    decide.bursting = set()
    await fed.run_once(130.0)  # decided again: stay
    assert job.record is not None
    assert (job.record.phase, job.record.preemptions) == (Phase.REQUEUED, 1)
    decide.bursting = {"team-a/plain"}
    await fed.run_once(140.0)
    assert (job.record.phase, job.record.attempt) == (Phase.PLACED, 2)


async def test_a_requeued_attempt_closed_as_done_is_not_charged_twice() -> None:
    record = PlacementRecord(
        "cloud-a", "spot", 1, Phase.PLACED, placed_at=0.0, gpus=2, price_per_gpu_hour_usd=2.0
    )
    lost = record.requeue(now=3600.0, backoff_s=30.0, stale_copy=None)
    assert lost.earlier_usd == pytest.approx(4.0)
    closed = lost.done(finished_at=7200.0)
    assert closed.earlier_usd + closed.attempt_cost_usd(7200.0) == pytest.approx(4.0)


class DoneWriteConflicts(FakeOnPrem):
    """The write that closes a record as DONE meets a 409 once (Kueue or the owner wrote)."""

    conflicts = 1

    async def write_record(self, job: OnPremJob, record: PlacementRecord | None) -> OnPremJob:
        if record is not None and record.phase is Phase.DONE and self.conflicts:
            self.conflicts -= 1
            self.jobs[job.key].version += 1
            raise Conflict("onprem", 409, "changed")
        return await super().write_record(job, record)


async def test_a_conflict_closing_the_record_loses_no_completed_in_cloud_event() -> None:
    onprem = DoneWriteConflicts()
    job, fed, cloud = await placed(onprem)
    cloud.set_state(job.uid, CopyState.SUCCEEDED)
    await fed.run_once(110.0)
    await fed.run_once(120.0)  # the mark-done path closes the record
    assert job.record is not None
    assert job.record.phase is Phase.DONE
    assert ("team-a/j1", "CompletedInCloud") in onprem.events


async def test_a_requeued_job_does_not_show_its_lost_copy_as_running() -> None:
    onprem = FakeOnPrem()
    job, fed, cloud = await placed(onprem)
    cloud.set_state(job.uid, CopyState.RUNNING)
    await fed.run_once(110.0)
    assert job.remote_state == "Running"
    cloud.set_state(job.uid, CopyState.PREEMPTED)
    await fed.run_once(120.0)
    assert job.record is not None
    assert job.record.phase is Phase.REQUEUED
    assert job.remote_state == "Preempted"


class RefusingCloud(FakeCloud):
    """Creating a copy is refused: someone else's ConfigMap of the copy's name, say."""

    async def create_copy(self, request: CopyRequest) -> bool:
        raise Refused(self.name, 409, "ConfigMap team-a/settings exists and is not federator's")


async def test_a_refused_placement_is_decided_again_and_then_goes_home_not_held_for_ever() -> None:
    onprem, cloud = FakeOnPrem(), RefusingCloud("cloud-a")
    job = onprem.add("j1", 8)
    fed = federation(onprem, [cloud], [offer("cloud-a")], Scripted(), max_replacements=1)
    report = await fed.run_once(100.0)
    assert any("refused" in f for f in report.failures), report.failures
    assert job.record is not None
    assert job.record.phase is Phase.REQUEUED
    assert not job.active_workload, "held while it waits for its next decision"
    await fed.run_once(110.0)  # past the backoff: attempt 2, refused again
    assert job.record.attempt == 2
    await fed.run_once(200.0)
    assert job.record is None
    assert job.active_workload, "out of re-placements: Kueue runs it on-prem"
    assert onprem.events.count(("team-a/j1", "PlacementRefused")) == 2


class RevokedCloud(FakeCloud):
    """The cloud refuses our credentials (401) until `fixed`, as after a revoked token."""

    fixed = False

    async def create_copy(self, request: CopyRequest) -> bool:
        if not self.fixed:
            raise translate(self.name, ApiException(status=401, reason="Unauthorized"))
        return await super().create_copy(request)


async def test_refused_credentials_hold_a_placement_without_counting_it_as_a_lost_copy() -> None:
    """A 401 is the cluster's outage until the kubeconfig is fixed: the job waits on its
    placement. Counted as a refused placement, four passes sent it home for good."""
    onprem, cloud = FakeOnPrem(), RevokedCloud("cloud-a")
    job = onprem.add("j1", 8)
    fed = federation(onprem, [cloud], [offer("cloud-a")], Scripted(), max_replacements=1)
    for now in (100.0, 110.0, 130.0, 155.0):  # within the lost-cluster timeout (60 s)
        report = await fed.run_once(now)
        assert any("refused our credentials" in f for f in report.failures), report.failures
        assert job.record is not None
        assert (job.record.phase, job.record.attempt, job.record.losses) == (Phase.PLACING, 1, 0)
    assert ("team-a/j1", "PlacementRefused") not in onprem.events
    cloud.fixed = True
    await fed.run_once(159.0)
    assert (job.record.phase, job.record.attempt) == (Phase.PLACED, 1)
    assert len(cloud.copies) == 1


async def test_credentials_refused_past_the_lost_cluster_timeout_refuse_the_placement() -> None:
    """Only writes refused (a webhook's or a proxy's 401; reads work, the cluster stays up):
    the job was held on its placement for ever, one warning per pass."""
    onprem, cloud = FakeOnPrem(), RevokedCloud("cloud-a")
    job = onprem.add("j1", 8)
    fed = federation(onprem, [cloud], [offer("cloud-a")], Scripted(), max_replacements=1)
    await fed.run_once(100.0)
    await fed.run_once(159.0)
    assert job.record is not None
    assert (job.record.phase, job.record.losses) == (Phase.PLACING, 0)
    report = await fed.run_once(160.0)  # 60 s: the lost-cluster timeout
    assert (job.record.phase, job.record.losses) == (Phase.REQUEUED, 1)
    assert any("for 60s since the placement began" in f for f in report.failures)
    assert onprem.events.count(("team-a/j1", "PlacementRefused")) == 1


def spend_counter(cluster: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "federator_cloud_spend_usd_total", {"cluster": cluster}
    )
    return value or 0.0


def running(placed_at: float, cluster: str) -> PlacementRecord:
    return PlacementRecord(
        cluster, "spot", 1, Phase.PLACED, placed_at=placed_at, gpus=2, price_per_gpu_hour_usd=2.0
    )


async def test_the_spend_counter_counts_what_accrues_and_not_the_past_again_on_restart() -> None:
    cluster = "cloud-spend-restart"
    onprem = FakeOnPrem()
    job = onprem.add("j1", 2)
    job.record = running(NOW - 3600, cluster)  # $4 spent before this process started
    fed = federation(onprem, [FakeCloud(cluster)], [], Scripted())
    before = spend_counter(cluster)
    await fed.run_once(NOW)
    assert spend_counter(cluster) == before, "the first pass only takes note"
    await fed.run_once(NOW + 900)
    assert spend_counter(cluster) - before == pytest.approx(1.0), "15 min of 2 GPUs at $2"


async def test_a_job_created_again_under_its_name_is_counted_as_a_new_one() -> None:
    cluster = "cloud-spend-again"
    onprem = FakeOnPrem()
    fed = federation(onprem, [FakeCloud(cluster)], [], Scripted())
    await fed.run_once(NOW)  # seeds the counter with nothing
    before = spend_counter(cluster)
    first = onprem.add("j1", 2)
    first.record = replace(running(NOW, cluster), finished_at=NOW + 1800, phase=Phase.DONE)
    await fed.run_once(NOW + 1800)
    del onprem.jobs["team-a/j1"]
    second = onprem.add("j1", 2)
    second.uid = "uid-j1-again"
    second.record = replace(running(NOW, cluster), finished_at=NOW + 1800, phase=Phase.DONE)
    await fed.run_once(NOW + 1900)
    assert spend_counter(cluster) - before == pytest.approx(4.0), "two jobs of $2 each"
