"""Every store request of the model registry stops retrying at shutdown, not only its blob copy.

A request against a store that is down is retried for 90 s (`transient_retry`) in a thread that
cannot be interrupted, and the process waits for its threads at exit, past the 25 s a SIGTERM
has (docs/reliability.md). Once the registry's `stopping` event is set (`Stores.stop_transfers`),
its listings, GETs (a blob's too), HEADs, PUTs (blobs, manifests, aliases), multipart creates,
part uploads and the leftover-upload abort are tried no more: the call raises
`retrying.RetriesStopped`. The writes that settle a blob's upload (its complete, its abort when
cut short) still make their first try after the stop, never a retry. The registry's guarantees
hold: no manifest is written for a version whose blobs did not all arrive, a blob cut short
leaves no upload open, and a manifest whose write was already sent is not undone.

No test sleeps: every retried call here makes at most five tries without waiting.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError
from tenacity import stop_after_attempt, wait_none

from federator import errors
from federator.storage import retrying
from federator.storage.endpoints import Location
from federator.storage.registry import ModelRegistry, sync_back
from federator.syncing import manifests
from federator.syncing.manifests import FileEntry, Manifest
from tests.unit.storage.test_registry_review import CLOUD, ONPREM, MemoryS3, MiB

TRIES = 5


def retried_calls() -> dict[str, Callable[..., Any]]:
    """The registry's S3 calls that retry (those `transient_retry` decorated)."""
    return {
        name: f for name, f in vars(ModelRegistry).items() if "retry" in getattr(f, "__dict__", {})
    }


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each retried call is tried at most five times, without waiting in between."""
    for function in retried_calls().values():
        policy = vars(function)["retry"]
        monkeypatch.setattr(policy, "stop", stop_after_attempt(TRIES))
        monkeypatch.setattr(policy, "wait", wait_none())


def down() -> EndpointConnectionError:
    return EndpointConnectionError(endpoint_url=f"{ONPREM.url}/models")


def registry(client: object, stopping: threading.Event, endpoint: Any = ONPREM) -> ModelRegistry:
    location = Location(endpoint, "models", "registry/")
    client_: Any = client
    return ModelRegistry(location, client_, part_size=5 * MiB, stopping=stopping)


class DownStore:
    """A store that is down: every request fails to connect, and the first one sets the stop
    (the SIGTERM comes while it is in flight)."""

    def __init__(self, stopping: threading.Event) -> None:
        self.calls: Counter[str] = Counter()
        self.stopping = stopping

    def __getattr__(self, operation: str) -> Callable[..., Any]:
        def request(*_: object, **__: object) -> Any:
            self.calls[operation] += 1
            self.stopping.set()
            raise down()

        return request

    def get_paginator(self, operation: str) -> Any:
        request = getattr(self, operation)  # the listing's requests are the pages

        class Pages:
            def paginate(self, **kwargs: Any) -> Iterator[Any]:
                yield request(**kwargs)

        return Pages()


# Each retried call, made with arguments that reach its request.
CALLS: dict[str, Callable[[ModelRegistry], object]] = {
    "_keys": lambda r: r._keys("registry/models/"),
    "_get": lambda r: r._get("models/llama/versions/1.json"),
    "_head": lambda r: r._head("registry/blobs/sha256/ab"),
    "_etag": lambda r: r._etag("registry/blobs/sha256/ab"),
    "_put": lambda r: r._put("registry/models/llama/versions/1.json", b"{}", if_none_match=True),
    "_upload_part": lambda r: r._upload_part("registry/blobs/sha256/ab", "u1", 1, b"x"),
    "_abort_leftover_uploads": lambda r: r._abort_leftover_uploads("registry/blobs/sha256/ab"),
    "_create_upload": lambda r: r._create_upload("registry/blobs/sha256/ab"),
    "_complete_upload": lambda r: r._complete_upload("registry/blobs/sha256/ab", "u1", ['"e"']),
    "_abort_upload": lambda r: r._abort_upload("registry/blobs/sha256/ab", "u1"),
    "_blob_from": lambda r: r._blob_from("registry/blobs/sha256/ab", 0),
}
# The writes that settle a blob's upload: made once even after the stop, never retried then.
SETTLING = {
    "_complete_upload": "complete_multipart_upload",
    "_abort_upload": "abort_multipart_upload",
}


def test_the_table_names_every_retried_call_of_the_registry() -> None:
    assert set(CALLS) == set(retried_calls())


@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_registry_request_against_a_store_that_is_down_ends_when_the_registry_is_stopped(
    name: str,
) -> None:
    stopping = threading.Event()
    store = DownStore(stopping)
    with pytest.raises(retrying.RetriesStopped, match="shutting down"):
        CALLS[name](registry(store, stopping))
    assert sum(store.calls.values()) == 1, f"retried after the stop: {dict(store.calls)}"


def test_a_call_made_after_the_stop_is_not_sent_at_all() -> None:
    stopping = threading.Event()
    store = DownStore(stopping)
    stopping.set()
    with pytest.raises(retrying.RetriesStopped):
        registry(store, stopping).versions("llama")
    assert not store.calls


@pytest.mark.parametrize("name", sorted(SETTLING))
def test_a_write_settling_an_upload_still_makes_its_first_try_after_the_stop(name: str) -> None:
    stopping = threading.Event()
    store = DownStore(stopping)
    stopping.set()
    with pytest.raises(retrying.RetriesStopped):
        CALLS[name](registry(store, stopping))
    assert store.calls == Counter({SETTLING[name]: 1})


def test_a_sync_back_to_a_registry_that_is_down_ends_when_it_is_stopped() -> None:
    stopping = threading.Event()
    onprem = DownStore(stopping)
    with pytest.raises(retrying.RetriesStopped, match="shutting down"):
        sync_back(registry(MemoryS3(), stopping, CLOUD), registry(onprem, stopping))
    assert onprem.calls == Counter(list_objects_v2=1), "retried after the stop"


def staged(data: bytes, *, name: str = "bert", version: str = "1") -> MemoryS3:
    """A staging store holding one version of one file."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    client = MemoryS3()
    client.objects["registry/" + manifests.blob_key(digest)] = (data, "e")
    manifest = Manifest(name, version, (FileEntry("w.bin", digest, len(data)),), "2026-11-30", {})
    client.objects["registry/" + manifests.manifest_key(name, version)] = (
        manifests.encode(manifest),
        "m",
    )
    return client


