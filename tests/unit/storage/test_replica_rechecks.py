"""A replica found complete is listed again every `recheck_after_s`; a large one lists for longer
than a check waits (100,000 objects: 24-34 s). Its jobs must not be held while it is rechecked:
it answers its last READY status until the recheck answers. And a policy reload (`forget`) met
mid-listing or mid-copy: the old location's answer is never taken for the new one's, and
`sync_now` still answers.

No test waits on the wall clock for more than a listing (`SilentStore` answers when told)."""

from __future__ import annotations

import asyncio

from federator import errors
from federator.storage.retrying import StoreRefused
from federator.syncing.plans import ListedObject
from federator.syncing.replication import ReplicaState, ReplicationStatus, Replicator
from tests.unit.storage.test_replica_checks import SHORT, SilentStore


async def complete_replica(now: list[float]) -> tuple[Replicator, SilentStore]:
    """A replica found complete at t=100 (its listing's time), its next listing held back."""
    store = SilentStore()
    store.target = list(store.source)
    store.answer.set()
    replicator = Replicator(lambda d, c: store, clock=lambda: now[0], check_wait_s=SHORT)
    assert (await replicator.ensure_replicated("ds", "cloud-a")).ready
    store.answer.clear()  # the recheck's listing outlasts the wait
    store.answered.clear()
    now[0] = 200.0  # past recheck_after_s (60 s) after the listing at t=100
    return replicator, store


async def test_a_complete_replica_stays_ready_while_its_recheck_is_out() -> None:
    now = [130.0]
    replicator, store = await complete_replica(now)
    try:
        rechecked = await replicator.ensure_replicated("ds", "cloud-a")
        assert rechecked.ready, f"held for a recheck: {rechecked.state} {rechecked.message}"
        now[0] = 230.0
        assert (await replicator.ensure_replicated("ds", "cloud-a")).ready
        await listing_started(store, plans=2)  # one recheck, not one per call
        assert replicator.bytes_remaining("ds", "cloud-a") == 0
        assert replicator.lags() == {("ds", "cloud-a"): 130.0}, "the lag grows meanwhile"
    finally:
        store.answer.set()


async def test_the_call_that_starts_a_recheck_of_a_complete_replica_does_not_wait_for_it() -> None:
    """The decision pass asks it: waiting up to `check_wait_s` for an answer it does not need
    (the replica answers READY until the recheck answers) would hold every other job."""
    now = [130.0]
    store = SilentStore()
    store.target = list(store.source)
    store.answer.set()
    replicator = Replicator(lambda d, c: store, clock=lambda: now[0], check_wait_s=60.0)
    assert (await replicator.ensure_replicated("ds", "cloud-a")).ready
    store.answer.clear()
    now[0] = 200.0
    try:
        call = asyncio.ensure_future(replicator.ensure_replicated("ds", "cloud-a"))
        for _ in range(20):  # a few turns of the event loop, no wall clock
            if call.done():
                break
            await asyncio.sleep(0)
        assert call.done(), "the call waited for the recheck's listing"
        assert call.result().ready
        await listing_started(store, plans=2)
    finally:
        store.answer.set()


async def test_a_recheck_that_finds_the_replica_behind_is_taken_when_it_answers() -> None:
    now = [130.0]
    replicator, store = await complete_replica(now)
    try:
        assert (await replicator.ensure_replicated("ds", "cloud-a")).ready
        store.source = [*store.source, ListedObject("c", 100, "e3", 150.0)]
        store.answer.set()
        behind = await answered_unlike_before(replicator, store)
        assert behind.state is ReplicaState.COPYING
        assert behind.bytes_remaining == 100
        assert (await replicator.sync_now("ds", "cloud-a")).ready
    finally:
        store.answer.set()


async def test_a_recheck_that_fails_is_a_failed_status_with_the_backoff() -> None:
    now = [130.0]
    replicator, store = await complete_replica(now)
    try:
        assert (await replicator.ensure_replicated("ds", "cloud-a")).ready
        store.refusal = errors.StoreUnavailable("cloud-a (http://s3)", "listing: timed out")
        store.answer.set()
        failed = await answered_unlike_before(replicator, store)
        assert failed.state is ReplicaState.FAILED
        assert failed.retry_at is not None
        assert failed.retry_at >= 230.0
        now[0] += 10.0
        assert await replicator.ensure_replicated("ds", "cloud-a") == failed
    finally:
        store.answer.set()


async def test_a_replica_whose_last_answer_was_a_failure_is_checking_while_it_is_listed() -> None:
    now = [130.0]
    replicator, store = await complete_replica(now)
    try:
        store.refusal = StoreRefused("cloud-a (http://s3)", "AccessDenied")
        store.answer.set()  # the recheck answers at once, with a refusal
        assert (await replicator.ensure_replicated("ds", "cloud-a")).ready  # not waited for
        assert (await answered_unlike_before(replicator, store)).state is ReplicaState.FAILED
        store.refusal = None
        store.answer.clear()
        now[0] = 1000.0  # past the backoff: the next try's listing is out
        retried = await replicator.ensure_replicated("ds", "cloud-a")
        assert retried.state is ReplicaState.CHECKING, "not the READY of before the failure"
        assert replicator.bytes_remaining("ds", "cloud-a") is None
    finally:
        store.answer.set()


async def answered_unlike_before(replicator: Replicator, store: SilentStore) -> ReplicationStatus:
    """The first status after the recheck answered that is not the held READY one."""
    await asyncio.to_thread(store.answered.wait, 10)
    for _ in range(100):
        status = await replicator.ensure_replicated("ds", "cloud-a")
        if not status.ready:
            return status
        await asyncio.sleep(0.01)
    raise AssertionError("the recheck's answer was never picked up")


async def listing_started(store: SilentStore, *, plans: int) -> None:
    """Wait until the store's listing thread has started `plans` listings in all (the call
    that starts one no longer waits for it), and check no more were started."""
    for _ in range(500):  # a safety net, not a measure: threads start in microseconds
        if store.plans >= plans:
            break
        await asyncio.sleep(0.002)
    assert store.plans == plans
