"""A replica whose copy (or listing) failed is not listed again on every call: it backs off.

Before, `ensure_replicated` listed the whole dataset again on every decision pass after a
failure (a store down, a bucket answering 403), for as long as the fault lasted."""

from __future__ import annotations

from typing import Any

import pytest
from tenacity import wait_exponential

from federator import errors
from federator.syncing import replication
from federator.syncing.plans import SyncReport
from federator.syncing.replication import ReplicaState, Replicator
from tests.unit.storage.test_replication import FakeEngine

DOUBLING = wait_exponential(multiplier=30, max=600)  # the default without its jitter


def failing_engine() -> FakeEngine:
    engine = FakeEngine(fail=True)
    engine.release.set()
    return engine


async def test_after_a_failed_copy_the_dataset_is_not_listed_again_on_every_pass() -> None:
    engine = failing_engine()
    now = [1000.0]
    replicator = Replicator(lambda d, c: engine, clock=lambda: now[0])  # the default backoff
    await replicator.sync_now("ds", "cloud-a")
    listed = engine.plans
    for _ in range(5):  # decision passes, 5 s apart: inside the first backoff (30-40 s)
        now[0] += 5.0
        held = await replicator.ensure_replicated("ds", "cloud-a")
        assert held.state is ReplicaState.FAILED
        assert "boom" in held.message
    assert engine.plans == listed, (
        f"a failed replica was listed {engine.plans - listed} more times in 25 s"
    )


async def test_a_failed_status_says_when_it_is_tried_again_and_is_tried_then() -> None:
    engine = failing_engine()
    now = [1000.0]
    replicator = Replicator(lambda d, c: engine, clock=lambda: now[0], retry_wait=DOUBLING)
    failed = await replicator.sync_now("ds", "cloud-a")
    listed = engine.plans
    now[0] += 29.0
    held = await replicator.ensure_replicated("ds", "cloud-a")
    assert held.retry_at == failed.retry_at == 1030.0
    assert "next try after 00:17:10 UTC" in held.message  # 1030 s after the epoch
    assert "1 failure in a row" in held.message
    assert engine.plans == listed
    now[0] = 1030.0
    again = await replicator.ensure_replicated("ds", "cloud-a")
    assert engine.plans == listed + 1
    assert again.state is ReplicaState.COPYING


async def test_the_backoff_doubles_per_failure_up_to_its_cap_and_a_success_resets_it() -> None:
    engine = failing_engine()
    now = [0.0]
    replicator = Replicator(lambda d, c: engine, clock=lambda: now[0], retry_wait=DOUBLING)
    waits = []
    for _ in range(7):
        status = await replicator.sync_now("ds", "cloud-a")
        assert status.retry_at is not None
        waits.append(status.retry_at - now[0])
        now[0] = status.retry_at
    assert waits == [30.0, 60.0, 120.0, 240.0, 480.0, 600.0, 600.0]
    engine.fail = False
    assert (await replicator.sync_now("ds", "cloud-a")).ready
    engine.fail = True
    engine.target = []
    now[0] += 3600.0  # past the recheck of the complete replica
    status = await replicator.sync_now("ds", "cloud-a")
    assert status.retry_at == now[0] + 30.0, "a success must start the backoff again"


async def test_a_listing_that_fails_is_a_failed_status_that_backs_off_too() -> None:
    engine = FakeEngine()
    engine.refusal = errors.StoreUnavailable("cloud-a (http://s3)", "listing: connection refused")
    now = [1000.0]
    replicator = Replicator(lambda d, c: engine, clock=lambda: now[0])  # the default backoff
    failed = await replicator.ensure_replicated("ds", "cloud-a")
    assert failed.state is ReplicaState.FAILED
    assert not failed.ready
    assert "object store cloud-a (http://s3) is unavailable" in failed.message
    now[0] += 10.0
    assert (await replicator.ensure_replicated("ds", "cloud-a")) == failed
    assert engine.plans == 1
    # Never listed: the size of the copy is unknown, not 0 (0 says "the replica is there").
    assert replicator.bytes_remaining("ds", "cloud-a") is None
    engine.refusal = None
    assert failed.retry_at is not None
    now[0] = failed.retry_at
    assert (await replicator.ensure_replicated("ds", "cloud-a")).state is ReplicaState.COPYING
    assert engine.plans == 2
    engine.release.set()
    assert (await replicator.sync_now("ds", "cloud-a")).ready


