"""Pure: what one placement record counts against the budgets at a moment.

The federation loop sums these over the live records at every pass (`SpendLedger.spend`), and
`federator status` shows the same sums, so what an operator reads is what the budgets count.
"""

from __future__ import annotations

from datetime import UTC, datetime

from federator.federation.records import Phase, PlacementRecord


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
    """
    return _lost_since(record, since) + record.attempt_cost_usd(now, since=since)


def _lost_since(record: PlacementRecord, since: float) -> float:
    """The lost attempts' cost (`earlier_usd`), whole, if they may have run after `since`: they
    all ended before the current attempt was placed, and a requeued one no later than its
    `not_before`. When in that window they were spent is not kept; over-counting is a budget's
    safe side (a preempted hour would otherwise vanish from the hourly budget at once)."""
    ended_by = record.not_before if record.phase is Phase.REQUEUED else record.placed_at
    return record.earlier_usd if ended_by >= since else 0.0


def hourly_charge(record: PlacementRecord, now: float) -> float:
    """What the job counts against the hourly budget: what it spent in the last hour, lost
    attempts included (`_lost_since`), and a live placement at least its burn rate for an hour.
    The round ledger charges a new burst with its burn rate; a burst placed one pass ago has
    accrued almost nothing, and counted at that, every pass would find the budget free again
    and burst as much once more.
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
