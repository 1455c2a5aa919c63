"""A placement still being made when its cloud starts draining is given back, never made there.

A record can stay PLACING across passes (a create that failed transiently, a crash between the
record and the copy): exactly when an operator may drain a misbehaving cloud. Before, the next
pass carried the placement on (`CONTINUE_PLACING`) and created a NEW copy on the draining
cluster, the one place no new copy may go (docs/design.md §7). Now the job is decided again,
its copy never created, and nothing counts it as lost: no copy ever ran.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from federator import errors, metrics
from federator.core.models import OnPremState
from federator.federation import planning
from federator.federation.planning import StepKind
from federator.federation.ports import (
    CloudView,
    CopyRequest,
    CopyState,
    CopyView,
    OnPremJob,
    OnPremView,
)
from federator.federation.records import Phase, PlacementRecord, copy_name
from tests.unit.federation.test_draining_cluster import DRAINING_B, SETTINGS, federation
from tests.unit.federation.test_start_timeout_planning import placed_job
from tests.unit.kube.fakes import FakeCloud, FakeOnPrem

NOW = 10_000.0


def placing_job() -> OnPremJob:
    record = PlacementRecord("cloud-b", "spot", 3, Phase.PLACING, placed_at=NOW - 60, gpus=8)
    return replace(placed_job(), record=record)


def step_for(*, with_copy: bool, draining: frozenset[str]) -> planning.Step:
    job = placing_job()
    copies = (
        (CopyView("cloud-b", "team-a", "train-u1-3", "u1", 3, "spot", CopyState.PENDING),)
        if with_copy
        else ()
    )
    onprem = OnPremView(up=True, synced=True, state=OnPremState(16, 0), jobs=(job,))
    clouds = {"cloud-b": CloudView("cloud-b", up=True, synced=True, copies=copies)}
    (step,) = planning.converge(onprem, clouds, planning.Timeouts({}), now=NOW, draining=draining)
    return step


def test_a_placement_without_its_copy_on_a_draining_cloud_is_decided_again() -> None:
    step = step_for(with_copy=False, draining=frozenset({"cloud-b"}))
    assert step.kind is StepKind.UNPLACED
    assert step.copy is None
    assert step.reason == "cloud-b is draining"


@pytest.mark.parametrize(
    ("with_copy", "draining"),
    [
        (True, frozenset({"cloud-b"})),  # the create landed before a crash: it runs on
        (False, frozenset()),  # not draining: the placement is carried on
        (False, frozenset({"cloud-a"})),  # another cloud drains
    ],
)
def test_otherwise_the_placement_is_carried_on(with_copy: bool, draining: frozenset[str]) -> None:
    assert step_for(with_copy=with_copy, draining=draining).kind is StepKind.CONTINUE_PLACING


@dataclass
class FlakyCloud(FakeCloud):
    """A cloud whose creates fail transiently while `failing`."""

    failing: bool = False
    tried: int = 0

    async def create_copy(self, request: CopyRequest) -> bool:
        self.tried += 1
        if self.failing:
            raise errors.ClusterUnavailable(self.name, "create timed out")
        return await super().create_copy(request)


def placements(cluster: str, outcome: str) -> float:
    return metrics.PLACEMENTS.labels(cluster=cluster, outcome=outcome)._value.get()


async def test_the_loop_never_creates_the_copy_on_the_draining_cloud() -> None:
    onprem, cloud_a = FakeOnPrem(), FakeCloud("cloud-a")
    cloud_b = FlakyCloud("cloud-b", failing=True)
    job = onprem.add("j1", 8)
    fed, _ = federation(onprem, cloud_a, cloud_b, settings=SETTINGS)
    report = await fed.run_once(100.0)  # cloud-b is cheaper: the record, then a failed create
    assert job.record is not None
    assert (job.record.placement, job.record.phase) == ("cloud-b/spot", Phase.PLACING)
    assert cloud_b.tried == 1
    assert report.failures, "the transient failure is retried next pass"
    placing = job.record
    dropped_before = placements("cloud-b", "dropped")

    fed.settings = DRAINING_B  # the operator drains the misbehaving cloud
    cloud_b.failing = False  # it would answer now: nothing must be asked of it
    report = await fed.run_once(110.0)
    assert cloud_b.tried == 1, "no create on the draining cloud"
    assert cloud_b.copies == {}
    assert cloud_b.created == []
    assert job.record.phase is Phase.REQUEUED
    assert job.record.attempt == placing.attempt == 1
    # No copy ever ran: no loss, no preemption, no backoff, no pool block.
    assert job.record.losses == placing.losses == 0
    assert job.record.preemptions == 0
    assert job.record.not_before == 110.0
    assert fed.blocks.blocking(("cloud-b", "spot"), 110.0) is None
    assert ("team-a/j1", "PlacementDropped") in onprem.events
    assert ("team-a/j1", "Preempted") not in onprem.events
    assert any("cloud-b" in a and "draining" in a for a in report.actions), report.actions
    assert placements("cloud-b", "dropped") == dropped_before + 1

    await fed.run_once(120.0)  # decided again at once, elsewhere, under a new attempt
    assert (job.record.placement, job.record.phase) == ("cloud-a/spot", Phase.PLACED)
    assert job.record.attempt == 2, "never the name a late create on cloud-b could hold"
    assert job.record.losses == 0
    assert len(cloud_a.copies) == 1
    assert cloud_b.tried == 1
    assert cloud_b.copies == {}


async def test_a_late_create_on_the_draining_cloud_is_collected() -> None:
    """The create that timed out may still land: the requeued record lists its name stale and
    vouches for no copy there, so GC deletes it."""
    onprem, cloud_a, cloud_b = FakeOnPrem(), FakeCloud("cloud-a"), FakeCloud("cloud-b")
    job = onprem.add("j1", 8)
    record = PlacementRecord("cloud-b", "spot", 1, Phase.PLACING, placed_at=90.0, gpus=8)
    job.record, job.active_workload = record, False  # as a crash after the hold
    fed, _ = federation(onprem, cloud_a, cloud_b)
    await fed.run_once(100.0)
    assert job.record is not None
    assert job.record.phase is Phase.REQUEUED
    assert job.record.stale == (f"cloud-b/team-a/{copy_name('j1', 'uid-j1', 1)}",)
    # The late create lands now, under the attempt the record gave up.
    source = (await onprem.snapshot(100.0)).jobs[0]
    request = CopyRequest(source=source, pool="spot", attempt=1, suspended=False)
    await cloud_b.create_copy(request)
    assert len(cloud_b.copies) == 1
    await fed.run_once(110.0)
    assert cloud_b.copies == {}, "collected: no record vouches for it"
    assert (job.record.placement, job.record.attempt) == ("cloud-a/spot", 2)


async def test_a_copy_made_before_the_drain_runs_on() -> None:
    onprem, cloud_a, cloud_b = FakeOnPrem(), FakeCloud("cloud-a"), FakeCloud("cloud-b")
    job = onprem.add("j1", 8)
    record = PlacementRecord("cloud-b", "spot", 1, Phase.PLACING, placed_at=90.0, gpus=8)
    job.record = record
    source = (await onprem.snapshot(90.0)).jobs[0]
    request = CopyRequest(source=source, pool="spot", attempt=1, suspended=False)
    await cloud_b.create_copy(request)  # then a crash before the record says placed
    fed, _ = federation(onprem, cloud_a, cloud_b)
    await fed.run_once(100.0)
    assert job.record is not None
    assert (job.record.placement, job.record.phase) == ("cloud-b/spot", Phase.PLACED)
    assert len(cloud_b.copies) == 1
    assert cloud_a.copies == {}
    assert ("team-a/j1", "PlacementDropped") not in onprem.events
    assert replace(job.record, phase=Phase.PLACING) == record


async def test_kept_on_prem_after_all_its_workload_is_given_back() -> None:
    """With no other cloud the job stays: the Workload the placement held goes back to Kueue,
    and the record it keeps counts no loss (the job may still burst later). The record has no
    `lost` count, as one written before it was kept: requeued, it would read as one loss."""
    onprem, cloud_b = FakeOnPrem(), FakeCloud("cloud-b")
    job = onprem.add("j1", 8)
    record = PlacementRecord("cloud-b", "spot", 1, Phase.PLACING, placed_at=90.0, gpus=8)
    job.record, job.active_workload = record, False  # held, then a crash before the create
    fed, _ = federation(onprem, cloud_b)
    await fed.run_once(100.0)
    await fed.run_once(110.0)
    assert cloud_b.created == []
    assert job.record is None
    assert job.active_workload
    assert job.returned_record is not None
    assert job.returned_record.losses == 0
    assert ("team-a/j1", "ReturnedOnPrem") in onprem.events


async def test_a_placement_dropped_after_hours_of_failed_creates_charges_nothing() -> None:
    """Review finding 2: requeued as a lost copy is, the dropped placement added its price from
    `placed_at` to now to the job's spend ($240 for 8 GPUs at $5/h stuck for 6 h), counted
    against the daily and tenant budgets, though no copy ever ran."""
    onprem, cloud_a, cloud_b = FakeOnPrem(), FakeCloud("cloud-a"), FakeCloud("cloud-b")
    job = onprem.add("j1", 8)
    placing = PlacementRecord(
        "cloud-b", "spot", 1, Phase.PLACING, placed_at=100.0, gpus=8, price_per_gpu_hour_usd=5.0
    )
    job.record, job.active_workload = placing, False
    fed, _ = federation(onprem, cloud_a, cloud_b)
    await fed.run_once(100.0 + 6 * 3600.0)
    assert job.record is not None
    assert job.record.phase is Phase.REQUEUED
    assert job.record.earlier_usd == 0.0
