"""The federation loop over in-memory clusters: every rule of docs/design.md, one test each."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest
import structlog.testing

from federator import metrics
from federator.core.decisions import Decision, DecisionKind, Round
from federator.core.models import CapacityType, Offer, OnPremState, PendingJob, Spend
from federator.core.policy import DecisionPolicy, Strategy
from federator.federation import Federation, FederationSettings
from federator.federation.ports import CopyState, OnPremJob
from federator.federation.records import LostCopy, Phase, PlacementRecord
from tests.unit.kube.fakes import FakeCloud, FakeJob, FakeOnPrem


def offer(cluster: str, pool: str = "spot", price: float = 1.0, free: int = 32) -> Offer:
    return Offer(cluster, pool, "A100", CapacityType.SPOT, price, free)


class Offers:
    def __init__(self, offers: Sequence[Offer]) -> None:
        self.offers = list(offers)

    async def __call__(self) -> Sequence[Offer]:
        return self.offers


class Scripted:
    """A decide() that bursts every job it may to the cheapest offer with room; records calls.

    With `kind` STAY it keeps every job, forecasting a wait of `wait_s`, except the jobs whose
    keys are in `bursting` (which may change between passes)."""

    def __init__(self, kind: DecisionKind = DecisionKind.BURST, wait_s: float = 0.0) -> None:
        self.kind = kind
        self.wait_s = wait_s
        self.bursting: set[str] = set()
        self.calls: list[tuple[list[str], list[Offer]]] = []

    def __call__(
        self,
        jobs: Sequence[PendingJob],
        onprem: OnPremState,
        offers: Sequence[Offer],
        spend: Spend,
        policy: DecisionPolicy,
        now: float,
    ) -> Round:
        self.calls.append(([j.key for j in jobs], list(offers)))
        decisions = []
        for job in jobs:
            fitting = sorted(
                (o for o in offers if o.free_gpus >= job.gpus),
                key=lambda o: o.price_per_gpu_hour_usd,
            )
            if (self.kind is DecisionKind.BURST or job.key in self.bursting) and fitting:
                best = fitting[0]
                decisions.append(
                    Decision(
                        job.key,
                        DecisionKind.BURST,
                        best.cluster,
                        best.pool,
                        2.0,
                        60,
                        120,
                        {},
                        "cheaper",
                    )
                )
            else:
                wait = self.wait_s
                decisions.append(
                    Decision(job.key, DecisionKind.STAY, None, None, 0, wait, wait + 60, {}, "stay")
                )
        return Round(tuple(decisions), now=now)


def federation(
    onprem: FakeOnPrem,
    clouds: Sequence[FakeCloud],
    offers: Sequence[Offer],
    decide: Scripted,
    **kw: object,
) -> Federation:
    settings = FederationSettings(
        interval_s=10,
        replace_backoff_s=5,
        default_lost_cluster_timeout_s=60,
        gc_grace_s=0,
        **kw,  # type: ignore[arg-type]
    )
    return Federation(
        onprem=onprem,
        clouds={c.name: c for c in clouds},
        policy=DecisionPolicy(),
        offers=Offers(offers),
        settings=settings,
        decide=decide,
    )


async def test_a_burst_holds_the_job_on_prem_before_creating_one_copy() -> None:
    onprem, cloud = FakeOnPrem(), FakeCloud("cloud-a")
    onprem.add("j1", 8)
    fed = federation(onprem, [cloud], [offer("cloud-a")], Scripted())
    await fed.run_once(100.0)
    assert onprem.writes[:3] == [
        "record team-a/j1 placing",
        "hold team-a/j1",
        "record team-a/j1 placed",
    ]
    assert len(cloud.copies) == 1
    assert onprem.jobs["team-a/j1"].record.placement == "cloud-a/spot"  # type: ignore[union-attr]
    assert onprem.jobs["team-a/j1"].record.expected_cost_usd == 2.0  # type: ignore[union-attr]
    assert ("team-a/j1", "Bursted") in onprem.events
    await fed.run_once(110.0)
    assert len(cloud.created) == 1, "a second pass must not place the job again"


async def test_the_copy_finishing_gives_the_on_prem_job_one_terminal_state() -> None:
    onprem, cloud = FakeOnPrem(), FakeCloud("cloud-a")
    job = onprem.add("j1", 8)
    fed = federation(onprem, [cloud], [offer("cloud-a")], Scripted())
    await fed.run_once(100.0)
    cloud.set_state(job.uid, CopyState.RUNNING)
    await fed.run_once(110.0)
    assert job.remote_state == "Running"
    cloud.set_state(job.uid, CopyState.SUCCEEDED)
    await fed.run_once(120.0)
    assert job.terminal is not None
    assert job.terminal.succeeded
    assert job.record is not None
    assert job.record.phase is Phase.DONE
    await fed.run_once(130.0)  # FakeOnPrem.finish asserts it is never called twice
    assert cloud.copies == {}, "a finished copy is collected after the grace period"


async def test_a_preempted_copy_is_replaced_on_another_pool_after_backoff() -> None:
    onprem, cloud = FakeOnPrem(), FakeCloud("cloud-a", pools={"spot": 32, "ondemand": 32})
    job = onprem.add("j1", 8)
    offers = [offer("cloud-a", "spot", 1.0), offer("cloud-a", "ondemand", 3.0)]
    fed = federation(onprem, [cloud], offers, Scripted())
    await fed.run_once(100.0)
    cloud.set_state(job.uid, CopyState.PREEMPTED)
    await fed.run_once(110.0)
    assert job.record is not None
    assert job.record.phase is Phase.REQUEUED
    assert job.record.preemptions == 1
    assert cloud.copies == {}
    assert fed.preemptions == {("cloud-a", "spot"): 1}
    await fed.run_once(112.0)  # still inside the 5 s backoff
    assert job.record.phase is Phase.REQUEUED
    await fed.run_once(120.0)
    assert job.record.phase is Phase.PLACED
    assert (job.record.pool, job.record.attempt) == ("ondemand", 2), "the preempted pool is blocked"
    assert len(cloud.copies) == 1
    assert not job.active_workload


async def preempted_until_out_of_replacements(
    fed: Federation, cloud: FakeCloud, job: FakeJob, *, times: int = 2
) -> float:
    """Place and preempt the job `times` times (`max_replacements=times - 1`), then run the
    pass that finds it out of re-placements; returns that pass's time."""
    now = 100.0
    for _ in range(times):
        await fed.run_once(now)
        cloud.set_state(job.uid, CopyState.PREEMPTED)
        await fed.run_once(now + 1)
        now += 100
    await fed.run_once(now)
    return now


