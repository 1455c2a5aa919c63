"""The dataset copy engine against the sandbox's real S3 servers (SeaweedFS on-prem; SeaweedFS
and versitygw, or its SeaweedFS stand-in, in the clouds).

Every test copies from a fresh on-prem bucket to a fresh bucket on each cloud store.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig

from federator.sandbox import SandboxEnv, start_component, stop_component
from federator.storage.copying import DatasetCopier, TransferSettings
from federator.storage.endpoints import Endpoint, Location, RequestCounter, make_client
from federator.storage.leanpath import LeanS3
from federator.storage.listings import list_location
from federator.syncing.plans import DeletePolicy
from federator.syncing.replication import Replicator

pytestmark = pytest.mark.sandbox

MiB = 1024 * 1024
CLOUDS = ["cloud-a", "cloud-b"]
# Small parts keep the data small while still exercising multipart paths.
SMALL_PARTS = TransferSettings(
    object_concurrency=8, part_concurrency=4, part_size=5 * MiB, multipart_threshold=6 * MiB
)


def endpoint(sandbox: SandboxEnv, store: str) -> Endpoint:
    entry = sandbox.store(store)
    return Endpoint(
        name=store,
        url=entry["endpoint"],
        access_key_id=entry["access_key_id"],
        secret_access_key=entry["secret_access_key"],
        region=entry["region"],
    )


class Pair:
    """A fresh source bucket on-prem and a fresh target bucket on one cloud store."""

    def __init__(self, sandbox: SandboxEnv, make_bucket: Callable[..., str], cloud: str) -> None:
        self.cloud = cloud
        self.src_ep, self.dst_ep = endpoint(sandbox, "onprem"), endpoint(sandbox, cloud)
        self.src_bucket = make_bucket("onprem", prefix="syncsrc")
        self.dst_bucket = make_bucket(cloud, prefix="syncdst")
        self.src = make_client(self.src_ep)
        self.dst = make_client(self.dst_ep)
        self.source = Location(self.src_ep, self.src_bucket, "data/")
        self.target = Location(self.dst_ep, self.dst_bucket, "replica/")

    def copier(self, **kwargs: Any) -> DatasetCopier:
        kwargs.setdefault("settings", SMALL_PARTS)
        return DatasetCopier(self.source, self.target, **kwargs)

    def put(self, key: str, data: bytes, *, part_size: int | None = None) -> None:
        if part_size is None:
            self.src.put_object(Bucket=self.src_bucket, Key=f"data/{key}", Body=data)
            return
        config = TransferConfig(multipart_threshold=part_size, multipart_chunksize=part_size)
        self.src.upload_fileobj(io.BytesIO(data), self.src_bucket, f"data/{key}", Config=config)

    def etags(self, client: Any, bucket: str, prefix: str) -> dict[str, tuple[int, str]]:
        found = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for entry in page.get("Contents", []):
                found[entry["Key"][len(prefix) :]] = (entry["Size"], entry["ETag"])
        return found

    def source_etags(self) -> dict[str, tuple[int, str]]:
        return self.etags(self.src, self.src_bucket, "data/")

    def target_etags(self) -> dict[str, tuple[int, str]]:
        return self.etags(self.dst, self.dst_bucket, "replica/")

    def target_bytes(self, key: str) -> bytes:
        return self.dst.get_object(Bucket=self.dst_bucket, Key=f"replica/{key}")["Body"].read()

    def open_uploads(self) -> list[dict[str, Any]]:
        uploads: list[dict[str, Any]] = self.dst.list_multipart_uploads(Bucket=self.dst_bucket).get(
            "Uploads", []
        )
        return uploads


@pytest.fixture(params=CLOUDS)
def pair(
    request: pytest.FixtureRequest, sandbox: SandboxEnv, bucket_factory: Callable[..., str]
) -> Pair:
    return Pair(sandbox, bucket_factory, request.param)


def seed(pair: Pair) -> dict[str, bytes]:
    data = {f"small/{i:03d}": os.urandom(1000 + i) for i in range(30)}
    data["empty"] = b""
    data["odd key ü+%.bin"] = os.urandom(100)  # not a plain key: copied through boto3
    data["big/multipart"] = os.urandom(17 * MiB)  # 5 MiB parts: the layout is reproduced
    data["big/single"] = os.urandom(7 * MiB)  # one PUT at the source, parts at the target
    for key, body in data.items():
        pair.put(key, body, part_size=5 * MiB if key == "big/multipart" else None)
    return data


def test_first_sync_copies_everything_verified_and_a_rerun_copies_nothing_without_heads(
    pair: Pair,
) -> None:
    data = seed(pair)
    copier = pair.copier()
    report = copier.run()
    assert report.ok, report.failures
    assert report.copied == len(data)
    assert copier.lean_dst is not None
    assert copier.lean_dst.requests["PutObject"] == len(data) - 3  # two in parts, one odd key
    source, target = pair.source_etags(), pair.target_etags()
    assert set(target) == set(source)
    # The copies carry the source's ETag, except the one whose layout could not be kept.
    assert {k for k in source if source[k] != target[k]} == {"big/single"}
    for key, body in data.items():
        assert pair.target_bytes(key) == body, key

    counter = RequestCounter()
    copier = pair.copier()
    counter.attach(copier.src)
    counter.attach(copier.dst)
    again = copier.run()
    assert again.copied == 0
    assert again.plan.skipped == len(data)
    calls = counter.snapshot()
    assert calls.get("HeadObject", 0) == 0
    assert set(calls) <= {"ListObjectsV2", "GetObject", "ListMultipartUploads"}
    assert calls.get("GetObject", 0) == 1  # the sync state, not a data object
    assert copier.lean_src is not None
    assert copier.lean_dst is not None
    lean_calls = copier.lean_src.requests + copier.lean_dst.requests
    assert set(lean_calls) == {"ListObjectsV2"}, "the listings go the lean way, nothing else"


def test_a_changed_or_damaged_object_is_found_from_listings_and_copied_again(pair: Pair) -> None:
    data = seed(pair)
    assert pair.copier().run().ok
    pair.put("small/000", os.urandom(len(data["small/000"])))  # same size, new bytes
    damaged = os.urandom(len(data["small/001"]))
    pair.dst.put_object(Bucket=pair.dst_bucket, Key="replica/small/001", Body=damaged)
    report = pair.copier().run()
    assert sorted(c.key for c in report.plan.copies) == ["small/000", "small/001"]
    assert pair.target_bytes("small/001") == data["small/001"]
    assert pair.source_etags()["small/000"] == pair.target_etags()["small/000"]


def test_a_source_overwritten_mid_copy_is_detected_and_its_new_version_copied(pair: Pair) -> None:
    pair.put("big", os.urandom(20 * MiB), part_size=5 * MiB)
    new_version = os.urandom(12 * MiB)
    overwritten = threading.Event()

    def overwrite_after_first_part(_: int) -> None:
        if not overwritten.is_set():
            overwritten.set()
            pair.put("big", new_version, part_size=5 * MiB)

    settings = TransferSettings(part_concurrency=1, part_size=5 * MiB, multipart_threshold=6 * MiB)
    report = pair.copier(settings=settings).run(on_bytes=overwrite_after_first_part)
    assert report.ok, report.failures
    assert report.recopied_after_change == 1
    assert pair.target_bytes("big") == new_version
    assert pair.target_etags()["big"] == pair.source_etags()["big"]
    assert pair.open_uploads() == []


def test_a_sync_killed_mid_transfer_resumes_with_the_parts_already_sent(
    pair: Pair, tmp_path: Path
) -> None:
    size, part = 60 * MiB, 5 * MiB
    body = os.urandom(size)
    pair.put("huge", body, part_size=part)
    spec = {
        "src": [pair.src_ep.url, pair.src_ep.access_key_id, pair.src_ep.secret_access_key],
        "dst": [pair.dst_ep.url, pair.dst_ep.access_key_id, pair.dst_ep.secret_access_key],
        "buckets": [pair.src_bucket, pair.dst_bucket],
    }
    worker = subprocess.Popen(
        [sys.executable, "-c", KILLABLE_SYNC, json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        parts_sent = wait_for_parts(pair, at_least=3, timeout_s=60)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    assert worker.returncode == -signal.SIGKILL
    assert pair.target_etags() == {}  # nothing visible at the final key

    report = pair.copier(settings=TransferSettings(part_size=part, stale_upload_age_s=0)).run()
    assert report.ok, report.failures
    assert report.resumed_parts >= parts_sent
    assert report.bytes_copied == size - report.resumed_parts * part
    assert pair.target_bytes("huge") == body
    assert pair.target_etags()["huge"] == pair.source_etags()["huge"]
    assert pair.open_uploads() == []


# The worker sends parts one at a time, slowly, so the test can kill it between parts.
KILLABLE_SYNC = """
import json, sys, time
from federator.storage.copying import DatasetCopier, TransferSettings
from federator.storage.endpoints import Endpoint, Location
spec = json.loads(sys.argv[1])
src = Endpoint("onprem", *spec["src"])
dst = Endpoint("cloud", *spec["dst"])
settings = TransferSettings(part_concurrency=1, part_size=5 * 1024 * 1024)
copier = DatasetCopier(Location(src, spec["buckets"][0], "data/"),
                       Location(dst, spec["buckets"][1], "replica/"), settings=settings)
