"""The async replication API: a job's data gate, progress for the cost model, and lag."""

from __future__ import annotations

import threading
from collections.abc import Callable

from federator.syncing.plans import ListedObject, SyncPlan, SyncReport, plan_sync
from federator.syncing.replication import ReplicaState, Replicator


class FakeEngine:
    """A copy engine whose source has two 100-byte objects; `run` waits for `release`.

    `plans` counts listings (each `plan`, and the one a `run` given no plan starts with); a
    `refusal` is raised by every listing, as a store that is down or refuses us does."""

    def __init__(self, *, fail: bool = False) -> None:
        self.source = [ListedObject("a", 100, "e1", 50.0), ListedObject("b", 100, "e2", 70.0)]
        self.target: list[ListedObject] = []
        self.release = threading.Event()
        self.fail = fail
        self.refusal: Exception | None = None
        self.runs = 0
        self.plans = 0
        self.stopped = False

    def plan(self) -> tuple[SyncPlan, float]:
        self.plans += 1
        if self.refusal is not None:
            raise self.refusal
        return plan_sync(self.source, self.target), 100.0

    def stop(self) -> None:
        self.stopped = True
        self.release.set()

    def run(
        self,
        *,
        dry_run: bool = False,
        planned: tuple[SyncPlan, float] | None = None,
        on_plan: Callable[[SyncPlan], None] | None = None,
        on_bytes: Callable[[int], None] | None = None,
        on_object: Callable[[str], None] | None = None,
    ) -> SyncReport:
        self.runs += 1
        plan, listed_at = planned or self.plan()
        assert on_bytes is not None
        assert on_object is not None
        on_bytes(100)
        on_object("a")
        self.release.wait(5)
        if self.fail:
            return SyncReport(plan, listed_at, dry_run=False, failures=(("b", "boom"),))
        on_bytes(100)
        on_object("b")
        self.target = list(self.source)
        return SyncReport(plan, listed_at, dry_run=False, copied=2, bytes_copied=200)


async def test_a_replica_behind_reports_bytes_to_copy_then_becomes_ready() -> None:
    engine = FakeEngine()
    now = [100.0]
    replicator = Replicator(lambda d, c: engine, clock=lambda: now[0])
    first = await replicator.ensure_replicated("ds", "cloud-a")
    assert first.state is ReplicaState.COPYING
    assert not first.ready
    assert first.bytes_remaining == 200
    assert first.objects_remaining == 2
    now[0] = 130.0
    assert replicator.lags() == {("ds", "cloud-a"): 80.0}  # oldest pending change at t=50
    engine.release.set()
    done = await replicator.sync_now("ds", "cloud-a")
    assert done.ready
    assert done.bytes_remaining == 0
    assert replicator.bytes_remaining("ds", "cloud-a") == 0
    assert engine.runs == 1


async def test_a_complete_replica_is_ready_without_copying_and_its_lag_is_since_the_check() -> None:
    engine = FakeEngine()
    engine.target = list(engine.source)
    now = [110.0]
    replicator = Replicator(lambda d, c: engine, clock=lambda: now[0])
    status = await replicator.ensure_replicated("ds", "cloud-b")
    assert status.ready
    assert engine.runs == 0
    assert replicator.lags() == {("ds", "cloud-b"): 10.0}


async def test_a_failed_copy_is_reported_and_a_call_after_the_backoff_tries_again() -> None:
    engine = FakeEngine(fail=True)
    engine.release.set()
    now = [1000.0]
    replicator = Replicator(lambda d, c: engine, clock=lambda: now[0])
    failed = await replicator.sync_now("ds", "cloud-a")
    assert failed.state is ReplicaState.FAILED
    assert "boom" in failed.message
    assert failed.bytes_remaining == 100
    engine.fail = False
    now[0] += 60.0  # past the first backoff (30 s and at most 10 s of jitter)
    assert (await replicator.sync_now("ds", "cloud-a")).ready
    assert engine.runs == 2


async def test_closing_stops_running_copies_instead_of_waiting_for_them() -> None:
    engine = FakeEngine()
    replicator = Replicator(lambda d, c: engine)
    await replicator.ensure_replicated("ds", "cloud-a")
    await replicator.aclose()
    assert engine.stopped, "a shutdown must ask the copy to stop, not wait for all of it"