async def test_too_many_preemptions_send_the_job_back_on_prem() -> None:
    onprem, cloud = FakeOnPrem(), FakeCloud("cloud-a")
    job = onprem.add("j1", 8)
    fed = federation(
        onprem, [cloud], [offer("cloud-a")], Scripted(), max_replacements=1, block_pool_for_s=0
    )
    await preempted_until_out_of_replacements(fed, cloud, job)
    assert job.record is None, "record dropped"
    assert job.active_workload, "released to Kueue"
    assert cloud.copies == {}


async def test_a_lost_cluster_is_replaced_after_the_timeout_and_its_stale_copy_deleted() -> None:
    onprem = FakeOnPrem()
    cloud_a, cloud_b = FakeCloud("cloud-a"), FakeCloud("cloud-b")
    job = onprem.add("j1", 8)
    offers = [offer("cloud-b", price=1.0), offer("cloud-a", price=2.0)]
    fed = federation(onprem, [cloud_a, cloud_b], offers, Scripted())
    await fed.run_once(100.0)
    assert job.record is not None
    assert job.record.cluster == "cloud-b"
    cloud_b.set_state(job.uid, CopyState.RUNNING)
    cloud_b.up, cloud_b.down_since = False, 110.0
    await fed.run_once(150.0)  # down 40 s < 60 s: nothing moves
    assert job.record.cluster == "cloud-b"
    assert job.record.phase is Phase.PLACED
    await fed.run_once(171.0)
    assert job.record.phase is Phase.REQUEUED
    assert job.record.stale
    await fed.run_once(200.0)
    assert (job.record.cluster, job.record.attempt) == ("cloud-a", 2)
    # cloud-b comes back with its stale copy, which finished meanwhile: it is ignored and deleted
    cloud_b.set_state(job.uid, CopyState.SUCCEEDED)
    cloud_b.up, cloud_b.down_since = True, None
    await fed.run_once(210.0)
    assert job.terminal is None, "only the copy named by the record may finish the job"
    assert cloud_b.copies == {}
    assert len(cloud_a.copies) == 1


