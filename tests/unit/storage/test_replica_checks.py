"""A replica check waits for its listing only a short time: a store that does not answer must
not hold the federation's decision pass, which asks in line, for the store client's retry
budget (90 s). A listing still out is a CHECKING status and goes on in the background; a later
call picks up its answer.

The engines here list only when the test lets them (`answer`): a store that does not answer
for as long as the test wants. No test waits on the wall clock for more than a listing."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest

from federator import errors
from federator.syncing.plans import SyncPlan, plan_sync
from federator.syncing.replication import ReplicaState, ReplicationStatus, Replicator
from tests.unit.storage.test_replication import FakeEngine

SHORT = 0.05  # the check's wait in these tests, seconds


class SilentStore(FakeEngine):
    """A copy engine whose listing answers only once `answer` is set (then `refusal`, if any)."""

    def __init__(self) -> None:
        super().__init__()
        self.release.set()  # copies, once started, run to their end
        self.answer = threading.Event()
        self.answered = threading.Event()

    def plan(self) -> tuple[SyncPlan, float]:
        self.plans += 1
        try:
            self.answer.wait(10)  # a safety net: every test sets it
            if self.refusal is not None:
                raise self.refusal
            return plan_sync(self.source, self.target), 100.0
        finally:
            self.answered.set()


@pytest.fixture
async def store() -> AsyncIterator[SilentStore]:
    engine = SilentStore()
    yield engine
    engine.answer.set()  # no listing thread outlives its test (the loop's end waits for it)


async def answered(replicator: Replicator, engine: SilentStore) -> ReplicationStatus:
    """The status of the first call after the listing answered and its task took that in."""
    await asyncio.to_thread(engine.answered.wait, 10)
    for _ in range(100):
        status = await replicator.ensure_replicated("ds", "cloud-a")
        if status.state is not ReplicaState.CHECKING:
            return status
        await asyncio.sleep(0.01)
    raise AssertionError("the answer of the listing was never picked up")


async def test_a_store_that_does_not_answer_is_a_checking_status_after_the_wait(
    store: SilentStore,
) -> None:
    replicator = Replicator(lambda d, c: store, check_wait_s=SHORT)
    status = await replicator.ensure_replicated("ds", "cloud-a")
    assert status.state is ReplicaState.CHECKING
    assert not status.ready, "a replica being checked must hold its job"
    assert status.bytes_remaining is None, "unknown, not 0 (0 says the replica is there)"
    assert status.objects_remaining is None
    assert replicator.bytes_remaining("ds", "cloud-a") is None
    assert "listing the dataset and its replica since" in status.message
    assert not store.answered.is_set(), "the listing goes on in the background"


async def test_calls_while_the_listing_is_out_answer_at_once_and_do_not_list_again(
    store: SilentStore,
) -> None:
    replicator = Replicator(lambda d, c: store, check_wait_s=60.0)
    first = asyncio.create_task(replicator.ensure_replicated("ds", "cloud-a"))
    await asyncio.sleep(SHORT)  # the first call is waiting for its listing now
    for _ in range(3):  # other decision passes, or the re-sync loop
        later = await replicator.ensure_replicated("ds", "cloud-a")
        assert later.state is ReplicaState.CHECKING
    assert not first.done()
    assert store.plans == 1, "one listing per replica at a time"
    store.answer.set()
    assert (await first).state is ReplicaState.COPYING, "answered within the wait: same call"


async def test_the_next_call_picks_up_the_listing_and_starts_the_copy(
    store: SilentStore,
) -> None:
    replicator = Replicator(lambda d, c: store, check_wait_s=SHORT)
    assert (await replicator.ensure_replicated("ds", "cloud-a")).state is ReplicaState.CHECKING
    store.answer.set()
    status = await answered(replicator, store)
    assert status.state is ReplicaState.COPYING
    assert status.bytes_remaining == 200
    assert (await replicator.sync_now("ds", "cloud-a")).ready
    assert store.runs == 1


async def test_a_listing_that_fails_in_the_background_is_picked_up_with_the_backoff(
    store: SilentStore,
) -> None:
    now = [1000.0]
    replicator = Replicator(lambda d, c: store, clock=lambda: now[0], check_wait_s=SHORT)
    assert (await replicator.ensure_replicated("ds", "cloud-a")).state is ReplicaState.CHECKING
    store.refusal = errors.StoreUnavailable("onprem (http://s3)", "listing: timed out")
    store.answer.set()
    failed = await answered(replicator, store)
    assert failed.state is ReplicaState.FAILED
    assert "object store onprem (http://s3) is unavailable" in failed.message
    assert failed.retry_at is not None
    assert failed.retry_at >= 1030.0  # the first backoff, from when the failure was picked up
    assert failed.bytes_remaining is None, "never listed: unknown"
    now[0] += 20.0
    assert await replicator.ensure_replicated("ds", "cloud-a") == failed
    assert store.plans == 1, "no listing before the backoff ends"


async def test_a_store_that_answers_within_the_wait_is_answered_in_the_same_call() -> None:
    engine = FakeEngine()  # answers at once
    replicator = Replicator(lambda d, c: engine)  # the default wait
    status = await replicator.ensure_replicated("ds", "cloud-a")
    assert status.state is ReplicaState.COPYING
    assert status.bytes_remaining == 200
    engine.target = list(engine.source)
    other = await Replicator(lambda d, c: engine).ensure_replicated("ds", "cloud-b")
    assert other.ready
    engine.release.set()  # the copy started above ends


async def test_sync_now_waits_for_a_listing_that_outlasted_the_wait(store: SilentStore) -> None:
    replicator = Replicator(lambda d, c: store, check_wait_s=SHORT)
    assert (await replicator.ensure_replicated("ds", "cloud-a")).state is ReplicaState.CHECKING
    syncing = asyncio.create_task(replicator.sync_now("ds", "cloud-a"))
    await asyncio.sleep(SHORT)
    assert not syncing.done()
    store.answer.set()
    assert (await syncing).ready
    assert store.plans == 1  # the check's: it answered while sync_now waited, the run used it


async def test_a_caller_cancelled_while_it_waits_leaves_the_listing_running(
    store: SilentStore,
) -> None:
    replicator = Replicator(lambda d, c: store, check_wait_s=60.0)
    waiting = asyncio.create_task(replicator.ensure_replicated("ds", "cloud-a"))
    await asyncio.sleep(SHORT)
    waiting.cancel()  # e.g. a decision pass cut short at shutdown's second signal
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert (await replicator.ensure_replicated("ds", "cloud-a")).state is ReplicaState.CHECKING
    assert store.plans == 1, "the listing went on: the next call found it out, not a new one"
    store.answer.set()
    assert (await answered(replicator, store)).state is ReplicaState.COPYING


async def test_closing_drops_a_listing_that_is_out_instead_of_waiting_for_it(
    store: SilentStore,
) -> None:
    replicator = Replicator(lambda d, c: store, check_wait_s=SHORT)
    assert (await replicator.ensure_replicated("ds", "cloud-a")).state is ReplicaState.CHECKING
    await replicator.aclose()
    assert not store.answered.is_set(), "a shutdown must not wait out a store's retries"
    assert store.stopped


async def test_a_replica_forgotten_while_it_is_listed_is_listed_again_at_its_new_location() -> None:
    engines: list[SilentStore] = []

    def copier(dataset: str, cluster: str) -> SilentStore:
        engines.append(SilentStore())
        return engines[-1]

    replicator = Replicator(copier, check_wait_s=SHORT)
    try:
        assert (await replicator.ensure_replicated("ds", "cloud-a")).state is ReplicaState.CHECKING
        replicator.forget("ds", "cloud-a")  # a reload moved the replica
        engines[0].answer.set()  # the old location's answer comes: it is not the new one's
        assert (await replicator.ensure_replicated("ds", "cloud-a")).state is ReplicaState.CHECKING
        assert [e.plans for e in engines] == [1, 1]
        engines[1].answer.set()
        assert (await answered(replicator, engines[1])).state is ReplicaState.COPYING
    finally:
        for engine in engines:
            engine.answer.set()
