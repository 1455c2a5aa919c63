"""Every store request of a dataset copy stops retrying at shutdown, not only its listings.

A request against a store that is down is retried for 90 s (`transient_retry`) in a thread that
cannot be interrupted, and the process waits for its threads at exit, past the 25 s a SIGTERM
has (docs/reliability.md). Once the copier is stopped, its sync state's GET, each object's
requests (HEADs, reads, PUTs, copies, part uploads, completes, aborts, deletes) and the open
upload listing are tried no more: the call raises `retrying.RetriesStopped`. A save of the sync
state still makes its one try, so a stopped copy keeps its open uploads recorded.

No test sleeps: every retried call here makes at most five tries without waiting.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError
from tenacity import stop_after_attempt, wait_none

from federator.storage import listings, retrying
from federator.storage.copy_requests import CopyRequests
from federator.storage.copying import DatasetCopier, Stopped
from federator.storage.syncstate import SyncState
from tests.unit.storage.test_copy_review import MemoryS3, MiB, copier, recorded_state

TRIES = 5


def retried_calls() -> dict[str, Callable[..., Any]]:
    """The copier's S3 calls that retry (those `transient_retry` decorated), its own and its
    requests'."""
    return {
        name: f
        for owner in (DatasetCopier, CopyRequests)
        for name, f in vars(owner).items()
        if "retry" in getattr(f, "__dict__", {})
    }


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each retried call is tried at most five times, without waiting in between."""
    for function in [listings._page, SyncState._read, SyncState._put, *retried_calls().values()]:
        policy = vars(function)["retry"]
        monkeypatch.setattr(policy, "stop", stop_after_attempt(TRIES))
        monkeypatch.setattr(policy, "wait", wait_none())


def down() -> EndpointConnectionError:
    return EndpointConnectionError(endpoint_url="http://10.9.8.8:8333/replicas")


class DownStore:
    """A store that is down: every request fails to connect, and the first one stops the copier
    (the SIGTERM comes while it is in flight)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.engine: DatasetCopier | None = None

    def __getattr__(self, operation: str) -> Callable[..., Any]:
        def request(*_: object, **__: object) -> Any:
            self.calls[operation] += 1
            assert self.engine is not None
            self.engine.stop()
            raise down()

        return request


def stopped_copier_of(store: DownStore) -> DatasetCopier:
    engine = copier(store, store)  # type: ignore[arg-type]
    store.engine = engine
    return engine


# Each retried call, made with arguments that reach its request.
CALLS: dict[str, Callable[[DatasetCopier], object]] = {
    "read": lambda c: c.requests.read("a.bin", "e", byte_range=None),
    "put": lambda c: c.requests.put("a.bin", b"x", b"m"),
    "copy_object": lambda c: c.requests.copy_object("a.bin", "e"),
    "head_source": lambda c: c.requests.head_source("a.bin"),
    "first_part_size": lambda c: c.requests.first_part_size("a.bin", "e-2"),
    "create_upload": lambda c: c.requests.create_upload("a.bin"),
    "upload_part": lambda c: c.requests.upload_part("a.bin", "up1", 1, b"x", b"m"),
    "complete": lambda c: c.requests.complete("a.bin", "up1", [b"m"]),
    "list_parts": lambda c: c.requests.list_parts("a.bin", "up1"),
    "abort": lambda c: c.requests.abort("data/a.bin", "up1"),
    "_open_uploads": lambda c: c._open_uploads(),
    "_delete_batch": lambda c: c._delete_batch(("a.bin",)),
}


def test_the_table_names_every_retried_call_of_the_copier() -> None:
    assert set(CALLS) == set(retried_calls())


@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_copy_request_against_a_store_that_is_down_ends_when_the_copier_is_stopped(
    name: str,
) -> None:
    store = DownStore()
    engine = stopped_copier_of(store)
    with pytest.raises(retrying.RetriesStopped, match="shutting down"):
        CALLS[name](engine)
    assert sum(store.calls.values()) == 1, f"retried after the stop: {dict(store.calls)}"