async def test_a_job_that_starts_on_prem_after_all_loses_its_copy() -> None:
    onprem, cloud = FakeOnPrem(), FakeCloud("cloud-a")
    job = onprem.add("j1", 8)
    fed = federation(onprem, [cloud], [offer("cloud-a")], Scripted())
    await fed.run_once(100.0)
    job.admitted, job.active_pods = True, 1
    await fed.run_once(110.0)
    assert job.record is None
    assert cloud.copies == {}


async def test_opt_out_jobs_are_never_bursted_even_if_the_model_says_so() -> None:
    onprem, cloud = FakeOnPrem(), FakeCloud("cloud-a")
    job = onprem.add("j1", 8, burst_allowed=False)
    fed = federation(onprem, [cloud], [offer("cloud-a")], Scripted())
    report = await fed.run_once(100.0)
    assert cloud.copies == {}
    assert job.record is None
    assert job.active_workload
    assert any("may not leave on-prem" in f for f in report.failures)


async def test_a_crash_after_the_record_is_finished_by_the_next_process() -> None:
    onprem, cloud = FakeOnPrem(), FakeCloud("cloud-a")
    job = onprem.add("j1", 8)
    fed = federation(onprem, [cloud], [offer("cloud-a")], Scripted())

    async def crash(request: object) -> bool:
        raise SystemExit("kill -9")

    real_create = cloud.create_copy
    cloud.create_copy = crash  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        await fed.run_once(100.0)
    assert job.record is not None
    assert job.record.phase is Phase.PLACING
    cloud.create_copy = real_create  # type: ignore[method-assign]
    restarted = federation(onprem, [cloud], [offer("cloud-a")], Scripted())
    await restarted.run_once(110.0)
    await restarted.run_once(120.0)
    assert job.record.phase is Phase.PLACED
    assert len(cloud.created) == 1


async def test_two_processes_at_once_make_one_copy() -> None:
    onprem, cloud = FakeOnPrem(), FakeCloud("cloud-a")
    onprem.add("j1", 8)
    first = federation(onprem, [cloud], [offer("cloud-a")], Scripted())
    second = federation(onprem, [cloud], [offer("cloud-a")], Scripted())
    view = await onprem.snapshot(100.0)
    onprem.snapshot = lambda now: _const(view)  # type: ignore[method-assign]  # both saw the same
    await first.run_once(100.0)
    report = await second.run_once(100.0)
    assert len(cloud.created) == 1
    assert any("409" in f for f in report.failures), "the second's record write was refused"


async def _const(value: object) -> object:
    return value


async def test_pull_back_cancels_a_copy_that_has_not_started_when_on_prem_has_room() -> None:
    onprem, cloud = FakeOnPrem(free_gpus=0), FakeCloud("cloud-a")
    job = onprem.add("j1", 8)
    fed = federation(onprem, [cloud], [offer("cloud-a")], Scripted())
    await fed.run_once(100.0)
    assert len(cloud.copies) == 1
    onprem.free_gpus = 8
    await fed.run_once(110.0)
    assert cloud.copies == {}
    assert job.record is None
    assert job.active_workload
    assert ("team-a/j1", "ReturnedOnPrem") in onprem.events
    assert job.returned == "pulled back from cloud-a/spot: on-prem has room", job.returned
    assert onprem.writes.index("note team-a/j1 returned") < onprem.writes.index(
        "release team-a/j1"
    ), "the note is written before Kueue may admit the Job"


