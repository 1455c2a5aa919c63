"""A replica whose definition a policy reload changed is not copied with the engine built for
its old locations, nor trusted from what was learnt there (`Replicator.forget`)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from federator import metrics
from federator.syncing.plans import ListedObject, SyncPlan, SyncReport, plan_sync
from federator.syncing.replication import Replicator


class Engine:
    """A copy engine for one target location: one 100-byte source object; `run` copies it
    once `release` is set."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.source = [ListedObject("a", 100, "e1", 50.0)]
        self.copied: list[ListedObject] = []
        self.release = threading.Event()
        self.runs = 0
        self.stopped = False

    def plan(self) -> tuple[SyncPlan, float]:
        return plan_sync(self.source, self.copied), 100.0

    def stop(self) -> None:
        self.stopped = True
        self.release.set()

    def run(
        self,
        *,
        dry_run: bool = False,
        planned: tuple[SyncPlan, float] | None = None,
        on_plan: Callable[[SyncPlan], None] | None = None,
        on_bytes: Callable[[int], None] | None = None,
        on_object: Callable[[str], None] | None = None,
    ) -> SyncReport:
        self.runs += 1
        plan, listed_at = planned or self.plan()
        self.release.wait(5)
        self.copied = list(self.source)
        return SyncReport(plan, listed_at, dry_run=False, copied=1, bytes_copied=100)


class Locations:
    """The copier factory: an engine for the target the policy names now, like
    `Stores.dataset_copier` reading the policy in force."""

    def __init__(self) -> None:
        self.target = "s3://cloud-a-datasets/old/"
        self.built: list[Engine] = []

    def __call__(self, dataset: str, cluster: str) -> Engine:
        engine = Engine(self.target)
        engine.release.set()
        self.built.append(engine)
        return engine


async def test_a_forgotten_replica_is_listed_again_with_an_engine_for_its_new_location() -> None:
    locations = Locations()
    replicator = Replicator(locations, clock=lambda: 200.0)
    assert not (await replicator.ensure_replicated("ds", "cloud-a")).ready
    await replicator.sync_now("ds", "cloud-a")
    assert (await replicator.ensure_replicated("ds", "cloud-a")).ready  # the old location

    locations.target = "s3://cloud-a-datasets/new/"  # a reload moved the replica
    replicator.forget("ds", "cloud-a")
    assert replicator.bytes_remaining("ds", "cloud-a") is None  # nothing known of the new one
    status = await replicator.ensure_replicated("ds", "cloud-a")
    assert not status.ready, "the new location is empty: the job must wait for its copy"
    assert [e.target for e in locations.built] == [
        "s3://cloud-a-datasets/old/",
        "s3://cloud-a-datasets/new/",
    ]
    final = await replicator.sync_now("ds", "cloud-a")
    assert final.ready
    assert locations.built[1].runs == 1


async def test_a_copy_running_when_forgotten_finishes_and_its_result_is_not_trusted() -> None:
    locations = Locations()
    old = Engine("s3://cloud-a-datasets/old/")  # held until released
    engines = iter([old])
    replicator = Replicator(lambda d, c: next(engines, None) or locations(d, c))
    await replicator.ensure_replicated("ds", "cloud-a")  # starts the copy with `old`
    replicator.forget("ds", "cloud-a")
    status = await replicator.ensure_replicated("ds", "cloud-a")
    assert status.bytes_remaining == 100  # the running copy still answers while it runs
    assert locations.built == [], "no second engine while the first one's copy runs"

    (copy,) = [t for t in asyncio.all_tasks() if t.get_name() == "sync:ds->cloud-a"]
    old.release.set()
    await asyncio.wait({copy})
    assert old.runs == 1, "the running copy was let finish"
    assert replicator.lags() == {}, "its result, for the old location, is not trusted"
    status = await replicator.ensure_replicated("ds", "cloud-a")
    assert [e.target for e in locations.built] == ["s3://cloud-a-datasets/old/"]
    assert locations.built[0] is not old
    assert status.bytes_remaining == 100


async def test_closing_still_stops_a_copy_whose_replica_was_forgotten() -> None:
    old = Engine("s3://cloud-a-datasets/old/")
    replicator = Replicator(lambda d, c: old)
    await replicator.ensure_replicated("ds", "cloud-a")
    replicator.forget("ds", "cloud-a")
    await replicator.aclose()
    assert old.stopped


async def test_a_forgotten_replica_leaves_no_lag_series_behind() -> None:
    replicator = Replicator(Locations(), clock=lambda: 160.0)
    await replicator.sync_now("gone", "cloud-b")
    replicator.publish_metrics()
    series = metrics.SYNC_LAG_SECONDS.labels(dataset="gone", cluster="cloud-b")
    assert series._value.get() == 60.0
    replicator.forget("gone", "cloud-b")  # a reload removed the dataset
    replicator.publish_metrics()
    samples = [
        s.labels
        for family in metrics.SYNC_LAG_SECONDS.collect()
        for s in family.samples
        if s.labels.get("dataset") == "gone"
    ]
    assert samples == []
