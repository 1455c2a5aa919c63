"""The copy engine under S3 faults: slow, cut, throttled, partitioned stores; racing copiers;
an emptied source prefix (anchors R10, R11, R16; issue 9 "S3 store killed mid-transfer,
slowed down, or answering errors").

Each test copies from a fresh on-prem bucket to a fresh cloud bucket with the TCP fault proxy
(`tests/support/faultproxy.py`) in front of one store, switches a fault on while the copy runs
(triggered by the bytes sent, never by a sleep), and then checks from outside, with plain
boto3: nothing lost, nothing unexpected, every object's SHA-256 equal to its source's, no
upload left open (`checks.check_replica_equals`).

Already covered by the sync engineer and not repeated here (tests/integration/test_sync_engine.py):
the target store SIGKILLed and restarted mid-transfer, a sync SIGKILLed mid-upload and resumed,
a source overwritten mid-copy, the delete cap at a fraction, abandoned uploads; and
(test_registry_sandbox.py) two publishers racing for one model version.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig

from federator import policy
from federator.sandbox import SandboxEnv
from federator.storage.copying import DatasetCopier, TransferSettings
from federator.storage.endpoints import Endpoint, Location, make_client
from federator.storage.stores import Stores
from tests.reliability import checks
from tests.support import configs
from tests.support.faultproxy import FaultProxy, Mode

pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(240)]

MiB = 1024 * 1024
SMALL_PARTS = TransferSettings(
    object_concurrency=6, part_concurrency=4, part_size=5 * MiB, multipart_threshold=6 * MiB
)


def endpoint(sandbox: SandboxEnv, store: str, **overrides: Any) -> Endpoint:
    entry = sandbox.store(store)
    plain = Endpoint(
        name=store,
        url=entry["endpoint"],
        access_key_id=entry["access_key_id"],
        secret_access_key=entry["secret_access_key"],
        region=entry["region"],
    )
    return replace(plain, **overrides)


class Setup:
    """A seeded on-prem source bucket and an empty cloud bucket; a proxy in front of one."""

    def __init__(self, sandbox: SandboxEnv, make_bucket: Callable[..., str], cloud: str) -> None:
        self.sandbox = sandbox
        self.cloud = cloud
        self.src_bucket = make_bucket("onprem", prefix="relsrc")
        self.dst_bucket = make_bucket(cloud, prefix="reldst")
        self.src = make_client(endpoint(sandbox, "onprem"))
        self.dst = make_client(endpoint(sandbox, cloud))
        self.source = checks.Place(self.src, self.src_bucket, "data/")
        self.replica = checks.Place(self.dst, self.dst_bucket, "replica/")

    def seed(self, *, small: int = 40, big: bool = True) -> dict[str, str]:
        for i in range(small):
            self.src.put_object(
                Bucket=self.src_bucket, Key=f"data/s/{i:03d}", Body=os.urandom(256 * 1024 + i)
            )
        if big:
            layout = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
            self.src.upload_fileobj(
                io.BytesIO(os.urandom(17 * MiB)), self.src_bucket, "data/big/multi", Config=layout
            )
            self.src.put_object(
                Bucket=self.src_bucket, Key="data/big/single", Body=os.urandom(7 * MiB)
            )
        return self.source.digests()

    def total_bytes(self) -> int:
        sizes = 0
        for page in self.src.get_paginator("list_objects_v2").paginate(
            Bucket=self.src_bucket, Prefix="data/"
        ):
            sizes += sum(e["Size"] for e in page.get("Contents", []))
        return sizes

    def copier(
        self, *, src_url: str | None = None, dst_url: str | None = None, **endpoint_overrides: Any
    ) -> DatasetCopier:
        src_ep = endpoint(self.sandbox, "onprem")
        dst_ep = endpoint(self.sandbox, self.cloud)
        if src_url:
            src_ep = replace(src_ep, url=src_url, **endpoint_overrides)
        if dst_url:
            dst_ep = replace(dst_ep, url=dst_url, **endpoint_overrides)
        return DatasetCopier(
            Location(src_ep, self.src_bucket, "data/"),
            Location(dst_ep, self.dst_bucket, "replica/"),
            settings=SMALL_PARTS,
        )


@pytest.fixture(params=["cloud-a", "cloud-b"])
def setup(
    request: pytest.FixtureRequest, sandbox: SandboxEnv, bucket_factory: Callable[..., str]
) -> Setup:
    return Setup(sandbox, bucket_factory, request.param)


@pytest.fixture
def cloud_a(sandbox: SandboxEnv, bucket_factory: Callable[..., str]) -> Setup:
    return Setup(sandbox, bucket_factory, "cloud-a")


def port_of(url: str) -> tuple[str, int]:
    host, port = url.rsplit("//", 1)[1].split(":")
    return host, int(port)


@pytest.fixture
def target_proxy(setup: Setup) -> Iterator[FaultProxy]:
    with FaultProxy(port_of(setup.sandbox.store(setup.cloud)["endpoint"])) as proxy:
        yield proxy


class Trigger:
    """Calls `fire()` once, when the copy has sent `at_fraction` of `total` bytes (R10: mid-
    transfer, decided by progress, not by a timer)."""

    def __init__(self, total: int, at_fraction: float, fire: Callable[[], object]) -> None:
        self._at = int(total * at_fraction)
        self._fire = fire
        self._sent = 0
        self._lock = threading.Lock()
        self.fired = threading.Event()

    def __call__(self, count: int) -> None:
        with self._lock:
            self._sent += count
            due = self._sent >= self._at and not self.fired.is_set()
            if due:
                self.fired.set()
        if due:
            self._fire()


# ---- faults at the target store ------------------------------------------------------------


def test_a_slowed_down_store_gets_every_object_complete_and_verified(
    setup: Setup, target_proxy: FaultProxy
) -> None:
    """R10 (bandwidth): 1 MB/s per connection from the first byte; the copy is slower, whole."""
    source = setup.seed()
    target_proxy.set_mode(Mode.SLOW, bytes_per_s=1_000_000)
    report = setup.copier(dst_url=target_proxy.url).run()
    assert report.ok, report.failures[:3]
    assert target_proxy.stats.bytes_up >= setup.total_bytes()  # it really went through the proxy
    checks.check_replica_equals(source, setup.replica)


def test_connections_cut_twice_mid_transfer_are_retried_to_a_complete_replica(
    setup: Setup, target_proxy: FaultProxy
) -> None:
    """The store's connections reset (as when its process dies) at 1/3 and 2/3 of the bytes,
    each outage 1.5 s: retries ride it out, every object verified, nothing partial visible."""
    source = setup.seed()
    total = setup.total_bytes()
    first = Trigger(total, 1 / 3, lambda: target_proxy.pulse(Mode.RESET, seconds=1.5))
    second = Trigger(total, 2 / 3, lambda: target_proxy.pulse(Mode.RESET, seconds=1.5))

    def on_bytes(count: int) -> None:
        first(count)
        second(count)

    report = setup.copier(dst_url=target_proxy.url).run(on_bytes=on_bytes)
    assert first.fired.is_set()
    assert second.fired.is_set()
    assert target_proxy.stats.cut > 0, "the fault must have cut live connections"
    assert report.ok, report.failures[:3]
    checks.check_replica_equals(source, setup.replica)


def test_a_burst_of_503_slow_down_is_retried_to_a_complete_replica(
    setup: Setup, target_proxy: FaultProxy
) -> None:
    """R11: every request answered `503 SlowDown` for 2 s from mid-transfer; backoff, then done."""
    source = setup.seed()
    trigger = Trigger(
        setup.total_bytes(), 0.4, lambda: target_proxy.pulse(Mode.HTTP_503, seconds=2.0)
    )
    report = setup.copier(dst_url=target_proxy.url).run(on_bytes=trigger)
    assert trigger.fired.is_set()
    assert target_proxy.stats.refused > 0, "the store must have answered 503 at least once"
    assert report.ok, report.failures[:3]
    checks.check_replica_equals(source, setup.replica)


def test_a_partition_that_heals_is_ridden_out_by_timeouts_and_retries(
    cloud_a: Setup, sandbox: SandboxEnv
) -> None:
    """A black hole (requests accepted, never answered) for 4 s: in-flight requests time out
    after the endpoint's read timeout (3 s here) and are retried; nothing hangs."""
    source = cloud_a.seed()
    with FaultProxy(port_of(sandbox.store("cloud-a")["endpoint"])) as proxy:
        trigger = Trigger(
            cloud_a.total_bytes(), 0.3, lambda: proxy.pulse(Mode.BLACKHOLE, seconds=4.0)
        )
        copier = cloud_a.copier(dst_url=proxy.url, read_timeout_s=3.0, connect_timeout_s=2.0)
        report = copier.run(on_bytes=trigger)
    assert trigger.fired.is_set()
    assert report.ok, report.failures[:3]
    checks.check_replica_equals(source, cloud_a.replica)