async def test_a_pull_back_raced_by_kueue_still_says_the_job_came_back() -> None:
    """Kueue may admit and un-suspend the Job between its reactivation and the removal of the
    record; the removal is then refused (the Job changed) and a later pass drops the record on
    the started-on-prem path. The event must not depend on the removal going through."""
    onprem, cloud = FakeOnPrem(free_gpus=0), FakeCloud("cloud-a")
    job = onprem.add("j1", 8)
    fed = federation(onprem, [cloud], [offer("cloud-a")], Scripted())
    await fed.run_once(100.0)
    release = onprem.release_on_prem

    async def admitted_at_once(pending: OnPremJob) -> None:
        await release(pending)
        job.version += 1  # Kueue's own write lands first

    onprem.release_on_prem = admitted_at_once  # type: ignore[method-assign]
    onprem.free_gpus = 8
    report = await fed.run_once(110.0)
    assert any("409" in failure for failure in report.failures), "the race happened"
    assert cloud.copies == {}
    assert ("team-a/j1", "ReturnedOnPrem") in onprem.events
    assert job.returned.startswith("pulled back from cloud-a/"), "the note does not race"


async def test_a_plain_job_is_never_pulled_back_since_nothing_on_prem_would_run_it() -> None:
    """The loop seen on the sandbox under load: pulled back, the suspended plain Job was
    waiting again, bursted again as attempt 1, pulled back again, every pass, for ever."""
    onprem, cloud = FakeOnPrem(free_gpus=0), FakeCloud("cloud-a")
    job = onprem.add("j1", 8, plain=True)
    fed = federation(onprem, [cloud], [offer("cloud-a")], Scripted())
    await fed.run_once(100.0)
    onprem.free_gpus = 16  # on-prem has room, the copy has not started yet
    for now in (110.0, 120.0, 130.0):
        await fed.run_once(now)
    assert len(cloud.created) == 1, "one copy, kept"
    assert job.record is not None
    assert job.record.attempt == 1
    assert ("team-a/j1", "ReturnedOnPrem") not in onprem.events
    assert job.returned == ""


async def test_a_started_copy_is_not_pulled_back() -> None:
    onprem, cloud = FakeOnPrem(free_gpus=0), FakeCloud("cloud-a")
    job = onprem.add("j1", 8)
    fed = federation(onprem, [cloud], [offer("cloud-a")], Scripted())
    await fed.run_once(100.0)
    cloud.set_state(job.uid, CopyState.RUNNING)
    onprem.free_gpus = 16
    await fed.run_once(110.0)
    assert len(cloud.copies) == 1
    assert job.record is not None


async def test_copies_whose_source_was_deleted_are_collected() -> None:
    onprem, cloud = FakeOnPrem(), FakeCloud("cloud-a")
    job = onprem.add("j1", 8)
    fed = federation(onprem, [cloud], [offer("cloud-a")], Scripted())
    await fed.run_once(100.0)
    del onprem.jobs[job.key]
    await fed.run_once(110.0)
    assert cloud.copies == {}


async def test_offers_are_limited_to_free_gpus_and_drop_down_clusters() -> None:
    onprem = FakeOnPrem()
    cloud_a, cloud_b = FakeCloud("cloud-a", pools={"spot": 16}), FakeCloud("cloud-b", up=False)
    onprem.add("j1", 8)
    onprem.add("j2", 4)
    decide = Scripted(DecisionKind.STAY)
    fed = federation(
        onprem, [cloud_a, cloud_b], [offer("cloud-a", free=64), offer("cloud-b")], decide
    )
    await fed.run_once(100.0)
    jobs, offers = decide.calls[0]
    assert sorted(jobs) == ["team-a/j1", "team-a/j2"]
    assert [(o.cluster, o.free_gpus) for o in offers] == [("cloud-a", 16)]


