"""Pure: which copies lost with their cluster are known to have stopped, and when.

A cluster that does not answer for `clusters[].unreachable_timeout` is taken as lost and its
jobs are placed again (docs/design.md §7). But an unreachable cluster is often only a
partition between federator and the cloud: the copy may run on, and bill, until the cluster
answers and GC deletes it. So the record keeps each such copy (`PlacementRecord.lost_copies`)
and the budgets count it as running (`charges`) until this module says when it stopped. The
federation loop writes what it says on the copy (`LostCopy.ended_at`), on the job's record or,
when the job went back on-prem, on the record it keeps (`Moves.settle_lost_copies`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from federator.federation.ports import CloudView
from federator.federation.records import LostCopy, PlacementRecord


def settlements(
    record: PlacementRecord, clouds: Mapping[str, CloudView], now: float
) -> tuple[tuple[LostCopy, float], ...]:
    """Each unsettled lost copy of `record` whose end is known now, with that end
    (`stopped_at`)."""
    return ends_known(record.lost_copies, clouds, now)


def ends_known(
    copies: Iterable[LostCopy], clouds: Mapping[str, CloudView], now: float
) -> tuple[tuple[LostCopy, float], ...]:
    """Each unsettled copy of `copies` whose end is known now, with that end: a record's
    (`settlements`) or those the spend book keeps for Jobs that are gone."""
    ends = (
        (lost, stopped_at(lost, clouds.get(lost.cluster), now))
        for lost in copies
        if not lost.settled
    )
    return tuple((lost, end) for lost, end in ends if end is not None)


def stopped_at(lost: LostCopy, view: CloudView | None, now: float) -> float | None:
    """When the lost copy stopped, as far as its cluster's view says; None while unknown.

    - a cluster the policy no longer names (no view): never known, it counts on;
    - a cluster down, or not listed since it came back: unknown yet;
    - the copy gone from the view (GC deleted it, or it never came back): `now`, the pass that
      saw it gone; when it went in between is not known, and later is the budgets' safe side;
    - the copy there and finished: its finish (not before `since`: up to then it is already
      in `earlier_usd`);
    - the copy there and not finished: it may run on (GC deletes it), so it counts on.
    """
    if view is None or not (view.up and view.synced):
        return None
    copy = next(
        (c for c in view.copies if (c.namespace, c.name) == (lost.namespace, lost.name)), None
    )
    if copy is None:
        return now
    if copy.finished_at is not None:
        return max(lost.since, min(copy.finished_at, now))
    return None
