"""A copy the replicator starts runs from the plan its check just made: one listing of the
dataset per try, not two (the check's, then the run's own from scratch). For 100,000 objects a
listing is 100 requests per side and seconds of wall time.

The real `DatasetCopier` runs here over in-memory stores that count their listing requests and
the reads of the sync state; `federator sync` (a run given no plan) lists as it always did."""

from __future__ import annotations

import time
from typing import Any

from federator.storage.copying import DatasetCopier, TransferSettings
from federator.storage.endpoints import Location
from federator.storage.syncstate import SyncState
from federator.syncing.plans import DeletePolicy
from federator.syncing.replication import ReplicaState, Replicator
from tests.unit.storage.test_copy_review import CLOUD, ONPREM, MemoryS3
from tests.unit.storage.test_replication import FakeEngine

HOLD_BACK = DeletePolicy(enabled=True, max_fraction=1.0, hold_back_s=3600.0)


class CountingS3(MemoryS3):
    """`MemoryS3` that also counts ListObjectsV2 requests and reads of the sync state."""

    def list_objects_v2(self, Bucket: str, Prefix: str = "", **request: Any) -> Any:
        self._call("list_objects_v2", Prefix)
        return super().list_objects_v2(Bucket, Prefix, **request)

    def state_reads(self) -> int:
        return sum(1 for op, key in self.calls if op == "get_object" and ".federator/" in str(key))


class Pair:
    """A source holding `a` and `b`, a replica holding `b` and `gone` (deleted at the source)."""

    def __init__(self) -> None:
        self.source, self.target = CountingS3(), CountingS3()
        for key in ("data/a", "data/b"):
            self.source.put_object("datasets", key, key.encode())
        for key in ("data/b", "data/gone"):
            self.target.put_object("replicas", key, key.encode())
        self.source.calls.clear()
        self.target.calls.clear()

    def copier(self) -> DatasetCopier:
        return DatasetCopier(
            Location(ONPREM, "datasets", "data/"),
            Location(CLOUD, "replicas", "data/"),
            settings=TransferSettings(lean_requests=False),
            deletes=HOLD_BACK,
            source_client=self.source,  # type: ignore[arg-type]
            target_client=self.target,  # type: ignore[arg-type]
        )

    def listings(self) -> tuple[int, int]:
        return self.source.count("list_objects_v2"), self.target.count("list_objects_v2")

    def saved_state(self, copy: DatasetCopier) -> SyncState:
        return SyncState.load(copy.dst, copy.source, copy.target)


async def test_a_try_lists_the_dataset_once() -> None:
    engine = FakeEngine()  # counts listings: each `plan`, and a run's own
    engine.release.set()
    replicator = Replicator(lambda d, c: engine)
    assert (await replicator.ensure_replicated("ds", "cloud-a")).state is ReplicaState.COPYING
    assert (await replicator.sync_now("ds", "cloud-a")).ready
    assert engine.runs == 1
    assert engine.plans == 1, f"{engine.plans} listings for one try (the check and the run)"


async def test_the_replicators_copy_sends_one_listing_per_side_and_reads_the_state_once() -> None:
    pair = Pair()
    copy = pair.copier()
    replicator = Replicator(lambda d, c: copy)
    status = await replicator.sync_now("ds", "cloud-a")
    assert status.ready, status.message
    assert pair.target.objects[("replicas", "data/a")].data == b"data/a"
    assert pair.listings() == (1, 1), "the run listed both sides again after the check"
    assert pair.target.state_reads() == 1
    # The hold-back clock the run saved is its plan's: `gone` missing since the listing.
    assert pair.saved_state(copy).missing_since == {"gone": status.checked_at}


async def test_a_run_from_the_checks_plan_keeps_an_earlier_hold_back_clock() -> None:
    pair = Pair()
    copy = pair.copier()
    earlier = pair.saved_state(copy)
    since = time.time() - 60.0  # seen missing by an earlier run, within the hold-back
    earlier.remember_missing({"gone": since})
    earlier.save()
    replicator = Replicator(lambda d, c: copy)
    assert (await replicator.sync_now("ds", "cloud-a")).ready
    assert pair.saved_state(copy).missing_since == {"gone": since}


def test_a_run_given_no_plan_lists_as_before() -> None:
    pair = Pair()
    copy = pair.copier()
    report = copy.run()
    assert report.ok
    assert pair.listings() == (1, 1)
    assert pair.target.state_reads() == 1
    assert pair.saved_state(copy).missing_since == {"gone": report.listed_at}


def test_a_run_given_its_copiers_last_plan_does_not_list_again() -> None:
    pair = Pair()
    copy = pair.copier()
    planned = copy.plan()
    report = copy.run(planned=planned)
    assert report.ok
    assert report.plan is planned[0]
    assert (report.listed_at, report.copied) == (planned[1], 1)
    assert pair.listings() == (1, 1)
    assert pair.target.state_reads() == 1


def test_a_plan_that_is_not_the_copiers_last_is_not_trusted() -> None:
    pair = Pair()
    copy, other = pair.copier(), pair.copier()
    used = copy.plan()
    copy.run(planned=used)
    again = copy.run(planned=used)  # a run changed the target and the state since
    assert again.plan is not used[0]
    foreign = copy.run(planned=other.plan())  # made from another copier's sync state
    assert foreign.ok
    assert pair.listings() == (4, 4)  # plan, run again, other's plan, run again