async def test_the_real_cost_model_drives_the_loop() -> None:
    onprem, cloud = FakeOnPrem(free_gpus=0), FakeCloud("cloud-a")
    job = onprem.add("j1", 8)
    fed = Federation(
        onprem=onprem,
        clouds={"cloud-a": cloud},
        policy=DecisionPolicy(strategy=Strategy.GREEDY_SPOT),
        offers=Offers([offer("cloud-a")]),
        settings=FederationSettings(),
    )
    report = await fed.run_once(100.0)
    assert [d.kind for d in report.decisions] == [DecisionKind.BURST]
    assert job.record is not None
    assert job.record.cluster == "cloud-a"


async def test_no_pull_back_when_waiting_jobs_take_the_free_gpus() -> None:
    onprem, cloud = FakeOnPrem(free_gpus=0), FakeCloud("cloud-a")
    job = onprem.add("j1", 8)
    fed = federation(onprem, [cloud], [offer("cloud-a")], Scripted())
    await fed.run_once(100.0)
    onprem.add("j2", 8)  # a job that waits on-prem and will take the 8 GPUs that free up
    onprem.free_gpus = 8
    fed.decider._decide = Scripted(DecisionKind.STAY)
    await fed.run_once(110.0)
    assert len(cloud.copies) == 1
    assert job.record is not None


async def test_plain_suspended_jobs_are_decided_without_on_prem_room() -> None:
    onprem, cloud = FakeOnPrem(free_gpus=16), FakeCloud("cloud-a")
    queued = onprem.add("queued", 8)
    plain = onprem.add("plain", 8, plain=True)
    fed = Federation(
        onprem=onprem,
        clouds={"cloud-a": cloud},
        policy=DecisionPolicy(strategy=Strategy.GREEDY_SPOT),
        offers=Offers([offer("cloud-a", free=8)]),
        settings=FederationSettings(),
    )
    report = await fed.run_once(100.0)
    kinds = {d.job_key: d.kind for d in report.decisions}
    assert kinds == {"team-a/queued": DecisionKind.STAY, "team-a/plain": DecisionKind.BURST}
    assert queued.record is None
    assert plain.record is not None


async def test_a_record_that_vanishes_behind_our_back_is_reported() -> None:
    onprem, cloud = FakeOnPrem(), FakeCloud("cloud-a")
    onprem.add("j1", 8)
    fed = federation(onprem, [cloud], [offer("cloud-a")], Scripted())
    await fed.run_once(100.0)
    vanished = onprem.jobs["team-a/j1"]
    vanished.record, vanished.active_workload = None, True  # another writer drops it
    with structlog.testing.capture_logs() as logged:
        await fed.run_once(110.0)
        await fed.run_once(120.0)
    missing = [e for e in logged if e["event"] == "placement_record_missing"]
    assert [e["job"] for e in missing] == ["team-a/j1"], "reported once, not every pass"


async def test_spend_counts_today_and_this_month_from_their_starts() -> None:
    """A job placed at 23:00 UTC on the last day of a month and still running at 01:00: two
    hours in total, one today, one this month (the tenant's monthly budget)."""
    from datetime import UTC, datetime

    from federator.federation.records import PlacementRecord

    placed = datetime(2026, 10, 31, 23, 0, tzinfo=UTC).timestamp()
    now = placed + 2 * 3600
    onprem = FakeOnPrem()
    job = onprem.add("j1", 8)
    job.record = PlacementRecord(
        "cloud-a", "spot", 1, Phase.PLACED, placed_at=placed, gpus=8, price_per_gpu_hour_usd=1.0
    )
    fed = federation(onprem, [FakeCloud("cloud-a")], [offer("cloud-a")], Scripted())
    spend = fed.spend_ledger.spend(await onprem.snapshot(now), now)
    assert spend.today_usd == pytest.approx(8.0)
    assert spend.tenant_month_usd == {"default": pytest.approx(8.0)}  # the fake has no tenants
    assert spend.last_hour_usd == pytest.approx(8.0)