# ---- faults at the source store ----------------------------------------------------------


def test_a_source_store_cut_mid_read_is_retried_and_never_leaves_a_partial_object(
    cloud_a: Setup, sandbox: SandboxEnv
) -> None:
    """The on-prem store's connections cut for 1.5 s while the engine reads from it (GETs with
    If-Match): the reads are retried; the replica equals the source."""
    source = cloud_a.seed()
    with FaultProxy(port_of(sandbox.store("onprem")["endpoint"])) as proxy:
        trigger = Trigger(cloud_a.total_bytes(), 0.5, lambda: proxy.pulse(Mode.RESET, seconds=1.5))
        report = cloud_a.copier(src_url=proxy.url).run(on_bytes=trigger)
    assert trigger.fired.is_set()
    assert report.ok, report.failures[:3]
    checks.check_replica_equals(source, cloud_a.replica)


@pytest.mark.slow
def test_a_store_that_never_comes_back_fails_the_copy_clearly_and_leaves_nothing_partial(
    cloud_a: Setup, sandbox: SandboxEnv
) -> None:
    """The target resets every connection from mid-transfer on and never recovers: the run
    ends (bounded by the retry policy's 90 s), reports failures naming the objects, and every
    object visible at the replica is complete and correct."""
    source = cloud_a.seed(small=12)
    with FaultProxy(port_of(sandbox.store("cloud-a")["endpoint"])) as proxy:
        trigger = Trigger(cloud_a.total_bytes(), 0.3, lambda: proxy.set_mode(Mode.RESET))
        report = cloud_a.copier(dst_url=proxy.url).run(on_bytes=trigger)
    assert trigger.fired.is_set()
    assert not report.ok
    assert report.failures, "a copy that could not finish must say which objects failed"
    checks.check_no_partial_object(cloud_a.replica, source)
    # The store is back (the proxy is gone): a rerun completes the replica.
    again = cloud_a.copier().run()
    assert again.ok, again.failures[:3]
    checks.check_replica_equals(source, cloud_a.replica)


