"""Adaptive concurrency against a real S3 server that throttles: the copy engine sends fewer
requests at once while the store answers `503 SlowDown`, grows back afterwards, and still
delivers a complete, verified replica.

The throttling comes from the project's fault proxy (`tests/support/faultproxy.py`) in front of
the cloud store: from 30 % of the bytes on, every request is answered `503 SlowDown` for two
seconds. The on-prem side is not throttled, so its limit must stay where it was (the bound is
per endpoint).
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest
from boto3.s3.transfer import TransferConfig

from federator.sandbox import SandboxEnv
from federator.storage.copying import DatasetCopier, TransferSettings
from federator.storage.endpoints import Location, make_client
from tests.support.faultproxy import FaultProxy, Mode
from tests.support.stores import sandbox_endpoint

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(300)]

MiB = 1024 * 1024
SETTINGS = TransferSettings(
    object_concurrency=8, part_concurrency=4, part_size=5 * MiB, multipart_threshold=6 * MiB
)
CEILING = SETTINGS.object_concurrency + SETTINGS.part_concurrency


@pytest.fixture(params=["cloud-a", "cloud-b"])
def cloud(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def proxy(sandbox: SandboxEnv, cloud: str) -> Iterator[FaultProxy]:
    port = int(sandbox.store(cloud)["endpoint"].rsplit(":", 1)[1])
    with FaultProxy(("127.0.0.1", port)) as running:
        yield running


def sha256s(client: S3Client, bucket: str, prefix: str) -> dict[str, str]:
    found: dict[str, str] = {}
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
            found[entry["Key"][len(prefix) :]] = hashlib.sha256(body).hexdigest()
    return found


def test_503_slow_down_halves_the_stores_concurrency_and_the_replica_still_verifies(
    sandbox: SandboxEnv, bucket_factory: Callable[..., str], cloud: str, proxy: FaultProxy
) -> None:
    src_bucket = bucket_factory("onprem", prefix="thrsrc")
    dst_bucket = bucket_factory(cloud, prefix="thrdst")
    src = make_client(sandbox_endpoint(sandbox, "onprem"))
    for i in range(80):
        src.put_object(Bucket=src_bucket, Key=f"data/s/{i:03d}", Body=os.urandom(256 * 1024 + i))
    layout = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    src.upload_fileobj(io.BytesIO(os.urandom(17 * MiB)), src_bucket, "data/big", Config=layout)
    total = 80 * 256 * 1024 + sum(range(80)) + 17 * MiB

    copier = DatasetCopier(
        Location(sandbox_endpoint(sandbox, "onprem"), src_bucket, "data/"),
        Location(sandbox_endpoint(sandbox, cloud, url=proxy.url), dst_bucket, "replica/"),
        settings=SETTINGS,
    )
    sent = [0]
    lock = threading.Lock()
    pulse: list[threading.Thread] = []

    def throttle_from_30_percent(count: int) -> None:
        with lock:
            sent[0] += count
            due = sent[0] >= total * 0.3 and not pulse
            if due:
                pulse.append(proxy.pulse(Mode.HTTP_503, seconds=2.0))

    report = copier.run(on_bytes=throttle_from_30_percent)
    trajectory = [(c.cause, c.limit) for c in copier.target_limiter.changes]
    print(f"{cloud}: {copier.target_limiter.stats()}; limit changes {trajectory}")  # for -s

    assert pulse, "the throttling pulse must have been switched on mid-copy"
    assert proxy.stats.refused > 0, "the store must have answered 503 SlowDown"
    target = copier.target_limiter.stats()
    assert target.throttles > 0
    assert target.decreases >= 1
    assert target.lowest <= CEILING // 2, f"concurrency must drop at least by half: {target}"
    assert target.limit > target.lowest, f"and grow back once the store accepts again: {target}"
    assert [s.endpoint for s in report.throttling] == [cloud]
    source = copier.source_limiter.stats()
    assert (source.throttles, source.lowest, source.limit) == (0, CEILING, CEILING), (
        "on-prem was never throttled, so its own limit stays at the ceiling"
    )
    assert report.ok, report.failures[:3]
    dst = make_client(sandbox_endpoint(sandbox, cloud))  # checked directly, not through the proxy
    assert sha256s(dst, dst_bucket, "replica/") == sha256s(src, src_bucket, "data/")
    assert dst.list_multipart_uploads(Bucket=dst_bucket).get("Uploads", []) == []