copier.run(on_bytes=lambda n: time.sleep(0.5))
"""


def wait_for_parts(pair: Pair, *, at_least: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for upload in pair.open_uploads():
            listed = pair.dst.list_parts(
                Bucket=pair.dst_bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
            count = len(listed.get("Parts", []))
            if count >= at_least:
                return count
        time.sleep(0.1)
    raise AssertionError(f"the worker did not send {at_least} parts in {timeout_s}s")


def test_deletes_over_the_cap_are_held_back_and_within_it_applied(pair: Pair) -> None:
    for i in range(20):
        pair.put(f"f{i:02d}", b"x" * 10)
    assert pair.copier().run().ok
    for i in range(10):
        pair.src.delete_object(Bucket=pair.src_bucket, Key=f"data/f{i:02d}")

    off = pair.copier().run()
    assert off.deleted == 0
    assert "deletes are off" in off.plan.delete_note

    capped = pair.copier(deletes=DeletePolicy(enabled=True, max_fraction=0.25)).run()
    assert capped.deleted == 0
    assert len(capped.plan.held_back_deletes) == 10
    assert len(pair.target_etags()) == 20

    allowed = pair.copier(deletes=DeletePolicy(enabled=True, max_fraction=0.5)).run()
    assert allowed.deleted == 10
    assert sorted(pair.target_etags()) == [f"f{i:02d}" for i in range(10, 20)]


def test_abandoned_multipart_uploads_under_the_target_are_aborted(pair: Pair) -> None:
    pair.put("a", b"a")
    pair.dst.create_multipart_upload(Bucket=pair.dst_bucket, Key="replica/leftover")
    fresh = pair.copier(settings=TransferSettings(stale_upload_age_s=3600)).run()
    assert fresh.aborted_uploads == 0  # too young: maybe another writer's
    old = pair.copier(settings=TransferSettings(stale_upload_age_s=0)).run()
    assert old.aborted_uploads == 1
    assert pair.open_uploads() == []


async def test_the_replicator_gates_on_bytes_remaining_until_the_replica_is_complete(
    pair: Pair,
) -> None:
    seed(pair)
    replicator = Replicator(lambda dataset, cluster: pair.copier())
    first = await replicator.ensure_replicated("ds", pair.cloud)
    assert not first.ready
    assert first.bytes_remaining == sum(size for size, _ in pair.source_etags().values())
    done = await replicator.sync_now("ds", pair.cloud)
    assert done.ready, done.message
    assert replicator.bytes_remaining("ds", pair.cloud) == 0
    await replicator.aclose()


@pytest.fixture
def restartable_target(sandbox: SandboxEnv) -> Iterator[Callable[[str], None]]:
    """`restart(store)`: crash (SIGKILL) a store's S3 server and start it again 2 s later."""
    restarted: list[str] = []

    def restart(store: str) -> None:
        restarted.append(store)
        assert stop_component(store, "s3", kill=True)
        time.sleep(2)
        start_component(store, "s3")

    yield restart
    for store in restarted:  # whatever happened, leave the store running
        start_component(store, "s3")