# ---- racing writers and an emptied source ------------------------------------------------


def test_two_copiers_racing_on_one_replica_leave_it_complete(cloud_a: Setup) -> None:
    """Two replicas with leader election off may sync the same dataset at once (R9 for data):
    whatever each run reports, no wrong object is ever visible, and one more run leaves the
    replica complete, verified and with no upload open."""
    source = cloud_a.seed()
    barrier = threading.Barrier(2)
    reports: list[Any] = [None, None]

    def run(i: int) -> None:
        copier = cloud_a.copier()
        barrier.wait(timeout=30)
        reports[i] = copier.run()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert all(r is not None for r in reports), "a racing copier did not finish"
    checks.check_no_partial_object(cloud_a.replica, source)
    print(f"\nracing copiers ok: {[r.ok for r in reports]}; failures: "
          f"{[r.failures[:2] for r in reports]}")  # fmt: skip
    final = cloud_a.copier().run()
    assert final.ok, final.failures[:3]
    checks.check_replica_equals(source, cloud_a.replica)


def test_an_emptied_dataset_prefix_deletes_nothing_at_the_replica(
    cloud_a: Setup, sandbox: SandboxEnv, tmp_path: Path
) -> None:
    """R16 through the policy file: deletes enabled with no hold-back and the default cap; the
    whole source prefix is deleted by mistake; the sync copies nothing and deletes nothing."""
    source = cloud_a.seed(small=60, big=False)

    def point_at_test_buckets(config: dict[str, Any]) -> None:
        config["datasets"] = [
            {
                "name": "victim",
                "source": f"s3://{cloud_a.src_bucket}/data/",
                "replicas": {"cloud-a": f"s3://{cloud_a.dst_bucket}/replica/"},
            }
        ]
        config["residency"] = []
        config["sync"]["delete"] = {"enabled": True, "hold_back": "0s"}

    path = configs.scenario_config(
        tmp_path, instance="rel-delete", namespaces=["unused"], edit=point_at_test_buckets
    )
    stores = Stores(policy.load_policy(path))
    assert stores.dataset_copier("victim", "cloud-a").run().ok
    checks.check_replica_equals(source, cloud_a.replica)

    for key in cloud_a.source.listed_keys():
        cloud_a.src.delete_object(Bucket=cloud_a.src_bucket, Key=f"data/{key}")
    assert cloud_a.source.listed_keys() == []
    report = stores.dataset_copier("victim", "cloud-a").run()
    assert report.deleted == 0
    assert len(report.plan.held_back_deletes) == len(source)
    assert report.plan.delete_note, "the plan must say why the deletes were held back"
    checks.check_replica_equals(source, cloud_a.replica)
    print(f"\nheld back: {report.plan.delete_note}")