async def test_a_running_burst_counts_its_whole_expected_cost_until_it_ends() -> None:
    """Budgets see what running bursts have promised, not only what has accrued: otherwise
    the next pass would spend the same dollars again."""
    from federator.federation.records import PlacementRecord

    placed, now = 1_000_000.0, 1_000_000.0 + 900  # 15 min of a 2-GPU job at $2/GPU-h: $1
    onprem = FakeOnPrem()
    job = onprem.add("j1", 2)
    running = PlacementRecord(
        "cloud-a", "spot", 1, Phase.PLACED, placed_at=placed, gpus=2,
        price_per_gpu_hour_usd=2.0, expected_cost_usd=4.0,
    )  # fmt: skip
    job.record = running
    fed = federation(onprem, [FakeCloud("cloud-a")], [offer("cloud-a")], Scripted())
    spend = fed.spend_ledger.spend(await onprem.snapshot(now), now)
    assert spend.today_usd == pytest.approx(4.0)  # $1 accrued + $3 still promised
    assert spend.tenant_month_usd["default"] == pytest.approx(4.0)

    job.record = replace(running, phase=Phase.DONE, finished_at=now)
    spend = fed.spend_ledger.spend(await onprem.snapshot(now), now)
    assert spend.today_usd == pytest.approx(1.0)  # it ended cheaper: what it cost counts


async def test_a_lost_attempt_keeps_its_cost_through_requeue_and_replacement() -> None:
    from federator.federation.records import PlacementRecord

    placed = 1_000_000.0
    first = PlacementRecord(
        "cloud-a", "spot", 1, Phase.PLACED, placed_at=placed, gpus=2,
        price_per_gpu_hour_usd=2.0, expected_cost_usd=4.0,
    )  # fmt: skip
    requeued = first.requeue(now=placed + 3600, backoff_s=30, stale_copy=None)
    assert requeued.earlier_usd == pytest.approx(4.0)  # one hour of 2 GPUs at $2
    assert requeued.attempt_cost_usd(placed + 7200) == 0.0, "a lost copy costs nothing more"

    onprem = FakeOnPrem()
    job = onprem.add("j1", 2)
    fed = federation(onprem, [FakeCloud("cloud-a")], [offer("cloud-a")], Scripted())
    job.record = requeued
    waiting = fed.spend_ledger.spend(await onprem.snapshot(placed + 3700), placed + 3700)
    assert waiting.today_usd == pytest.approx(4.0)

    await fed.run_once(placed + 3700)  # past the backoff: re-placed, the cost carried along
    replaced = onprem.jobs["team-a/j1"].record
    assert replaced is not None
    assert (replaced.attempt, replaced.earlier_usd) == (2, pytest.approx(4.0))


async def test_the_hourly_budget_counts_an_attempt_lost_within_the_hour() -> None:
    """A copy preempted after 45 minutes spent $3 of the last hour (2 GPUs at $2/GPU-h); the
    hourly budget must still see it while the job waits for its backoff and once it runs
    again, or a preemption would free hourly budget it did spend. An hour after the
    re-placement the lost attempt no longer counts."""
    from federator.federation.records import PlacementRecord

    placed = 1_000_000.0
    first = PlacementRecord(
        "cloud-a", "spot", 1, Phase.PLACED, placed_at=placed, gpus=2,
        price_per_gpu_hour_usd=2.0, expected_cost_usd=8.0,
    )  # fmt: skip
    requeued = first.requeue(now=placed + 2700, backoff_s=60, stale_copy=None)
    onprem = FakeOnPrem()
    job = onprem.add("j1", 2)
    fed = federation(onprem, [FakeCloud("cloud-a")], [offer("cloud-a")], Scripted())
    job.record = requeued
    waiting = fed.spend_ledger.spend(await onprem.snapshot(placed + 2730), placed + 2730)
    assert waiting.last_hour_usd == pytest.approx(3.0)

    again = replace(requeued, phase=Phase.PLACED, placed_at=placed + 2760, attempt=2)
    job.record = again
    running = fed.spend_ledger.spend(await onprem.snapshot(placed + 2800), placed + 2800)
    assert running.last_hour_usd == pytest.approx(3.0 + 4.0)  # lost + an hour at its burn rate

    later = placed + 2760 + 3601
    spend = fed.spend_ledger.spend(await onprem.snapshot(later), later)
    assert spend.last_hour_usd == pytest.approx(4.0)


