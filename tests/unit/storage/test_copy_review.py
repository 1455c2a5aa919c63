"""Copy-engine faults found in review: sources whose parts differ in size, stores that answer
501 to HeadObject PartNumber, parts that kept running after their object failed, keys with "."
segments on the lean path, and per-object failures that did not name the store.

The S3 stores are an in-memory fake following S3's semantics for the calls the engine makes
(If-Match, ranges, multipart ETags); the lean-path test runs against moto's S3 server.
"""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError
from tenacity import stop_after_attempt, wait_none

from federator.storage import retrying
from federator.storage.copy_requests import CopyRequests
from federator.storage.copying import DatasetCopier, TransferSettings
from federator.storage.endpoints import Endpoint, Location, make_client
from federator.storage.leanpath import LeanS3
from federator.storage.syncstate import SyncState
from federator.syncing import parts as partlib
from tests.support.motoserver import moto_server

MiB = 1024 * 1024
ONPREM = Endpoint("onprem", "http://10.9.8.7:8333", "k1", "s1")
CLOUD = Endpoint("cloud-a", "http://10.9.8.8:8333", "k2", "s2")


def s3_error(status: int, code: str, operation: str) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": code}}
    response["ResponseMetadata"] = {"HTTPStatusCode": status}
    return ClientError(response, operation)


class Stored:
    def __init__(self, data: bytes, etag: str, part_sizes: list[int] | None = None) -> None:
        self.data, self.etag, self.part_sizes = data, etag, part_sizes