def test_a_store_restarted_mid_transfer_is_ridden_out_by_retries(
    pair: Pair, restartable_target: Callable[[str], None]
) -> None:
    data = {f"obj-{i:03d}": os.urandom(256 * 1024) for i in range(60)}
    for key, body in data.items():
        pair.put(key, body)
    restarted = threading.Event()
    sent = [0]

    def restart_once_a_third_is_sent(count: int) -> None:
        sent[0] += count
        if sent[0] > len(data) * 256 * 1024 // 3 and not restarted.is_set():
            restarted.set()
            threading.Thread(target=restartable_target, args=(pair.cloud,)).start()

    settings = TransferSettings(object_concurrency=2)
    report = pair.copier(settings=settings).run(on_bytes=restart_once_a_third_is_sent)
    assert restarted.is_set()
    assert report.ok, report.failures[:3]
    assert pair.target_etags() == pair.source_etags()


LISTING_KEYS = [
    "a",
    "odd key ü+%.bin",
    "dir/x&y<z>",
    "dir/sub/1",
    "plus+sign",
    "tilde~and=equals",
    ".federator/sync/state.json",  # the engine's own state: never listed as data
]


def test_the_lean_listing_reads_exactly_what_boto3_reads(pair: Pair) -> None:
    """The lean path's ListObjectsV2 (used by every sync's planning) against boto3's, on the
    on-prem SeaweedFS and on the cloud store, with keys that need escaping and several pages."""
    sides = (
        (pair.src_ep, pair.src, pair.src_bucket),
        (pair.dst_ep, pair.dst, pair.dst_bucket),
    )
    for ep, client, bucket in sides:
        for i, key in enumerate(LISTING_KEYS):
            client.put_object(Bucket=bucket, Key=f"replica/{key}", Body=os.urandom(10 + i))
        location = Location(ep, bucket, "replica/")
        lean = LeanS3(ep, pool_size=2)
        by_boto3 = list_location(client, location)
        by_lean = list_location(client, location, lean=lean)
        assert by_lean == by_boto3
        assert sorted(o.key for o in by_lean) == sorted(LISTING_KEYS[:-1])
        pages, token = [], None
        while True:
            page = lean.list_page(bucket, "replica/", token, max_keys=3)
            pages.append(page)
            token = page.next_token
            if token is None:
                break
        assert len(pages) == 3, ep.name
        listed = [entry[0] for page in pages for entry in page.entries]
        assert listed == sorted(f"replica/{key}" for key in LISTING_KEYS), ep.name
