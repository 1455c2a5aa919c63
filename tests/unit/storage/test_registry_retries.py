"""A blob copy's one-shot requests are retried like the registry's others.

botocore's own retries are off (`endpoints`), so a request the registry sends once fails on one
503, throttle or connection reset; for a blob copy that failed the whole blob, whose next round
sent every part again (a multi-GB model uploaded twice). Each test below injects one fault at
the client (the Nth call of an operation raises a 503 or a connection error, before the store
applies it or after, its answer lost) into: the multipart create, the complete, the abort on
the error path, the source blob's GET, and a read of its body that breaks mid-stream (resumed
with a Range GET from the bytes already read). Then the sync-back report says how many versions
a shutdown left for the next round.

No test sleeps: every retried call here makes at most five tries without waiting.
"""

from __future__ import annotations

import hashlib
import io
import random
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import (
    EndpointConnectionError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from tenacity import stop_after_attempt, wait_none
from urllib3.exceptions import ProtocolError

from federator import errors
from federator.storage.endpoints import Location
from federator.storage.registry import BlobMismatch, ModelRegistry, sync_back
from federator.storage.retrying import StoreRefused
from federator.syncing import manifests
from federator.syncing.manifests import FileEntry, Manifest
from tests.unit.storage.test_registry_review import CLOUD, ONPREM, MemoryS3, MiB, s3_error

TRIES = 5
PARTS = 6 * MiB  # a blob sent in two parts of 5 MiB
WHOLE = 1000  # a blob sent in one PUT


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each retried call is tried at most five times, without waiting in between."""
    for function in vars(ModelRegistry).values():
        policy = getattr(function, "__dict__", {}).get("retry")
        if policy is not None:
            monkeypatch.setattr(policy, "stop", stop_after_attempt(TRIES))
            monkeypatch.setattr(policy, "wait", wait_none())


def unavailable(operation: str) -> BaseException:
    return s3_error(503, "ServiceUnavailable", operation)


def reset() -> BaseException:
    return EndpointConnectionError(endpoint_url=f"{ONPREM.url}/models")


def stream_broken() -> BaseException:
    return ResponseStreamingError(error=ProtocolError("Connection broken: IncompleteRead"))


class CutBody:
    """A body whose connection breaks after `cut_at` bytes: reads return the bytes up to there,
    then raise (a read of everything at once raises at once, its bytes lost)."""

    def __init__(self, data: bytes, cut_at: int, error: BaseException) -> None:
        self._data = io.BytesIO(data[:cut_at])
        self._error = error

    def read(self, amt: int | None = None) -> bytes:
        chunk = self._data.read(amt) if amt is not None else b""
        if chunk:
            return chunk
        raise self._error


class FaultyS3(MemoryS3):
    """MemoryS3 that lists its open uploads, answers Range GETs (206 with ContentRange), and
    fails chosen calls (`fail`) or cuts the body of chosen GETs (`cut`)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()
        self.faults: dict[tuple[str, int], tuple[BaseException, bool]] = {}
        self.cuts: dict[int, tuple[int, BaseException]] = {}
        self.upload_keys: dict[str, str] = {}
        self.ranges: list[str] = []
        self.parts_sent = 0
        self.honours_range = True

    def fail(
        self, operation: str, nth: int, error: BaseException, *, applied: bool = False
    ) -> None:
        """The `nth` call of `operation` raises `error`: before the store acts, or after it
        acted (`applied`: the answer was lost)."""
        self.faults[(operation, nth)] = (error, applied)

    def cut(self, nth_get: int, cut_at: int, error: BaseException) -> None:
        """The body of the `nth_get` GET breaks after `cut_at` bytes of it."""
        self.cuts[nth_get] = (cut_at, error)

    def _call(self, operation: str, act: Callable[[], Any]) -> Any:
        self.calls[operation] += 1
        error, applied = self.faults.get((operation, self.calls[operation]), (None, False))
        if error is not None and not applied:
            raise error
        answer = act()
        if error is not None:
            raise error
        return answer

    def create_multipart_upload(self, *, Key: str, **kw: Any) -> Any:
        def create() -> Any:
            answer = super(FaultyS3, self).create_multipart_upload(Key=Key, **kw)
            self.upload_keys[answer["UploadId"]] = Key
            return answer

        return self._call("create_multipart_upload", create)

    def list_multipart_uploads(self, **_: Any) -> Any:
        def listed() -> Any:
            return {"Uploads": [{"Key": self.upload_keys[u], "UploadId": u} for u in self.uploads]}

        return self._call("list_multipart_uploads", listed)

    def upload_part(self, **kw: Any) -> Any:
        self.parts_sent += 1
        return self._call("upload_part", lambda: super(FaultyS3, self).upload_part(**kw))

    def complete_multipart_upload(self, *, UploadId: str, **kw: Any) -> Any:
        def complete() -> Any:
            if UploadId not in self.uploads:
                raise s3_error(404, "NoSuchUpload", "CompleteMultipartUpload")
            return super(FaultyS3, self).complete_multipart_upload(UploadId=UploadId, **kw)

        return self._call("complete_multipart_upload", complete)

    def abort_multipart_upload(self, *, UploadId: str, **kw: Any) -> Any:
        def abort() -> Any:
            if UploadId not in self.uploads:
                raise s3_error(404, "NoSuchUpload", "AbortMultipartUpload")
            return super(FaultyS3, self).abort_multipart_upload(UploadId=UploadId, **kw)

        return self._call("abort_multipart_upload", abort)

    def get_object(self, *, Key: str, Range: str | None = None, **kw: Any) -> Any:
        def get() -> Any:
            answer = dict(super(FaultyS3, self).get_object(Key=Key, **kw))
            data: bytes = answer["Body"].read()
            if Range is not None:
                self.ranges.append(Range)
                if self.honours_range:
                    start = int(Range.removeprefix("bytes=").removesuffix("-"))
                    answer["ContentRange"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                    data = data[start:]
            cut = self.cuts.get(self.calls["get_object"])
            answer["Body"] = io.BytesIO(data) if cut is None else CutBody(data, *cut)
            return answer

        return self._call("get_object", get)


def registry(
    client: MemoryS3, endpoint: Any = ONPREM, stopping: threading.Event | None = None
) -> ModelRegistry:
    location = Location(endpoint, "models", "registry/")
    client_: Any = client
    return ModelRegistry(location, client_, part_size=5 * MiB, stopping=stopping)


def blob(size: int, seed: int = 7) -> tuple[bytes, FileEntry]:
    """Bytes that do not repeat (a resume at the wrong offset would not hash right)."""
    data = random.Random(seed).randbytes(size)
    return data, FileEntry("w.bin", "sha256:" + hashlib.sha256(data).hexdigest(), size)


def staging_with(*blobs: tuple[bytes, FileEntry]) -> FaultyS3:
    client = FaultyS3()
    for data, entry in blobs:
        client.objects["registry/" + manifests.blob_key(entry.digest)] = (data, "e")
    return client


def copy(size: int, staging: FaultyS3, onprem: FaultyS3) -> tuple[bytes, FileEntry]:
    """Copy a blob of `size` bytes from `staging` (the source) into `onprem`; it must arrive."""
    data, entry = blob(size)
    staging.objects["registry/" + manifests.blob_key(entry.digest)] = (data, "e")
    sent = registry(onprem).receive_blob(registry(staging, CLOUD), entry)
    assert sent == size
    assert onprem.objects["registry/" + manifests.blob_key(entry.digest)][0] == data
    return data, entry


# -- the multipart create ------------------------------------------------------------------------


@pytest.mark.parametrize("error", [unavailable("CreateMultipartUpload"), reset()])
def test_a_create_that_fails_once_is_retried_and_the_blob_arrives(error: BaseException) -> None:
    onprem = FaultyS3()
    onprem.fail("create_multipart_upload", 1, error)
    copy(PARTS, FaultyS3(), onprem)
    assert onprem.calls["create_multipart_upload"] == 2
    assert onprem.uploads == {}


def test_a_create_whose_answer_was_lost_leaves_no_upload_open() -> None:
    onprem = FaultyS3()
    onprem.fail(
        "create_multipart_upload", 1, ReadTimeoutError(endpoint_url=ONPREM.url), applied=True
    )
    copy(PARTS, FaultyS3(), onprem)
    assert onprem.calls["create_multipart_upload"] == 2
    assert onprem.uploads == {}, "the upload the first try opened was aborted"


# -- the complete --------------------------------------------------------------------------------


@pytest.mark.parametrize("error", [unavailable("CompleteMultipartUpload"), reset()])
def test_a_complete_that_fails_once_is_retried_and_no_part_is_sent_again(
    error: BaseException,
) -> None:
    onprem = FaultyS3()
    onprem.fail("complete_multipart_upload", 1, error)
    copy(PARTS, FaultyS3(), onprem)
    assert onprem.calls["complete_multipart_upload"] == 2
    assert onprem.parts_sent == 2
    assert onprem.uploads == {}


def test_a_complete_whose_answer_was_lost_counts_as_done_when_its_retry_finds_no_upload() -> None:
    onprem = FaultyS3()
    # The store completes the upload; its answer is lost; the retry meets NoSuchUpload.
    onprem.fail("complete_multipart_upload", 1, reset(), applied=True)
    data, entry = blob(PARTS)
    staging = staging_with((data, entry))
    manifest = Manifest("bert", "1", (entry,), "2026-11-30", {})
    staging.objects["registry/" + manifests.manifest_key("bert", "1")] = (
        manifests.encode(manifest),
        "m",
    )
    target = registry(onprem)
    assert target.receive_version(registry(staging, CLOUD), "bert", "1") == (1, PARTS)
    assert onprem.calls["complete_multipart_upload"] == 2
    assert onprem.parts_sent == 2, "no part sent again"
    assert target.versions("bert") == ["1"]
    assert target.verify("bert", "1").ok


def test_a_complete_that_finds_no_upload_and_no_blob_still_fails() -> None:
    onprem = FaultyS3()
    onprem.fail("complete_multipart_upload", 1, s3_error(404, "NoSuchUpload", "Complete"))
    data, entry = blob(PARTS)
    with pytest.raises(StoreRefused, match="NoSuchUpload"):
        registry(onprem).receive_blob(registry(staging_with((data, entry)), CLOUD), entry)
    assert "registry/" + manifests.blob_key(entry.digest) not in onprem.objects


# -- the abort on the error path -----------------------------------------------------------------


def corrupt_source(size: int) -> tuple[FaultyS3, FileEntry]:
    """A source whose blob's bytes do not hash to its name: the copy fails its digest check."""
    data, entry = blob(size)
    staging = staging_with((data, entry))
    staging.objects["registry/" + manifests.blob_key(entry.digest)] = (b"\x00" * size, "e")
    return staging, entry


@pytest.mark.parametrize(
    "error",
    [
        unavailable("AbortMultipartUpload"),
        reset(),
        s3_error(403, "AccessDenied", "AbortMultipartUpload"),
    ],
)
def test_an_abort_that_fails_does_not_hide_why_the_blob_failed(error: BaseException) -> None:
    staging, entry = corrupt_source(PARTS)
    onprem = FaultyS3()
    for nth in range(1, TRIES + 1):
        onprem.fail("abort_multipart_upload", nth, error)
    with pytest.raises(BlobMismatch, match="read as sha256"):
        registry(onprem).receive_blob(registry(staging, CLOUD), entry)


def test_an_abort_that_fails_once_is_retried_and_leaves_no_upload() -> None:
    staging, entry = corrupt_source(PARTS)
    onprem = FaultyS3()
    onprem.fail("abort_multipart_upload", 1, unavailable("AbortMultipartUpload"))
    with pytest.raises(BlobMismatch):
        registry(onprem).receive_blob(registry(staging, CLOUD), entry)
    assert onprem.calls["abort_multipart_upload"] == 2
    assert onprem.uploads == {}


def test_an_abort_that_finds_no_upload_counts_as_aborted() -> None:
    staging, entry = corrupt_source(PARTS)
    onprem = FaultyS3()
    # The store aborts the upload; its answer is lost; the retry meets NoSuchUpload.
    onprem.fail("abort_multipart_upload", 1, reset(), applied=True)
    with pytest.raises(BlobMismatch):
        registry(onprem).receive_blob(registry(staging, CLOUD), entry)
    assert onprem.calls["abort_multipart_upload"] == 2
    assert onprem.uploads == {}


# -- the source blob's GET and its body ----------------------------------------------------------


@pytest.mark.parametrize("size", [WHOLE, PARTS])
@pytest.mark.parametrize("error", [unavailable("GetObject"), reset()])
def test_a_source_blob_whose_get_fails_once_is_opened_again(
    size: int, error: BaseException
) -> None:
    staging = FaultyS3()
    staging.fail("get_object", 1, error)
    copy(size, staging, FaultyS3())
    assert staging.calls["get_object"] == 2


@pytest.mark.parametrize(
    ("size", "cut_at"),
    [(WHOLE, 400), (PARTS, 3 * MiB + 17), (PARTS, 5 * MiB), (PARTS, 5 * MiB + 1)],
)
@pytest.mark.parametrize("error", [stream_broken(), ReadTimeoutError(endpoint_url=CLOUD.url)])
def test_a_read_that_breaks_mid_stream_goes_on_from_the_bytes_already_read(
    size: int, cut_at: int, error: BaseException
) -> None:
    staging = FaultyS3()
    staging.cut(1, cut_at, error)
    onprem = FaultyS3()
    copy(size, staging, onprem)  # arrives whole: the SHA-256 over the stream matched its name
    # A blob sent whole is read in one go, whose bytes the break loses: read again from 0.
    offset = 0 if size == WHOLE else cut_at
    assert staging.ranges == ([f"bytes={offset}-"] if offset else [])
    assert staging.calls["get_object"] == 2
    assert onprem.parts_sent == (2 if size == PARTS else 0), "each part sent once"


def test_a_body_shorter_than_its_length_is_read_on_from_where_it_stopped() -> None:
    staging = FaultyS3()
    staging.cut(1, 2 * MiB, IncompleteReadError(actual_bytes=2 * MiB, expected_bytes=PARTS))
    copy(PARTS, staging, FaultyS3())
    assert staging.ranges == [f"bytes={2 * MiB}-"]


def test_a_read_that_breaks_at_every_resume_without_a_byte_gives_up() -> None:
    staging = FaultyS3()
    staging.cut(1, MiB, stream_broken())
    for nth in range(2, 10):
        staging.cut(nth, 0, stream_broken())
    data, entry = blob(PARTS)
    staging.objects["registry/" + manifests.blob_key(entry.digest)] = (data, "e")
    with pytest.raises(errors.StoreUnavailable, match="reading from response stream"):
        registry(FaultyS3()).receive_blob(registry(staging, CLOUD), entry)
    assert staging.calls["get_object"] == 4  # the first GET and three resumes


def test_a_store_that_ignores_the_range_is_not_taken_for_the_rest_of_the_blob() -> None:
    staging = FaultyS3()
    staging.honours_range = False
    staging.cut(1, 3 * MiB, stream_broken())
    data, entry = blob(PARTS)
    staging.objects["registry/" + manifests.blob_key(entry.digest)] = (data, "e")
    onprem = FaultyS3()
    with pytest.raises(BlobMismatch, match=f"asked for bytes {3 * MiB}- .* got the whole blob"):
        registry(onprem).receive_blob(registry(staging, CLOUD), entry)
    assert onprem.uploads == {}


# -- what a shutdown leaves for the next round ---------------------------------------------------


class StopsAtFirstManifest(FaultyS3):
    """An on-prem store during whose first manifest write the process is told to stop."""

    def __init__(self, stopping: threading.Event) -> None:
        super().__init__()
        self.stopping = stopping

    def put_object(self, *, Key: str, Body: bytes, **kw: Any) -> Any:
        if "/versions/" in Key:
            self.stopping.set()
        return super().put_object(Key=Key, Body=Body, **kw)


def test_sync_back_says_how_many_versions_a_stop_left_for_the_next_round() -> None:
    staging = FaultyS3()
    for number in range(1, 5):
        data, entry = blob(WHOLE, seed=number)
        staging.objects["registry/" + manifests.blob_key(entry.digest)] = (data, "e")
        for name in ("bert", "gpt"):
            manifest = Manifest(name, str(number), (entry,), "2026-11-30", {})
            key = "registry/" + manifests.manifest_key(name, str(number))
            staging.objects[key] = (manifests.encode(manifest), "m")
    stopping = threading.Event()
    onprem = StopsAtFirstManifest(stopping)
    report = sync_back(
        registry(staging, CLOUD, stopping),
        registry(onprem, ONPREM, stopping),
        only=lambda name: name == "bert",
    )
    assert report.versions_copied == ("bert@1",)
    assert report.left_for_next_round == 3  # bert 2, 3 and 4; gpt is not asked for
    assert report.failures == ()
    stopping.clear()  # the next round copies them
    again = sync_back(registry(staging, CLOUD), registry(onprem), only=lambda n: n == "bert")
    assert again.versions_copied == ("bert@2", "bert@3", "bert@4")
    assert (again.versions_present, again.left_for_next_round) == (1, 0)
