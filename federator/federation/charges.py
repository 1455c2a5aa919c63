"""Pure: what the placement records count against the budgets at a moment.

`count_spend` sums what each record counts (the helpers below) over the records and the spend
book. The federation loop calls it at every pass (`SpendLedger.spend`) and `federator status`
calls it to show the same sums, so what an operator reads is what the budgets count.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from federator.federation.records import Phase, PlacementRecord
from federator.federation.spending import Contribution, SpendBook


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A placement record and the job it belongs to: its uid (the spend book's key for it)
    and the tenant its spend counts against."""

    uid: str
    tenant: str
    record: PlacementRecord


@dataclass(frozen=True, slots=True)
class SpendCount:
    """The spend of the records and the spend book per period, spent and committed apart."""

    hour_spent: float  # accrued in the last hour
    hour_counted: float  # what the hourly budget counts: a live placement its burn rate at least
    today_spent: float  # accrued since midnight UTC, jobs that are gone included
    month_spent: Mapping[str, float]  # per tenant, since the month began, gone jobs included
    committed: Mapping[str, float]  # per tenant: what live placements are still expected to cost
    committed_total: float  # the same, all tenants (summed in the records' order)
    book: SpendBook | None  # the book carried to this moment (None without a book)

    @property
    def month_counted(self) -> dict[str, float]:
        """Each tenant's monthly spend as its budget counts it: spent plus still committed."""
        month = dict(self.month_spent)
        for tenant, usd in self.committed.items():
            month[tenant] = month.get(tenant, 0.0) + usd
        return month


def count_spend(jobs: Iterable[JobRecord], book: SpendBook | None, now: float) -> SpendCount:
    """What `jobs`' records and the jobs gone from `book` count against the budgets at `now`.

    The book is carried as a pass carries it (the jobs missing from `jobs` move to its gone
    totals); the caller decides whether to keep or write the carried book.
    """
    midnight, day_start, month_start = periods(now)
    live: dict[str, Contribution] = {}
    hour_spent = hour_counted = committed_total = 0.0
    committed: dict[str, float] = {}
    for job in jobs:
        record = job.record
        # Only money spent goes to the book: a job whose record goes away takes its promise
        # with it, but not what it already cost.
        live[job.uid] = Contribution(
            today_usd=spent_since(record, now, day_start),
            month_usd=spent_since(record, now, month_start),
            tenant=job.tenant,
        )
        hour_spent += spent_since(record, now, now - 3600.0)
        hour_counted += hourly_charge(record, now)
        still = still_committed(record, now)
        committed_total += still
        committed[job.tenant] = committed.get(job.tenant, 0.0) + still
    today = sum(c.today_usd for c in live.values())
    month: dict[str, float] = {}
    for contribution in live.values():
        month[contribution.tenant] = month.get(contribution.tenant, 0.0) + contribution.month_usd
    if book is not None:
        book = book.carry(live, day=midnight.strftime("%Y-%m-%d"), month=midnight.strftime("%Y-%m"))
        today += book.gone_today_usd
        for tenant, usd in book.gone_month_usd.items():
            month[tenant] = month.get(tenant, 0.0) + usd
    return SpendCount(hour_spent, hour_counted, today, month, committed, committed_total, book)


def periods(now: float) -> tuple[datetime, float, float]:
    """The UTC midnight that began today, and the starts of the day and the month in epoch
    seconds: the periods the daily and monthly budgets count."""
    midnight = datetime.fromtimestamp(now, tz=UTC).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    return midnight, midnight.timestamp(), midnight.replace(day=1).timestamp()


def spent_since(record: PlacementRecord, now: float, since: float) -> float:
    """What the job's attempts cost after `since` (the start of a day or a month).

    The current attempt's cost is split at `since`; lost attempts count as `_lost_since` says,
    and the copies lost with their cluster as running until now (`_lost_copies_since`).
    """
    return (
        _lost_since(record, since)
        + _lost_copies_since(record, now, since)
        + record.attempt_cost_usd(now, since=since)
    )


def _lost_since(record: PlacementRecord, since: float) -> float:
    """The lost attempts' cost (`earlier_usd`), whole, if they may have run after `since`: they
    all ended before the current attempt was placed, and a requeued one no later than its
    `not_before`. When in that window they were spent is not kept; over-counting is a budget's
    safe side (a preempted hour would otherwise vanish from the hourly budget at once). A copy
    lost with its cluster may have run on beside the current attempt until it was settled
    (`earlier_ended_at`)."""
    ended_by = record.not_before if record.phase is Phase.REQUEUED else record.placed_at
    ended_by = max(ended_by, record.earlier_ended_at)
    return record.earlier_usd if ended_by >= since else 0.0


def _lost_copies_since(record: PlacementRecord, now: float, since: float) -> float:
    """What the copies lost with their cluster cost after `since`, each taken as running at
    its rate until it is settled (`lost_copies`): a partition is not a deletion, and a copy
    federator cannot see may bill on, beside the job's new placement, until its cluster
    answers again and GC deletes it."""
    return sum(lost.cost_usd(now, after=since) for lost in record.lost_copies)


def hourly_charge(record: PlacementRecord, now: float) -> float:
    """What the job counts against the hourly budget: what it spent in the last hour, lost
    attempts included (`_lost_since`), and a live placement at least its burn rate for an hour.
    The round ledger charges a new burst with its burn rate; a burst placed one pass ago has
    accrued almost nothing, and counted at that, every pass would find the budget free again
    and burst as much once more. A copy lost with its cluster counts as a live one does: it
    may run on for the next hour too.
    """
    since = now - 3600.0
    spent = record.attempt_cost_usd(now, since=since)
    if record.phase in (Phase.PLACING, Phase.PLACED) and record.finished_at is None:
        spent = max(spent, record.price_per_gpu_hour_usd * record.gpus)
    lost = sum(max(c.cost_usd(now, after=since), c.usd_per_hour) for c in record.lost_copies)
    return _lost_since(record, since) + lost + spent


def still_committed(record: PlacementRecord, now: float) -> float:
    """The part of a live placement's expected cost that has not accrued yet: budgets count it
    now (as the round ledger does within a pass), or every pass would promise it again. It is
    never carried into the spend book: a placement that goes away spends no more.
    """
    if record.phase not in (Phase.PLACING, Phase.PLACED) or record.finished_at is not None:
        return 0.0
    return max(0.0, record.expected_cost_usd - record.attempt_cost_usd(now))
