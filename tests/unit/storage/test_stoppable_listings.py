"""A listing stops retrying at shutdown. Threads cannot be interrupted, a listing against a store
that is down retries for 90 s, and the process waits for its threads at exit: a SIGTERM while a
store was down could outlast the 25 s the daemon promises (docs/reliability.md). Once the
copier is stopped, no page is fetched or retried any more (`retrying.stoppable`).

No test sleeps: the retry policy here makes at most five tries without waiting, and the
stop event in the retry-level test returns from its waits at once."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from tenacity import stop_after_attempt, wait_none

from federator import errors
from federator.storage import listings, retrying
from federator.storage.copying import DatasetCopier
from federator.syncing.replication import Replicator
from tests.unit.storage.test_replica_checks import SHORT, SilentStore
from tests.unit.storage.test_store_errors import ONPREM, FakeS3, copier, down

TRIES = 5


@pytest.fixture(autouse=True)
def quick_listing_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """A listing page is tried at most five times, without waiting in between."""
    policy = vars(listings._page)["retry"]
    monkeypatch.setattr(policy, "stop", stop_after_attempt(TRIES))
    monkeypatch.setattr(policy, "wait", wait_none())


class StoppedMidListing(FakeS3):
    """A source store that is down; the copier is stopped (a SIGTERM) during its first try."""

    def __init__(self) -> None:
        super().__init__(list_objects_v2=down(ONPREM))
        self.engine: DatasetCopier | None = None

    def list_objects_v2(self, **_: object) -> Any:
        assert self.engine is not None
        self.engine.stop()
        return super().list_objects_v2()


def test_a_listing_against_a_store_that_is_down_ends_when_the_copier_is_stopped() -> None:
    source = StoppedMidListing()
    engine = copier(source, FakeS3())
    source.engine = engine
    with pytest.raises(retrying.RetriesStopped, match="shutting down"):
        engine.plan()
    assert source.calls["list_objects_v2"] == 1, "retried after the stop"


class InstantEvent(threading.Event):
    """A stop event whose waits return at once, recording how long they were asked to be."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        return self.is_set()


def test_the_wait_between_tries_is_cut_short_and_no_try_follows_the_stop() -> None:
    stopping = InstantEvent()
    tries: list[int] = []

    @retrying.transient_retry()
    def list_page() -> None:
        tries.append(1)
        if len(tries) == 3:
            stopping.set()  # SIGTERM during the third try
        raise down(ONPREM)

    with pytest.raises(retrying.RetriesStopped):
        retrying.stoppable(list_page, stopping)()
    assert len(tries) == 3
    assert len(stopping.waits) == 3, "each wait is the stop event's, the last one cut short"


def test_without_a_stop_event_a_call_is_retried_as_before() -> None:
    source = FakeS3(list_objects_v2=down(ONPREM))
    with pytest.raises(errors.StoreUnavailable, match="Could not connect"):
        listings.list_location(source, copier(source, FakeS3()).source)  # type: ignore[arg-type]
    assert source.calls["list_objects_v2"] == TRIES


async def test_a_reload_that_drops_a_listing_stops_its_engine_and_only_that_one() -> None:
    engines: list[SilentStore] = []

    def copier_for(dataset: str, cluster: str) -> SilentStore:
        engines.append(SilentStore())
        return engines[-1]

    replicator = Replicator(copier_for, check_wait_s=SHORT)
    try:
        await replicator.ensure_replicated("ds", "cloud-a")  # the listing is out
        replicator.forget("ds", "cloud-a")  # a reload moved the replica
        assert engines[0].stopped, "the old location's listing would go on retrying"
        await replicator.ensure_replicated("ds", "cloud-a")
        assert not engines[1].stopped
    finally:
        for engine in engines:
            engine.answer.set()