def _forecast_counts(gpus: str) -> tuple[float, float, float]:
    def value(name: str) -> float:
        return metrics.REGISTRY.get_sample_value(name, {"gpus": gpus}) or 0.0

    return (
        value("federator_onprem_wait_forecasts_total"),
        value("federator_onprem_wait_forecast_seconds_total"),
        value("federator_onprem_wait_real_seconds_total"),
    )


async def test_a_job_that_starts_on_prem_settles_its_first_wait_forecast() -> None:
    """Only a start on-prem counts: a burst or a deletion forgets the forecast."""
    onprem, cloud = FakeOnPrem(free_gpus=0), FakeCloud("cloud-a")
    started, bursted, deleted = onprem.add("j1", 8), onprem.add("j2", 6), onprem.add("j3", 5)
    decide = Scripted(DecisionKind.STAY, wait_s=600.0)
    fed = federation(onprem, [cloud], [offer("cloud-a")], decide)
    before = _forecast_counts("5-8")
    await fed.run_once(100.0)  # three forecasts of 600 s, made at t=100
    decide.bursting.add(bursted.key)
    await fed.run_once(200.0)  # the later forecast of a job does not replace its first
    assert bursted.record is not None
    started.admitted = True  # Kueue admits it
    del onprem.jobs[deleted.key]  # its owner deletes it
    await fed.run_once(1900.0)
    after = _forecast_counts("5-8")
    assert [b - a for a, b in zip(before, after, strict=True)] == [1.0, 600.0, 1800.0]
    assert len(fed.forecasts) == 0, "nothing is left open"


async def test_a_job_that_keeps_a_lost_copy_settles_its_forecast_when_it_starts() -> None:
    """A job back on-prem that keeps a lost copy stays in the view once Kueue admits it (its
    copy is still charged), but it started: its forecast counts, as for any other start."""
    onprem, cloud = FakeOnPrem(free_gpus=0), FakeCloud("cloud-a")
    job = onprem.add("j1", 8)
    lost = LostCopy("cloud-b", "team-a", "j1-1", 1, 60.0, 50.0)
    job.returned_record = PlacementRecord(
        "cloud-b", "spot", 1, Phase.REQUEUED, placed_at=0.0, gpus=8, lost_copies=(lost,)
    )
    fed = federation(onprem, [cloud], [offer("cloud-a")], Scripted(DecisionKind.STAY, wait_s=600.0))
    before = _forecast_counts("5-8")
    await fed.run_once(100.0)
    job.admitted = True  # Kueue admits it
    await fed.run_once(400.0)
    after = _forecast_counts("5-8")
    assert [b - a for a, b in zip(before, after, strict=True)] == [1.0, 600.0, 300.0]


async def test_a_follower_counts_no_wait_forecast() -> None:
    """Every replica forecasts; only the leader counts, or a sum over replicas doubles."""
    onprem = FakeOnPrem(free_gpus=0)
    started = onprem.add("j1", 8)
    fed = federation(onprem, [], [], Scripted(DecisionKind.STAY, wait_s=600.0))
    fed.may_write = lambda: False  # a follower
    before = _forecast_counts("5-8")
    await fed.run_once(100.0)
    started.admitted = True
    await fed.run_once(400.0)
    assert _forecast_counts("5-8") == before
    assert len(fed.forecasts) == 0, "settled all the same"