async def test_sync_now_honours_the_backoff() -> None:
    engine = failing_engine()
    now = [1000.0]
    replicator = Replicator(lambda d, c: engine, clock=lambda: now[0], retry_wait=DOUBLING)
    await replicator.sync_now("ds", "cloud-a")
    runs, listed = engine.runs, engine.plans
    now[0] += 20.0
    held = await replicator.sync_now("ds", "cloud-a")
    assert held.state is ReplicaState.FAILED
    assert (engine.runs, engine.plans) == (runs, listed)


async def test_each_failure_is_logged_once_with_its_next_try(
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = failing_engine()
    now = [1000.0]
    replicator = Replicator(lambda d, c: engine, clock=lambda: now[0], retry_wait=DOUBLING)
    await replicator.sync_now("ds", "cloud-a")
    for _ in range(3):
        now[0] += 5.0
        await replicator.ensure_replicated("ds", "cloud-a")
    out = capsys.readouterr().out
    assert out.count("replica_copy_failed") == 1
    assert "boom" in out
    assert "retry_in_s=30" in out


def test_the_default_backoff_is_30_s_doubling_to_10_min_with_a_little_jitter() -> None:
    wait = replication.RETRY_WAIT
    for failures, (low, high) in {1: (30, 40), 2: (60, 70), 5: (480, 490), 9: (600, 610)}.items():
        for _ in range(20):
            assert low <= replication.backoff_s(wait, failures) <= high


async def test_a_replica_forgotten_after_a_reload_is_not_held_back_by_its_old_failure() -> None:
    engines: list[FakeEngine] = []

    def copier(dataset: str, cluster: str) -> FakeEngine:
        engine = FakeEngine(fail=not engines)  # the first, for the old location, fails
        engine.release.set()
        engines.append(engine)
        return engine

    now = [1000.0]
    replicator = Replicator(copier, clock=lambda: now[0], retry_wait=DOUBLING)
    assert (await replicator.sync_now("ds", "cloud-a")).state is ReplicaState.FAILED
    replicator.forget("ds", "cloud-a")  # a reload moved the replica: the failure was the old one's
    now[0] += 5.0
    status = await replicator.ensure_replicated("ds", "cloud-a")
    assert len(engines) == 2
    assert engines[1].plans == 1, "the new location was held back by the old one's backoff"
    assert status.state is ReplicaState.COPYING


class StoppingEngine(FakeEngine):
    """Stopped mid-copy, it raises as `DatasetCopier` does (`Stopped`)."""

    def run(self, **kwargs: Any) -> SyncReport:
        report = super().run(**kwargs)
        if self.stopped:
            raise RuntimeError("ds: the copy was stopped (shutting down); the next run resumes")
        return report


async def test_a_copy_stopped_for_a_shutdown_is_not_logged_as_a_failure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = StoppingEngine()
    replicator = Replicator(lambda d, c: engine, retry_wait=DOUBLING)
    await replicator.ensure_replicated("ds", "cloud-a")
    await replicator.aclose()
    assert "replica_copy_failed" not in capsys.readouterr().out  # a shutdown, not a fault


async def test_a_bug_in_the_listing_is_raised_not_taken_for_a_store_fault() -> None:
    engine = FakeEngine()
    engine.refusal = KeyError("Contents")  # not a store's answer: federator's own mistake
    replicator = Replicator(lambda d, c: engine, retry_wait=DOUBLING)
    with pytest.raises(KeyError):
        await replicator.ensure_replicated("ds", "cloud-a")