class MemoryS3:
    """One bucket namespace in memory; `calls` lists (operation, key); `honours_if_match=False`
    plays a store that ignores If-Match on GET."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], Stored] = {}
        self.uploads: dict[str, tuple[str, str, dict[int, tuple[bytes, str]]]] = {}
        self.calls: list[tuple[str, object]] = []
        self.honours_if_match = True
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def _call(self, operation: str, key: object) -> None:
        with self._lock:
            self.calls.append((operation, key))

    def count(self, operation: str) -> int:
        return sum(1 for op, _ in self.calls if op == operation)

    def _object(self, bucket: str, key: str, operation: str) -> Stored:
        found = self.objects.get((bucket, key))
        if found is None:
            raise s3_error(404, "NoSuchKey", operation)
        return found

    def put_object(self, Bucket: str, Key: str, Body: bytes, ContentMD5: str = "", **_: Any) -> Any:
        self._call("put_object", Key)
        md5 = hashlib.md5(Body)
        if ContentMD5 and base64.b64decode(ContentMD5) != md5.digest():
            raise s3_error(400, "BadDigest", "PutObject")
        self.objects[(Bucket, Key)] = Stored(Body, md5.hexdigest())
        return {"ETag": f'"{md5.hexdigest()}"'}

    def get_object(
        self, Bucket: str, Key: str, IfMatch: str | None = None, Range: str = "", **_: Any
    ) -> Any:
        self._call("get_object", Key)
        found = self._object(Bucket, Key, "GetObject")
        if self.honours_if_match and IfMatch is not None and IfMatch.strip('"') != found.etag:
            raise s3_error(412, "PreconditionFailed", "GetObject")
        data = found.data
        if Range:
            first, last = Range.removeprefix("bytes=").split("-")
            data = data[int(first) : int(last) + 1]
        return {"Body": io.BytesIO(data), "ETag": f'"{found.etag}"'}

    def head_object(
        self, Bucket: str, Key: str, PartNumber: int | None = None, IfMatch: str | None = None
    ) -> Any:
        self._call("head_object", PartNumber)
        found = self._object(Bucket, Key, "HeadObject")
        if IfMatch is not None and IfMatch.strip('"') != found.etag:
            raise s3_error(412, "PreconditionFailed", "HeadObject")
        answer: dict[str, Any] = {"ETag": f'"{found.etag}"', "ContentLength": len(found.data)}
        if PartNumber is not None and found.part_sizes:
            answer["ContentLength"] = found.part_sizes[PartNumber - 1]
            answer["PartsCount"] = len(found.part_sizes)
        return answer

    def list_objects_v2(self, Bucket: str, Prefix: str = "", **_: Any) -> Any:
        keys = sorted(k for b, k in self.objects if b == Bucket and k.startswith(Prefix))
        contents = [
            {
                "Key": k,
                "Size": len(self.objects[(Bucket, k)].data),
                "ETag": f'"{self.objects[(Bucket, k)].etag}"',
                "LastModified": datetime.now(UTC),
            }
            for k in keys
        ]
        return {"Contents": contents, "IsTruncated": False}

    def get_paginator(self, operation: str) -> Any:
        class Pages:
            def paginate(self, **_: Any) -> Iterator[Any]:
                yield {"Uploads": []}

        assert operation == "list_multipart_uploads"
        return Pages()

    def create_multipart_upload(self, Bucket: str, Key: str, **_: Any) -> Any:
        self._call("create_multipart_upload", Key)
        upload_id = f"up{next(self._ids)}"
        self.uploads[upload_id] = (Bucket, Key, {})
        return {"UploadId": upload_id}

    def upload_part(
        self, Bucket: str, Key: str, UploadId: str, PartNumber: int, Body: bytes, **_: Any
    ) -> Any:
        self._call("upload_part", PartNumber)
        if UploadId not in self.uploads:
            raise s3_error(404, "NoSuchUpload", "UploadPart")
        md5 = hashlib.md5(Body).hexdigest()
        self.uploads[UploadId][2][PartNumber] = (Body, md5)
        return {"ETag": f'"{md5}"'}

    def list_parts(self, UploadId: str, **_: Any) -> Any:
        parts = self.uploads[UploadId][2]
        listed = [
            {"PartNumber": n, "ETag": f'"{m}"', "Size": len(d)} for n, (d, m) in parts.items()
        ]
        return {"Parts": listed, "IsTruncated": False}

    def complete_multipart_upload(
        self, Bucket: str, Key: str, UploadId: str, MultipartUpload: Any, **_: Any
    ) -> Any:
        self._call("complete_multipart_upload", Key)
        stored = self.uploads.pop(UploadId)[2]
        chosen = [stored[p["PartNumber"]] for p in MultipartUpload["Parts"]]
        etag = partlib.multipart_etag([bytes.fromhex(md5) for _, md5 in chosen])
        data = b"".join(d for d, _ in chosen)
        self.objects[(Bucket, Key)] = Stored(data, etag, [len(d) for d, _ in chosen])
        return {"ETag": f'"{etag}"'}

    def abort_multipart_upload(self, UploadId: str, **_: Any) -> Any:
        self._call("abort_multipart_upload", UploadId)
        self.uploads.pop(UploadId, None)
        return {}

    def put_in_parts(self, bucket: str, key: str, chunks: list[bytes]) -> str:
        upload_id = self.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        for number, chunk in enumerate(chunks, start=1):
            self.upload_part(bucket, key, upload_id, number, chunk)
        numbers = [{"PartNumber": n} for n in range(1, len(chunks) + 1)]
        answer = self.complete_multipart_upload(bucket, key, upload_id, {"Parts": numbers})
        return str(answer["ETag"]).strip('"')


def copier(source: MemoryS3, target: MemoryS3, **settings: Any) -> DatasetCopier:
    return DatasetCopier(
        Location(ONPREM, "datasets", "data/"),
        Location(CLOUD, "replicas", "data/"),
        settings=TransferSettings(lean_requests=False, **settings),
        source_client=source,  # type: ignore[arg-type]
        target_client=target,  # type: ignore[arg-type]
    )


def recorded_state(copy: DatasetCopier) -> SyncState:
    return SyncState.load(copy.dst, copy.source, copy.target)


def chunks_of(*sizes_mib: int) -> list[bytes]:
    return [bytes([n]) * size * MiB for n, size in enumerate(sizes_mib, start=1)]


# -- 1. a multipart source whose parts differ in size --------------------------------------------


def test_a_source_whose_parts_differ_in_size_is_copied_once_and_its_pair_recorded() -> None:
    source, target = MemoryS3(), MemoryS3()
    chunks = chunks_of(6, 5, 5)  # part 1's size predicts 6, 6, 4: same count, other ETag
    etag = source.put_in_parts("datasets", "data/uneven.bin", chunks)
    copy = copier(source, target)

    report = copy.run()

    assert report.failures == ()
    assert (report.copied, report.recopied_after_change) == (1, 0)
    assert target.objects[("replicas", "data/uneven.bin")].data == b"".join(chunks)
    assert source.count("get_object") == 3, "each part read once: no recopy of a 'changed' source"
    written = target.objects[("replicas", "data/uneven.bin")].etag
    assert recorded_state(copy).verified == {"uneven.bin": (etag, written)}
    plan, _ = copy.plan()
    assert plan.copies == (), "the recorded pair makes the next run skip the object"


def test_parts_that_do_not_compose_still_mean_a_changed_source_when_the_source_changed() -> None:
    """A store that ignores If-Match on GET: the overwrite shows only in the composed ETag, and
    the HEAD that tells it from a wrong layout guess sees the new version, which is copied."""
    source, target = MemoryS3(), MemoryS3()
    source.honours_if_match = False
    source.put_in_parts("datasets", "data/x.bin", chunks_of(5, 5, 1))
    newer = [bytes([9]) * 5 * MiB, bytes([8]) * 5 * MiB, bytes([7]) * MiB]
    reads = itertools.count(1)
    original_get = source.get_object

    def overwritten_after_the_first_read(**request: Any) -> Any:
        answer = original_get(**request)
        if next(reads) == 1:
            source.put_in_parts("datasets", "data/x.bin", newer)
        return answer

    source.get_object = overwritten_after_the_first_read  # type: ignore[method-assign]

    report = copier(source, target, part_concurrency=1).run()  # parts read one by one

    assert report.failures == ()
    assert report.recopied_after_change == 1
    assert target.objects[("replicas", "data/x.bin")].data == b"".join(newer)


# -- 2. 501 NotImplemented to HeadObject PartNumber ----------------------------------------------


def test_501_not_implemented_is_an_answer_not_a_transient_fault() -> None:
    assert not retrying.is_transient(s3_error(501, "NotImplemented", "HeadObject"))
    assert not retrying.is_transient(s3_error(400, "NotImplemented", "HeadObject"))
    assert retrying.is_transient(s3_error(502, "BadGateway", "HeadObject"))


def test_a_store_answering_501_to_part_number_is_copied_with_the_engines_own_layout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Were 501 retried, these three quick attempts would end in failure instead of 90 s.
    policy = vars(CopyRequests.first_part_size)["retry"]
    monkeypatch.setattr(policy, "stop", stop_after_attempt(3))
    monkeypatch.setattr(policy, "wait", wait_none())
    source, target = MemoryS3(), MemoryS3()
    chunks = chunks_of(5, 1)
    etag = source.put_in_parts("datasets", "data/big.bin", chunks)
    original_head = source.head_object

    def without_part_numbers(**request: Any) -> Any:
        if request.get("PartNumber") is not None:
            source.calls.append(("head_part", None))
            raise s3_error(501, "NotImplemented", "HeadObject")
        return original_head(**request)

    source.head_object = without_part_numbers  # type: ignore[method-assign]
    copy = copier(source, target)  # its own layout: one 6 MiB part of 16 MiB

    report = copy.run()

    assert report.failures == ()
    assert source.count("head_part") == 1
    assert target.objects[("replicas", "data/big.bin")].data == b"".join(chunks)
    assert recorded_state(copy).verified["big.bin"][0] == etag


# -- 3. a failed part stops its object's other parts ---------------------------------------------


def test_a_part_that_fails_stops_the_objects_other_parts() -> None:
    source, target = MemoryS3(), MemoryS3()
    source.put_object(Bucket="datasets", Key="data/big.bin", Body=b"q" * 40 * 5 * MiB)
    original_upload = target.upload_part

    def part_one_refused(**request: Any) -> Any:
        if request["PartNumber"] == 1:
            raise s3_error(403, "AccessDenied", "UploadPart")
        time.sleep(0.02)
        return original_upload(**request)

    target.upload_part = part_one_refused  # type: ignore[method-assign]
    copy = copier(
        source, target, part_size=5 * MiB, multipart_threshold=5 * MiB, part_concurrency=2
    )

    report = copy.run()

    ((key, why),) = report.failures
    assert key == "big.bin"
    assert "AccessDenied" in why, why
    # Before: all 39 other parts were read and uploaded for an object already lost.
    assert target.count("upload_part") <= 3, target.count("upload_part")
    assert source.count("get_object") <= 4, source.count("get_object")


# -- 4. "." and ".." key segments on the lean path -----------------------------------------------


@pytest.mark.parametrize(
    ("key", "plain"),
    [
        ("data/./a.bin", False),
        ("data/../a.bin", False),
        ("./a.bin", False),
        ("data/.", False),
        ("data/..", False),
        ("..", False),
        ("data//a.bin", True),  # urllib3 sends empty segments as they are
        ("data/a/", True),
        ("data/.hidden/a..b/...", True),
    ],
)
def test_keys_with_dot_segments_do_not_take_the_lean_path(key: str, plain: bool) -> None:
    assert LeanS3.plain("bucket", key) is plain


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


def test_keys_with_dot_and_empty_segments_are_copied_to_the_same_key_with_lean_requests(
    moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, os.environ.get(name, "testing"))
    onprem = Endpoint("onprem", moto_url, "testing", "testing", connect_timeout_s=2)
    cloud = Endpoint("cloud-a", moto_url, "other", "testing", connect_timeout_s=2)
    s3 = make_client(onprem)
    s3.create_bucket(Bucket="dots-src")
    s3.create_bucket(Bucket="dots-dst")
    keys = ["data/run1/./metrics.json", "data/run1/../x.json", "data/run2//y.json"]
    for key in keys:
        s3.put_object(Bucket="dots-src", Key=key, Body=key.encode())
    copy = DatasetCopier(
        Location(onprem, "dots-src", "data/"),
        Location(cloud, "dots-dst", "data/"),
        settings=TransferSettings(lean_requests=True),
    )
    assert copy.lean_src is not None, "the lean path is on for these endpoints"

    report = copy.run()

    assert report.failures == ()
    assert report.copied == 3
    listed = s3.list_objects_v2(Bucket="dots-dst", Prefix="data/").get("Contents", [])
    assert sorted(o["Key"] for o in listed) == sorted(keys)
    for key in keys:
        assert s3.get_object(Bucket="dots-dst", Key=key)["Body"].read() == key.encode()


# -- 5. each object's failure names the store -----------------------------------------------------


def test_a_source_that_refuses_is_named_in_the_objects_failure() -> None:
    source, target = MemoryS3(), MemoryS3()
    source.put_object(Bucket="datasets", Key="data/a.bin", Body=b"a")

    def refused(**_: Any) -> Any:
        raise s3_error(403, "AccessDenied", "GetObject")

    source.get_object = refused  # type: ignore[method-assign]

    ((key, why),) = copier(source, target).run().failures

    assert key == "a.bin"
    assert "onprem" in why, why
    assert "AccessDenied" in why, why


def test_a_target_that_refuses_is_named_in_the_objects_failure() -> None:
    source, target = MemoryS3(), MemoryS3()
    source.put_object(Bucket="datasets", Key="data/a.bin", Body=b"a")
    original_put = target.put_object

    def refused(**request: Any) -> Any:
        if request["Key"] == "data/a.bin":
            raise s3_error(403, "AccessDenied", "PutObject")
        return original_put(**request)  # the sync state

    target.put_object = refused  # type: ignore[method-assign]

    ((key, why),) = copier(source, target).run().failures

    assert key == "a.bin"
    assert "cloud-a" in why, why
    assert "AccessDenied" in why, why
