"""Pure: what the placement records count against the budgets at a moment.

`count_spend` sums what each record counts (the helpers below) over the records and the spend
book. The federation loop calls it at every pass (`SpendLedger.spend`) and `federator status`
calls it to show the same sums, so what an operator reads is what the budgets count.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from federator.federation.records import LostCopy, Phase, PlacementRecord
from federator.federation.spending import Contribution, SpendBook


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A placement record and the job it belongs to: its uid (the spend book's key for it)
    and the tenant its spend counts against. A job that went back on-prem has no record but
    may keep one (`OnPremJob.returned_record`, `kept`) whose lost copies it still counts."""

    uid: str
    tenant: str
    record: PlacementRecord | None
    kept: PlacementRecord | None = None

    @property
    def lost_copies(self) -> tuple[LostCopy, ...]:
        """The job's copies lost with their cluster: its record's, else its kept record's (a
        new record carries them over, `Moves.burst`)."""
        holder = self.record if self.record is not None else self.kept
        return holder.lost_copies if holder is not None else ()


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
        # Each lost copy is a contribution of its own, kept while the Job is there, record or
        # not: a return on-prem neither loses it nor counts it again when the job bursts anew.
        for lost in job.lost_copies:
            live[lost.key(job.uid)] = lost_copy_contribution(lost, job.tenant, now)
            hour_spent += lost.cost_usd(now, after=now - 3600.0)
            hour_counted += lost_copy_hourly_charge(lost, now)
        record = job.record
        if record is None:
            continue
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
    # The lost copies whose Job went before they were settled count as they did with it.
    orphans: dict[str, Contribution] = {}
    for key, kept in (book.orphans_besides(live) if book is not None else {}).items():
        assert kept.lost is not None
        live[key] = orphans[key] = lost_copy_contribution(kept.lost, kept.tenant, now)
        hour_spent += kept.lost.cost_usd(now, after=now - 3600.0)
        hour_counted += lost_copy_hourly_charge(kept.lost, now)
    today = sum(c.today_usd for c in live.values())
    month: dict[str, float] = {}
    for contribution in live.values():
        month[contribution.tenant] = month.get(contribution.tenant, 0.0) + contribution.month_usd
    if book is not None:
        day, month_name = midnight.strftime("%Y-%m-%d"), midnight.strftime("%Y-%m")
        book = book.carry(live, day=day, month=month_name, orphans=orphans)
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

    The current attempt's cost is split at `since`; lost attempts count as `_lost_since` says.
    The copies lost with their cluster are not in it: they count on their own (`count_spend`).
    """
    return _lost_since(record, since) + record.attempt_cost_usd(now, since=since)


def _lost_since(record: PlacementRecord, since: float) -> float:
    """The lost attempts' cost (`earlier_usd`), whole, if they may have run after `since`: they
    all ended before the current attempt was placed, and a requeued one no later than its
    `not_before`. When in that window they were spent is not kept; over-counting is a budget's
    safe side (a preempted hour would otherwise vanish from the hourly budget at once)."""
    ended_by = record.not_before if record.phase is Phase.REQUEUED else record.placed_at
    return record.earlier_usd if ended_by >= since else 0.0


def lost_copy_contribution(lost: LostCopy, tenant: str, now: float) -> Contribution:
    """What a copy lost with its cluster adds to today and this month, the copy with it (the
    book keeps it if its Job goes before it is settled)."""
    _, day_start, month_start = periods(now)
    return Contribution(
        today_usd=lost.cost_usd(now, after=day_start),
        month_usd=lost.cost_usd(now, after=month_start),
        tenant=tenant,
        lost=lost,
    )


def lost_copy_hourly_charge(lost: LostCopy, now: float) -> float:
    """What a copy lost with its cluster counts against the hourly budget: what it cost in the
    last hour, and while it is not settled at least its rate, as a live placement: a
    partition is not a deletion, and a copy federator cannot see may bill on for the next
    hour too, beside the job's new placement, until its cluster answers and GC deletes it."""
    spent = lost.cost_usd(now, after=now - 3600.0)
    return spent if lost.settled else max(spent, lost.usd_per_hour)


def hourly_charge(record: PlacementRecord, now: float) -> float:
    """What the job counts against the hourly budget: what it spent in the last hour, lost
    attempts included (`_lost_since`), and a live placement at least its burn rate for an hour.
    The round ledger charges a new burst with its burn rate; a burst placed one pass ago has
    accrued almost nothing, and counted at that, every pass would find the budget free again
    and burst as much once more. The copies lost with their cluster count on their own
    (`lost_copy_hourly_charge`).
    """
    since = now - 3600.0
    spent = record.attempt_cost_usd(now, since=since)
    if record.phase in (Phase.PLACING, Phase.PLACED) and record.finished_at is None:
        spent = max(spent, record.price_per_gpu_hour_usd * record.gpus)
    return _lost_since(record, since) + spent


def still_committed(record: PlacementRecord, now: float) -> float:
    """The part of a live placement's expected cost that has not accrued yet: budgets count it
    now (as the round ledger does within a pass), or every pass would promise it again. It is
    never carried into the spend book: a placement that goes away spends no more.
    """
    if record.phase not in (Phase.PLACING, Phase.PLACED) or record.finished_at is not None:
        return 0.0
    return max(0.0, record.expected_cost_usd - record.attempt_cost_usd(now))