def test_the_sync_state_read_before_a_listing_ends_when_the_copier_is_stopped() -> None:
    target = DownStore()
    engine = copier(MemoryS3(), target)  # type: ignore[arg-type]
    target.engine = engine
    with pytest.raises(retrying.RetriesStopped, match="shutting down"):
        engine.plan()
    assert target.calls == Counter(get_object=1), "retried after the stop, or listed anyway"


class PartsFailing(MemoryS3):
    """A target whose part uploads fail to connect; the first one stops the copier."""

    def __init__(self) -> None:
        super().__init__()
        self.engine: DatasetCopier | None = None

    def upload_part(self, *_: Any, **__: Any) -> Any:
        self._call("upload_part", None)
        assert self.engine is not None
        self.engine.stop()
        raise down()


def test_a_run_stopped_during_a_part_upload_leaves_the_upload_open_and_recorded() -> None:
    source, target = MemoryS3(), PartsFailing()
    data = b"\x07" * (6 * MiB)  # two parts of our own layout (5 MiB + 1 MiB)
    source.put_object("datasets", "data/big.bin", data)
    engine = copier(source, target, multipart_threshold=5 * MiB, part_concurrency=1)
    target.engine = engine
    with pytest.raises(Stopped):  # never reported as a finished run
        engine.run()
    assert target.count("upload_part") == 1, "the part was retried after the stop"
    assert target.count("complete_multipart_upload") == 0
    assert target.count("abort_multipart_upload") == 0
    recorded = recorded_state(engine).uploads["big.bin"]
    assert recorded.upload_id in target.uploads, "the next run resumes this upload"
    assert recorded.source_etag == hashlib.md5(data).hexdigest()
    assert ("replicas", "data/big.bin") not in target.objects


class Saves:
    """A target whose PUTs fail to connect, counted; the state's GET finds nothing."""

    def __init__(self) -> None:
        self.puts = 0

    def put_object(self, **_: object) -> Any:
        self.puts += 1
        raise down()


def dirty_state(client: Saves, stopping: threading.Event) -> SyncState:
    state = SyncState(client, "replicas", "k", stopping=stopping)  # type: ignore[arg-type]
    state.record_verified("a.bin", ("e-2", "f-3"))
    return state


def test_a_save_after_the_stop_makes_its_one_try_and_no_retry() -> None:
    client, stopping = Saves(), threading.Event()
    state = dirty_state(client, stopping)
    stopping.set()
    with pytest.raises(retrying.RetriesStopped):
        state.save()
    assert client.puts == 1, "a stopped copy's save is tried once (it keeps what it recorded)"


class InstantEvent(threading.Event):
    """A stop event whose waits return at once."""

    def wait(self, timeout: float | None = None) -> bool:
        return self.is_set()


def test_a_kept_first_try_is_made_after_the_stop_and_never_retried() -> None:
    stopping, tries = InstantEvent(), Counter[str]()

    @retrying.transient_retry()
    def write() -> None:
        tries["write"] += 1
        raise down()

    stopping.set()
    with pytest.raises(retrying.RetriesStopped):
        retrying.stoppable(write, stopping, first_try_kept=True)()
    assert tries["write"] == 1
    with pytest.raises(retrying.RetriesStopped):
        retrying.stoppable(write, stopping)()
    assert tries["write"] == 1, "without first_try_kept no try follows the stop"


def test_an_unstopped_copier_retries_a_store_that_is_down_as_before() -> None:
    class Down(DownStore):
        def __getattr__(self, operation: str) -> Callable[..., Any]:
            def request(*_: object, **__: object) -> Any:
                self.calls[operation] += 1
                raise down()

            return request

    store = Down()
    engine = copier(store, store)  # type: ignore[arg-type]
    with pytest.raises(Exception, match="Could not connect"):
        engine.requests.head_source("a.bin")
    assert store.calls["head_object"] == TRIES