class BlobWritesDown(MemoryS3):
    """An on-prem store whose blob writes (PUTs and part uploads) fail to connect; the first
    one sets the stop."""

    def __init__(self, stopping: threading.Event) -> None:
        super().__init__()
        self.stopping = stopping
        self.calls: Counter[str] = Counter()

    def put_object(self, *, Key: str, Body: bytes, **kw: Any) -> Any:
        if "/blobs/" not in Key:
            return super().put_object(Key=Key, Body=Body, **kw)
        return self.fail("put_object")

    def upload_part(self, **_: Any) -> Any:
        return self.fail("upload_part")

    def complete_multipart_upload(self, **kw: Any) -> Any:
        self.calls["complete_multipart_upload"] += 1
        return super().complete_multipart_upload(**kw)

    def fail(self, operation: str) -> Any:
        self.calls[operation] += 1
        self.stopping.set()
        raise down()


@pytest.mark.parametrize(
    ("size", "request_cut_short"),
    [(1000, "put_object"), (6 * MiB, "upload_part")],  # sent whole; in two 5 MiB parts
)
def test_a_sync_back_stopped_while_a_blob_is_sent_publishes_nothing_and_leaves_no_upload(
    size: int, request_cut_short: str
) -> None:
    stopping = threading.Event()
    onprem_client = BlobWritesDown(stopping)
    staging = registry(staged(b"\x07" * size), stopping, CLOUD)
    onprem = registry(onprem_client, stopping)
    onprem.part_concurrency = 1
    report = sync_back(staging, onprem)
    assert onprem_client.calls[request_cut_short] == 1, "retried after the stop"
    assert report.versions_copied == ()
    ((version, why),) = report.failures
    assert version == "bert@1"
    # The part's own refusal, or the copy's check before the next part, whichever comes first.
    assert why.split(":")[0] in {"RetriesStopped", "RegistryStopped"}, why
    assert onprem_client.calls["complete_multipart_upload"] == 0
    assert onprem_client.uploads == {}, "the cut-short upload was aborted"
    assert onprem_client.objects == {}, "no manifest naming a blob that is not there"


class ManifestReplyLost(MemoryS3):
    """An on-prem store that applies a manifest's write but whose answer times out; the stop
    comes while that write is in flight."""

    def __init__(self, stopping: threading.Event) -> None:
        super().__init__()
        self.stopping = stopping
        self.manifest_writes = 0

    def put_object(self, *, Key: str, Body: bytes, **kw: Any) -> Any:
        if "/versions/" not in Key:
            return super().put_object(Key=Key, Body=Body, **kw)
        self.manifest_writes += 1
        self.stopping.set()
        self.lose_reply_of_put = 1
        return super().put_object(Key=Key, Body=Body, **kw)


def test_a_manifest_write_already_sent_at_the_stop_is_not_retried_nor_undone() -> None:
    stopping = threading.Event()
    onprem_client = ManifestReplyLost(stopping)
    staging = registry(staged(b"\x07" * 1000), stopping, CLOUD)
    onprem = registry(onprem_client, stopping)
    with pytest.raises(retrying.RetriesStopped):
        onprem.receive_version(staging, "bert", "1")
    assert onprem_client.manifest_writes == 1, "retried after the stop"
    stopping.clear()  # the next process's round
    assert onprem.versions("bert") == ["1"], "the write that landed stays"
    assert onprem.verify("bert", "1").ok, "and every blob it names is there"


def test_an_unstopped_registry_retries_a_store_that_is_down_as_before() -> None:
    class Down(DownStore):
        def __getattr__(self, operation: str) -> Callable[..., Any]:
            def request(*_: object, **__: object) -> Any:
                self.calls[operation] += 1
                raise down()

            return request

    store = Down(threading.Event())
    with pytest.raises(errors.StoreUnavailable, match="Could not connect"):
        registry(store, threading.Event())._head("registry/blobs/sha256/ab")
    assert store.calls["head_object"] == TRIES


def test_a_lost_reply_is_still_retried_into_success_while_not_stopped() -> None:
    client = MemoryS3()
    client.lose_reply_of_put = 2  # the blob's and the manifest's writes land; no answer comes
    onprem, stopping = registry(client, threading.Event()), threading.Event()
    onprem.receive_version(registry(staged(b"\x07" * 1000), stopping, CLOUD), "bert", "1")
    assert onprem.versions("bert") == ["1"]
    assert onprem.verify("bert", "1").ok
