"""`lost_copies.settlements` and the record's `lost_copies`: when a copy lost with its cluster
is known to have stopped, how settling keeps its end on the record, how the record keeps it,
and what the budgets count for it, apart from the job's attempts (`charges.count_spend`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pytest

from federator.federation import lost_copies
from federator.federation.charges import JobRecord, count_spend
from federator.federation.ports import CloudView, CopyState, CopyView
from federator.federation.records import LostCopy, Phase, PlacementRecord, RecordError
from federator.federation.spending import SpendBook

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


def test_settling_keeps_the_copy_with_its_end_and_fixes_its_cost() -> None:
    """Adapted: settling used to move the cost into `earlier_usd` and drop the copy."""
    other = replace(LOST, name="j1-uidj1-0")
    settled = record(lost_copies=(LOST, other)).settle([(LOST, NOW)])
    assert settled.earlier_usd == 5.0, "the copy counts on its own"
    assert settled.lost_copies == (replace(LOST, ended_at=NOW), other)
    assert settled.lost_copies[0].cost_usd(NOW + 3600) == 16.0  # 2 h at $8, fixed
    assert lost_copies.settlements(settled, {"cloud-b": view()}, NOW + 60) == ((other, NOW + 60),)


def test_the_record_keeps_its_lost_copies_and_reads_old_records() -> None:
    kept = record(lost_copies=(replace(LOST, ended_at=NOW - 60), LOST))
    assert PlacementRecord.from_json(kept.to_json()) == kept
    assert "ended_at" not in LOST.to_data(), "an unsettled copy is written as before"
    old = json.loads(record(lost_copies=()).to_json())
    assert "lost_copies" not in old, "records without lost copies are written as before"
    assert "earlier_ended_at" not in old
    assert PlacementRecord.from_json(json.dumps(old)).lost_copies == ()
    old["earlier_ended_at"] = NOW - 60  # written by the code before per-copy accounting
    assert PlacementRecord.from_json(json.dumps(old)) == record(lost_copies=())


@pytest.mark.parametrize(
    "entry",
    [
        "cloud-b/team-a/j1",
        {"cluster": "cloud-b", "namespace": "team-a", "name": "j1", "attempt": 1},
        {**LOST.to_data(), "usd_per_hour": "eight"},
        {**LOST.to_data(), "since": None},
        {**LOST.to_data(), "usd_per_hour": float("nan")},
        {**LOST.to_data(), "ended_at": "later"},
        {**LOST.to_data(), "ended_at": float("inf")},
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
    """Placed on cloud-a before midnight, the lost copy ran on until 02:00: today counts its
    two hours after midnight, settled or not. Adapted: settled into `earlier_usd` (with
    `earlier_ended_at`), its whole 4 h and the $5 before the requeue counted today; each copy
    keeping its own end, what it cost before midnight is yesterday's."""
    at = MIDNIGHT + 3 * 3600
    lost = replace(LOST, since=MIDNIGHT - 2 * 3600)
    before = record(placed_at=MIDNIGHT - 3600, lost_copies=(lost,))
    after = before.settle([(lost, MIDNIGHT + 2 * 3600)])
    on_cloud_a = 3 * 16.0  # since midnight at $16
    assert counted(before, at)[1] == 3 * 8.0 + on_cloud_a, "running: its 3 h today"
    assert counted(after, at)[1] == 2 * 8.0 + on_cloud_a, "settled: its 2 h today"
    assert counted(after, at + 3600)[1] == 2 * 8.0 + 4 * 16.0, "and no more once settled"


def test_a_settled_copy_counts_in_the_hour_only_what_it_cost_in_it() -> None:
    without = counted(record(lost_copies=()))[0]
    ended = replace(LOST, ended_at=NOW - 1800)
    assert counted(record(lost_copies=(ended,)))[0] - without == 4.0, "half an hour at $8"
    gone = replace(LOST, ended_at=NOW - 3600)
    assert counted(record(lost_copies=(gone,)))[0] == without, "no rate once it stopped"


def test_each_lost_copy_is_a_contribution_of_its_own_with_a_record_or_a_kept_one() -> None:
    """The book keys it apart from the job's attempts, so that a job whose record is dropped
    (back on-prem) still counts it, under the same key, and only the job's attempts leave."""
    key = "uid-j1/lost/cloud-b/team-a/j1-uidj1-1"
    with_record = count_spend([JobRecord("uid-j1", "team-a", record())], SpendBook(), NOW)
    assert with_record.book is not None
    assert with_record.book.seen[key].today_usd == 16.0
    assert with_record.book.seen["uid-j1"].today_usd == 5.0 + 16.0, "without the lost copy"
    home = JobRecord("uid-j1", "team-a", None, kept=record())
    back_home = count_spend([home], with_record.book, NOW)
    assert back_home.book is not None
    assert set(back_home.book.seen) == {key}, "only the job's attempts are gone"
    assert back_home.today_spent == with_record.today_spent, "nothing lost, nothing twice"
    assert back_home.hour_counted == 8.0, "the copy may run on for the next hour"
