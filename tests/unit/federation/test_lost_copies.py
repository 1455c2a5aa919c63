"""`lost_copies.settlements` and the record's `lost_copies`: when a copy lost with its cluster
is known to have stopped, what settling it moves into `earlier_usd`, how the record keeps it,
and what the budgets count for it meanwhile (`charges.count_spend`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pytest

from federator.federation import lost_copies
from federator.federation.charges import JobRecord, count_spend
from federator.federation.ports import CloudView, CopyState, CopyView
from federator.federation.records import LostCopy, Phase, PlacementRecord, RecordError

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC).timestamp()
MIDNIGHT = datetime(2026, 12, 1, tzinfo=UTC).timestamp()
LOST = LostCopy("cloud-b", "team-a", "j1-uidj1-1", 1, usd_per_hour=8.0, since=NOW - 7200)


def copy(name: str = LOST.name, *, finished_at: float | None = None) -> CopyView:
    state = CopyState.SUCCEEDED if finished_at is not None else CopyState.RUNNING
    return CopyView("cloud-b", "team-a", name, "uid-j1", 1, "spot", state, finished_at=finished_at)


def view(*copies: CopyView, up: bool = True, synced: bool = True) -> CloudView:
    return CloudView("cloud-b", up, synced, None if up else NOW - 9000, copies=copies)


@dataclass(frozen=True)
class Case:
    name: str
    view: CloudView | None
    end: float | None


# fmt: off
CASES = [
    Case("a cluster not in the policy: never known", None, None),
    Case("a cluster still down: unknown", view(copy(), up=False), None),
    Case("a cluster down, its last view empty: unknown", view(up=False), None),
    Case("up but not listed since it came back: unknown", view(synced=False), None),
    Case("the copy still running: it counts on (GC deletes it)", view(copy()), None),
    Case("the copy gone: this pass", view(), NOW),
    Case("another job's copy does not keep it", view(copy("j2-uidj2-1")), NOW),
    Case("the copy finished: its finish", view(copy(finished_at=NOW - 3600)), NOW - 3600),
    Case("finished before the requeue: nothing more",
         view(copy(finished_at=NOW - 9000)), NOW - 7200),
]
# fmt: on


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_when_a_lost_copy_stopped(case: Case) -> None:
    assert lost_copies.stopped_at(LOST, case.view, NOW) == case.end


def record(**changes: object) -> PlacementRecord:
    """Re-placed on cloud-a (8 GPUs at $2) an hour ago; cloud-b's attempt cost $5 up to its
    requeue and its copy may run on."""
    base = PlacementRecord(
        "cloud-a", "spot", 2, Phase.PLACED, placed_at=NOW - 3600, gpus=8,
        price_per_gpu_hour_usd=2.0, earlier_usd=5.0, lost_copies=(LOST,),
    )  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


def test_settlements_name_only_the_copies_whose_end_is_known() -> None:
    other = replace(LOST, cluster="cloud-c", name="j1-uidj1-0")
    both = record(lost_copies=(LOST, other))
    assert lost_copies.settlements(both, {"cloud-b": view()}, NOW) == ((LOST, NOW),)
    assert lost_copies.settlements(both, {"cloud-b": view(copy())}, NOW) == ()


def test_settling_moves_the_copy_into_earlier_usd_and_drops_it() -> None:
    other = replace(LOST, name="j1-uidj1-0")
    settled = record(lost_copies=(LOST, other)).settle([(LOST, NOW)])
    assert settled.earlier_usd == 5.0 + 16.0  # 2 h at $8
    assert settled.earlier_ended_at == NOW
    assert settled.lost_copies == (other,)


def test_the_record_keeps_its_lost_copies_and_reads_old_records() -> None:
    kept = record(earlier_ended_at=NOW - 60)
    assert PlacementRecord.from_json(kept.to_json()) == kept
    old = json.loads(record(lost_copies=()).to_json())
    assert "lost_copies" not in old, "records without lost copies are written as before"
    assert "earlier_ended_at" not in old
    assert PlacementRecord.from_json(json.dumps(old)).lost_copies == ()


@pytest.mark.parametrize(
    "entry",
    [
        "cloud-b/team-a/j1",
        {"cluster": "cloud-b", "namespace": "team-a", "name": "j1", "attempt": 1},
        {**LOST.to_data(), "usd_per_hour": "eight"},
        {**LOST.to_data(), "since": None},
        {**LOST.to_data(), "usd_per_hour": float("nan")},
    ],
)
def test_a_malformed_lost_copy_is_a_record_error(entry: object) -> None:
    data = json.loads(record().to_json())
    data["lost_copies"] = [entry]
    with pytest.raises(RecordError, match=r"federator\.io/record"):
        PlacementRecord.from_json(json.dumps(data))


def counted(rec: PlacementRecord, now: float = NOW) -> tuple[float, float, float]:
    """(hour counted, today spent, month spent) of one job."""
    count = count_spend([JobRecord("uid-j1", "team-a", rec)], None, now)
    return count.hour_counted, count.today_spent, count.month_spent["team-a"]


def test_budgets_count_a_lost_copy_as_running_until_it_is_settled() -> None:
    without = counted(record(lost_copies=()))
    hour, today, month = counted(record())
    assert today - without[1] == 16.0, "2 h at $8 since the requeue"
    assert month - without[2] == 16.0
    assert hour - without[0] == 8.0, "the last hour, and it may run the next too"
    fresh = replace(LOST, since=NOW - 60)
    assert counted(record(lost_copies=(fresh,)))[0] - without[0] == 8.0, "its rate at least"


def test_a_lost_copy_that_ran_past_midnight_counts_today_once_settled() -> None:
    """Placed on cloud-a before midnight, the lost copy ran on until 02:00: today counts it.
    Before `earlier_ended_at`, lost attempts counted only if they ended after the current
    placement began, so its two hours today would have vanished once settled."""
    at = MIDNIGHT + 3 * 3600
    lost = replace(LOST, since=MIDNIGHT - 2 * 3600)
    before = record(placed_at=MIDNIGHT - 3600, lost_copies=(lost,))
    after = before.settle([(lost, MIDNIGHT + 2 * 3600)])
    on_cloud_a = 3 * 16.0  # since midnight at $16
    assert counted(before, at)[1] == 3 * 8.0 + on_cloud_a, "running: its 3 h today"
    # settled: its 4 h ($32) and the $5 before, whole (when in them it ran is not kept);
    # without `earlier_ended_at` none of it (ended, it seemed, by the 23:00 placement)
    assert counted(after, at)[1] == 5.0 + 32.0 + on_cloud_a
