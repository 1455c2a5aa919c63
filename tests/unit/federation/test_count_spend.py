"""`charges.count_spend`: the one sum of the records and the spend book that the budgets
(`SpendLedger.spend`) and `federator status` both read, case by case at a fixed `now`."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import pytest

from federator.federation.charges import JobRecord, SpendCount, count_spend
from federator.federation.records import Phase, PlacementRecord
from federator.federation.spending import Contribution, SpendBook

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC).timestamp()  # noon UTC
MIDNIGHT = datetime(2026, 11, 30, tzinfo=UTC).timestamp()


def placed(placed_at: float, **changes: object) -> PlacementRecord:
    """8 GPUs at $3/GPU-hour ($24 an hour), expected to cost $20 in all."""
    record = PlacementRecord(
        "cloud-a", "a100-spot", 1, Phase.PLACED, placed_at=placed_at, gpus=8,
        price_per_gpu_hour_usd=3.0, expected_cost_usd=20.0,
    )  # fmt: skip
    return replace(record, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Case:
    name: str
    jobs: tuple[JobRecord, ...]
    book: SpendBook | None
    hour: tuple[float, float]  # spent, counted
    today: float
    month: dict[str, float] = field(default_factory=dict)
    committed: dict[str, float] = field(default_factory=dict)


BOOK = SpendBook(
    day="2026-11-30",
    month="2026-11",
    gone_today_usd=5.0,
    gone_month_usd={"team-b": 7.0},
    seen={"uid-vanished": Contribution(1.0, 2.0, "team-b"), "uid-a": Contribution(0, 0, "team-a")},
)
YESTERDAYS_BOOK = SpendBook(
    day="2026-11-29", month="2026-11", gone_today_usd=5.0, gone_month_usd={"team-b": 7.0}
)
LAST_MONTHS_BOOK = SpendBook(
    day="2026-10-31", month="2026-10", gone_today_usd=5.0, gone_month_usd={"team-b": 7.0}
)
HALF_AN_HOUR = JobRecord("uid-a", "team-a", placed(NOW - 1800))

# fmt: off
CASES = [
    Case("nothing", (), None, (0.0, 0.0), 0.0),
    Case(
        "a live burst counts its burn rate for the hour and the rest of its $20 as committed",
        (HALF_AN_HOUR,), None, (12.0, 24.0), 12.0, {"team-a": 12.0}, {"team-a": 8.0},
    ),
    Case(
        "a burst placed before midnight counts since midnight today, all of it this month",
        (JobRecord("uid-a", "team-a", placed(MIDNIGHT - 3600, expected_cost_usd=400.0)),),
        None, (24.0, 24.0), 288.0, {"team-a": 312.0}, {"team-a": 88.0},
    ),
    Case(
        "a requeued job's lost attempt counts whole, nothing is committed",
        (JobRecord("uid-a", "team-a", placed(
            NOW - 600, phase=Phase.REQUEUED, not_before=NOW + 60, earlier_usd=5.0
        )),),
        None, (5.0, 5.0), 5.0, {"team-a": 5.0}, {"team-a": 0.0},
    ),
    Case(
        "a finished job commits nothing more",
        (JobRecord("uid-a", "team-a", placed(NOW - 1800, finished_at=NOW - 900)),),
        None, (6.0, 6.0), 6.0, {"team-a": 6.0}, {"team-a": 0.0},
    ),
    Case(
        "the book adds the jobs gone today and this month, and the one that vanished since",
        (HALF_AN_HOUR,), BOOK, (12.0, 24.0), 18.0, {"team-a": 12.0, "team-b": 9.0},
        {"team-a": 8.0},
    ),
    Case(
        "yesterday's book counts only for the month",
        (HALF_AN_HOUR,), YESTERDAYS_BOOK, (12.0, 24.0), 12.0, {"team-a": 12.0, "team-b": 7.0},
        {"team-a": 8.0},
    ),
    Case(
        "last month's book counts for nothing",
        (HALF_AN_HOUR,), LAST_MONTHS_BOOK, (12.0, 24.0), 12.0, {"team-a": 12.0},
        {"team-a": 8.0},
    ),
    Case(
        "tenants are summed apart",
        (HALF_AN_HOUR, JobRecord("uid-b", "team-b", placed(NOW - 900)),
         JobRecord("uid-c", "team-a", placed(NOW - 900))),
        None, (24.0, 72.0), 24.0, {"team-a": 18.0, "team-b": 6.0},
        {"team-a": 22.0, "team-b": 14.0},
    ),
]
# fmt: on


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_count_spend(case: Case) -> None:
    count = count_spend(case.jobs, case.book, NOW)
    assert (count.hour_spent, count.hour_counted) == case.hour
    assert count.today_spent == case.today
    assert dict(count.month_spent) == case.month
    assert dict(count.committed) == case.committed
    assert count.committed_total == sum(case.committed.values())


def test_the_book_is_carried_to_now_with_the_live_jobs_as_seen() -> None:
    carried = count_spend([HALF_AN_HOUR], BOOK, NOW).book
    assert carried == SpendBook(
        day="2026-11-30",
        month="2026-11",
        gone_today_usd=6.0,  # the vanished job's $1 moved to the gone totals
        gone_month_usd={"team-b": 9.0},
        seen={"uid-a": Contribution(12.0, 12.0, "team-a")},
    )
    assert count_spend([HALF_AN_HOUR], None, NOW).book is None


def test_a_tenants_monthly_count_adds_what_is_still_committed() -> None:
    count = SpendCount(0.0, 0.0, 0.0, {"team-a": 12.0, "team-b": 9.0}, {"team-a": 8.0}, 8.0, None)
    assert count.month_counted == {"team-a": 20.0, "team-b": 9.0}
