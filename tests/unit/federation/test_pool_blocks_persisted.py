"""A pool blocked after a preemption or a start timeout stays blocked across a restart.

Before, `Federation.blocked_until` lived only in memory: a restarted daemon (or a new leader)
forgot the block, and its first pass placed the re-queued job straight back on the pool that
had just preempted it. Now the loop keeps the blocks in a `PoolBlockStore` (a ConfigMap in
production), written before the record and the copy's delete, and reads them when it starts
and when it starts to lead. A "restart" here is a new `Federation` over the same clusters and
the same store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
import structlog.testing

from federator.core.decisions import DecisionKind
from federator.core.models import Offer
from federator.core.policy import DecisionPolicy
from federator.errors import ClusterUnavailable
from federator.federation import Federation, FederationSettings
from federator.federation.blocks import BlockCause, PoolBlock, PoolBlocks
from federator.federation.ports import CopyState
from federator.federation.records import Phase
from tests.unit.kube.fakes import FakeCloud, FakeJob, FakeOnPrem
from tests.unit.kube.test_federation_loop import Offers, Scripted, offer

BLOCK_S = 1800.0
SPOT = ("cloud-a", "spot")
OFFERS = [offer("cloud-a", "spot", 1.0), offer("cloud-a", "ondemand", 3.0)]


class MemoryBlocks:
    """The store port in memory, merging on save as the ConfigMap store does."""

    def __init__(self) -> None:
        self.blocks = PoolBlocks()
        self.saves = 0
        self.loads = 0
        self.fail: Exception | None = None  # raised by every call while set
        self.before_save: Callable[[], None] = lambda: None

    async def load(self) -> PoolBlocks:
        self.loads += 1
        if self.fail is not None:
            raise self.fail
        return self.blocks

    async def save(self, blocks: PoolBlocks, *, now: float) -> PoolBlocks:
        if self.fail is not None:
            raise self.fail
        self.before_save()
        self.blocks = self.blocks.merged(blocks).active(now)
        self.saves += 1
        return self.blocks


class Crash(BaseException):
    """The process dies here: nothing in the loop catches it (like kill -9)."""


def federation(
    onprem: FakeOnPrem,
    cloud: FakeCloud,
    store: MemoryBlocks | None,
    *,
    decide: Scripted | None = None,
    offers: Sequence[Offer] = OFFERS,
    may_write: Callable[[], bool] = lambda: True,
) -> Federation:
    settings = FederationSettings(
        interval_s=10, replace_backoff_s=5, gc_grace_s=0, block_pool_for_s=BLOCK_S
    )
    return Federation(
        onprem=onprem,
        clouds={cloud.name: cloud},
        policy=DecisionPolicy(),
        offers=Offers(offers),
        settings=settings,
        decide=decide or Scripted(),
        may_write=may_write,
        pool_block_store=store,
    )


def two_pools() -> FakeCloud:
    return FakeCloud("cloud-a", pools={"spot": 32, "ondemand": 32})


async def preempted(fed: Federation, cloud: FakeCloud, job: FakeJob) -> None:
    """Placed on spot at 100, preempted there and re-queued at 110 (back-off until 115)."""
    await fed.run_once(100.0)
    assert job.record is not None
    assert job.record.placement == "cloud-a/spot"
    cloud.set_state(job.uid, CopyState.PREEMPTED)
    await fed.run_once(110.0)
    assert job.record.phase is Phase.REQUEUED


async def test_a_preemption_writes_the_block_with_its_cause_and_job() -> None:
    onprem, cloud, store = FakeOnPrem(), two_pools(), MemoryBlocks()
    job = onprem.add("j1", 8)
    await preempted(federation(onprem, cloud, store), cloud, job)
    assert store.blocks == PoolBlocks(
        {SPOT: PoolBlock(110.0 + BLOCK_S, BlockCause.PREEMPTION, "team-a/j1")}
    )


async def test_a_new_federation_on_the_same_store_does_not_place_the_job_back_on_the_pool() -> None:
    onprem, cloud, store = FakeOnPrem(), two_pools(), MemoryBlocks()
    job = onprem.add("j1", 8)
    await preempted(federation(onprem, cloud, store), cloud, job)
    restarted = federation(onprem, cloud, store)
    await restarted.run_once(120.0)
    assert job.record is not None
    assert (job.record.placement, job.record.attempt) == ("cloud-a/ondemand", 2)
    assert restarted.blocked_until == {SPOT: 110.0 + BLOCK_S}


async def test_the_block_is_written_before_the_record_and_before_the_copy_is_deleted() -> None:
    onprem, cloud, store = FakeOnPrem(), two_pools(), MemoryBlocks()
    job = onprem.add("j1", 8)
    fed = federation(onprem, cloud, store)
    await fed.run_once(100.0)
    (copy,) = cloud.copies
    seen: list[tuple[object, bool]] = []
    store.before_save = lambda: seen.append((job.record and job.record.phase, copy in cloud.copies))
    cloud.set_state(job.uid, CopyState.PREEMPTED)
    await fed.run_once(110.0)
    assert seen == [(Phase.PLACED, True)], "the record still PLACED, the copy still there"
    assert cloud.deleted == [copy]


async def test_a_block_written_just_before_a_crash_still_blocks_after_the_restart() -> None:
    onprem, cloud, store = FakeOnPrem(), two_pools(), MemoryBlocks()
    job = onprem.add("j1", 8)
    fed = federation(onprem, cloud, store)
    await fed.run_once(100.0)
    cloud.set_state(job.uid, CopyState.PREEMPTED)

    async def die(namespace: str, name: str) -> None:
        raise Crash

    cloud.delete_copy = die  # type: ignore[method-assign]
    with pytest.raises(Crash):
        await fed.run_once(110.0)  # the block and the REQUEUED record written, then the crash
    assert job.record is not None
    assert job.record.phase is Phase.REQUEUED
    del cloud.delete_copy  # the restarted process deletes as usual
    restarted = federation(onprem, cloud, store)
    await restarted.run_once(120.0)
    assert job.record.placement == "cloud-a/ondemand"
    assert len(cloud.running_copies_of(job.uid)) == 1, "GC took the stale copy"


async def test_a_start_timeout_block_says_so_in_a_staying_jobs_reason() -> None:
    onprem, cloud, store = FakeOnPrem(), two_pools(), MemoryBlocks()
    store.blocks = PoolBlocks({SPOT: PoolBlock(7200.0, BlockCause.START_TIMEOUT, "team-a/old")})
    onprem.add("j2", 8)
    fed = federation(onprem, cloud, store, decide=Scripted(DecisionKind.STAY))
    report = await fed.run_once(3600.0)
    (decision,) = report.decisions
    assert decision.reason == (
        "stay; cloud-a/spot blocked until 02:00 UTC after a start timeout of team-a/old"
    )


async def test_a_burst_elsewhere_keeps_its_reason() -> None:
    onprem, cloud, store = FakeOnPrem(), two_pools(), MemoryBlocks()
    store.blocks = PoolBlocks({SPOT: PoolBlock(7200.0, BlockCause.PREEMPTION, "team-a/old")})
    onprem.add("j2", 8)
    report = await federation(onprem, cloud, store).run_once(3600.0)
    (decision,) = report.decisions
    assert (decision.pool, decision.reason) == ("ondemand", "cheaper")


async def test_an_ended_block_no_longer_blocks_and_is_dropped_at_the_next_write() -> None:
    onprem, cloud, store = FakeOnPrem(), two_pools(), MemoryBlocks()
    job = onprem.add("j1", 8)
    await preempted(federation(onprem, cloud, store), cloud, job)
    later = 110.0 + BLOCK_S
    restarted = federation(onprem, cloud, store)
    await restarted.run_once(later)
    assert job.record is not None
    assert (job.record.placement, job.record.attempt) == ("cloud-a/spot", 2)
    cloud.set_state(job.uid, CopyState.PREEMPTED)
    store.blocks = PoolBlocks(
        {**store.blocks.pools, ("cloud-b", "old"): PoolBlock(later, BlockCause.PREEMPTION, "x/y")}
    )
    await restarted.run_once(later + 10)
    assert store.blocks == PoolBlocks(
        {SPOT: PoolBlock(later + 10 + BLOCK_S, BlockCause.PREEMPTION, "team-a/j1")}
    ), "the later block replaces the ended one; the other ended one is dropped"


async def test_a_store_that_does_not_answer_does_not_stop_the_pass() -> None:
    onprem, cloud, store = FakeOnPrem(), two_pools(), MemoryBlocks()
    job = onprem.add("j1", 8)
    store.fail = ClusterUnavailable("onprem", "connection refused")
    fed = federation(onprem, cloud, store)
    with structlog.testing.capture_logs() as logged:
        await preempted(fed, cloud, job)
    events = [e["event"] for e in logged]
    assert "pool_blocks_not_loaded" in events
    assert "pool_blocks_not_saved" in events
    assert cloud.copies == {}, "the requeue went on without the store"
    store.fail = None
    await fed.run_once(112.0)  # still backing off: the unsaved block is written at the end
    assert store.blocks.blocking(SPOT, 112.0) is not None
    await fed.run_once(120.0)
    assert job.record.placement == "cloud-a/ondemand", "blocked in memory meanwhile"


async def test_a_follower_reads_the_blocks_at_every_pass_and_the_leader_once() -> None:
    onprem, cloud, store = FakeOnPrem(), two_pools(), MemoryBlocks()
    job = onprem.add("j1", 8)
    leads = False
    follower = federation(onprem, cloud, store, may_write=lambda: leads)
    await follower.run_once(100.0)  # reads the (empty) store as a follower
    assert store.loads == 1
    await preempted(federation(onprem, cloud, store), cloud, job)  # the leader, meanwhile
    loads = store.loads
    await follower.run_once(112.0)
    assert store.loads == loads + 1, "a follower reads at every pass"
    assert follower.blocks.blocking(SPOT, 112.0) is not None, "and sees the leader's block"
    leads = True
    await follower.run_once(120.0)
    assert store.loads == loads + 2
    await follower.run_once(125.0)
    assert store.loads == loads + 2, "the leader reads once, when it starts to lead"
    assert job.record is not None
    assert job.record.placement == "cloud-a/ondemand"
