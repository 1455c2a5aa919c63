"""A policy reload (`Replicator.forget`) that lands while a replica is listed or copied: the
old location's listing is never taken for the new one's (never remembered, never the start of
a copy), and `sync_now` waiting on the old location's copy still answers.

No test waits on the wall clock for more than a listing (`SilentStore` answers when told)."""

from __future__ import annotations

import asyncio

from federator.syncing.replication import ReplicaState, Replicator
from tests.unit.storage.test_replica_checks import SilentStore
from tests.unit.storage.test_replica_definition_changes import Engine, Locations
from tests.unit.storage.test_replication import FakeEngine


async def test_sync_now_answers_when_a_reload_forgets_the_replica_it_waits_on() -> None:
    old = Engine("s3://cloud-a-datasets/old/")  # its copy runs until released
    replicator = Replicator(lambda d, c: old)
    assert not (await replicator.ensure_replicated("ds", "cloud-a")).ready  # the copy starts
    syncing = asyncio.create_task(replicator.sync_now("ds", "cloud-a"))
    await asyncio.sleep(0)  # sync_now waits on the copy now
    replicator.forget("ds", "cloud-a")  # a reload moved the replica
    old.release.set()
    final = await syncing  # raised KeyError before
    assert final.ready, "the copy's own outcome: it completed the old location"
    assert "policy reload" in final.message
    assert replicator.lags() == {}, "and it is not remembered for the new location"


async def test_sync_now_answers_a_failed_copy_of_a_forgotten_replica_as_failed() -> None:
    engine = FakeEngine(fail=True)
    replicator = Replicator(lambda d, c: engine)
    await replicator.ensure_replicated("ds", "cloud-a")
    syncing = asyncio.create_task(replicator.sync_now("ds", "cloud-a"))
    await asyncio.sleep(0)
    replicator.forget("ds", "cloud-a")
    engine.release.set()
    final = await syncing
    assert final.state is ReplicaState.FAILED
    assert "boom" in final.message


class TwoLocations:
    """The copier factory across a reload: first an engine for the old location, whose
    listing answers only when told, then engines for the new one (answering at once)."""

    def __init__(self, old: SilentStore) -> None:
        self.old = old
        self.new = Locations()
        self.new.target = "s3://cloud-a-datasets/new/"

    def __call__(self, dataset: str, cluster: str) -> SilentStore | Engine:
        if self.old.plans == 0:
            return self.old
        return self.new(dataset, cluster)


async def listing_started(store: SilentStore) -> None:
    for _ in range(500):
        if store.plans:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the listing never started")


async def test_a_listing_of_the_old_location_never_starts_a_copy_after_a_reload() -> None:
    old = SilentStore()  # the old location is behind: its answer would start a copy there
    factory = TwoLocations(old)
    replicator = Replicator(factory)  # the default wait: the call waits for its listing
    try:
        waiting = asyncio.create_task(replicator.ensure_replicated("ds", "cloud-a"))
        await listing_started(old)
        replicator.forget("ds", "cloud-a")  # a reload moved the replica mid-listing
        old.answer.set()
        status = await waiting
        assert status.bytes_remaining == 100, "the new location's listing (one object)"
        assert (await replicator.sync_now("ds", "cloud-a")).ready  # every copy started ends
        assert old.runs == 0, "a copy to the old location was started from its listing"
        assert [e.target for e in factory.new.built] == ["s3://cloud-a-datasets/new/"]
        assert factory.new.built[0].runs == 1
    finally:
        old.answer.set()


async def test_a_listing_of_the_old_location_is_never_remembered_after_a_reload() -> None:
    old = SilentStore()
    old.target = list(old.source)  # the old location is complete; the new one is empty
    factory = TwoLocations(old)
    replicator = Replicator(factory)
    try:
        waiting = asyncio.create_task(replicator.ensure_replicated("ds", "cloud-a"))
        await listing_started(old)
        replicator.forget("ds", "cloud-a")
        old.answer.set()
        status = await waiting
        assert not status.ready, "the old location's complete listing answered for the new one"
        assert not (await replicator.ensure_replicated("ds", "cloud-a")).ready
    finally:
        old.answer.set()
