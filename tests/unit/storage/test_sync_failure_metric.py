"""`federator_sync_failures_total{dataset,cluster}`: one per failed try of a replica (a copy or
listing that failed and was backed off), never one per call answered from the backoff, nor for
a copy a shutdown stopped."""

from __future__ import annotations

from federator import errors, metrics
from federator.syncing.replication import ReplicaState, Replicator
from tests.unit.storage.test_replication import FakeEngine


def failures(dataset: str, cluster: str) -> float:
    labels = {"dataset": dataset, "cluster": cluster}
    return metrics.REGISTRY.get_sample_value("federator_sync_failures_total", labels) or 0.0


async def test_each_failed_try_is_counted_once() -> None:
    engine = FakeEngine(fail=True)
    engine.release.set()
    now = [1000.0]
    replicator = Replicator(lambda d, c: engine, clock=lambda: now[0])
    before = failures("fm-copy", "cloud-a")
    assert (await replicator.sync_now("fm-copy", "cloud-a")).state is ReplicaState.FAILED
    for _ in range(3):  # decision passes inside the backoff: answered from memory
        now[0] += 5.0
        await replicator.ensure_replicated("fm-copy", "cloud-a")
    assert failures("fm-copy", "cloud-a") == before + 1
    now[0] += 60.0  # past the backoff: the next try fails too
    assert (await replicator.sync_now("fm-copy", "cloud-a")).state is ReplicaState.FAILED
    assert failures("fm-copy", "cloud-a") == before + 2


async def test_a_failed_listing_is_counted() -> None:
    engine = FakeEngine()
    engine.refusal = errors.StoreUnavailable("cloud-b (http://s3)", "listing: timed out")
    replicator = Replicator(lambda d, c: engine)
    before = failures("fm-list", "cloud-b")
    assert (await replicator.ensure_replicated("fm-list", "cloud-b")).state is ReplicaState.FAILED
    assert failures("fm-list", "cloud-b") == before + 1


async def test_a_copy_stopped_by_a_shutdown_is_not_counted() -> None:
    engine = FakeEngine()
    replicator = Replicator(lambda d, c: engine)
    before = failures("fm-stop", "cloud-a")
    await replicator.ensure_replicated("fm-stop", "cloud-a")
    await replicator.aclose()
    assert failures("fm-stop", "cloud-a") == before


def test_initialise_creates_the_series_of_every_replica_at_zero() -> None:
    metrics.initialise(replica_pairs=[("fm-init", "cloud-zz")])
    labels = {"dataset": "fm-init", "cluster": "cloud-zz"}
    assert metrics.REGISTRY.get_sample_value("federator_sync_failures_total", labels) == 0
