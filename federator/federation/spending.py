"""Pure: the spend of bursts whose on-prem Job is gone, so budgets still count it.

Spend is read from the placement records on the on-prem Jobs at every pass. A Job that its
owner deletes (or a `ttlSecondsAfterFinished` controller removes), or whose record federator
drops when the job returns on-prem, takes that record with it — and with it dollars already
spent today and this month. The `SpendBook` remembers, per job, what it contributed at the
last pass; when a job is no longer there, its last contribution moves into the book's
"gone" totals, which count until the day (or month) they belong to ends.

A copy lost with its cluster (`records.LostCopy`) is different: it may run on, and bill, in a
partitioned cloud until its cluster answers and GC deletes it. If its Job goes before the copy
is settled, what it counted at the last pass is not what it will cost. So the book keeps such a
copy (`orphans`): the budgets count it as running, as they did while its Job was there, until
the federation loop settles it from its cluster's view (`SpendLedger.settle_orphans`); the pass
after that, its fixed cost joins the gone totals like any vanished contribution.

The book is a value; the federation loop keeps it in a ConfigMap through a `SpendStore` port
(`federator/kube/spend_store.py`), so a restart or a new leader remembers it too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from federator.federation.records import LostCopy


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one live job adds to the budgets now."""

    today_usd: float
    month_usd: float
    tenant: str
    # The copy, when this is a copy lost with its cluster: kept by the book as an orphan if its
    # Job goes before the copy is settled.
    lost: LostCopy | None = None

    @property
    def unsettled_copy(self) -> bool:
        return self.lost is not None and not self.lost.settled


@dataclass(frozen=True, slots=True)
class SpendBook:
    day: str = ""  # "2026-11-29" (UTC): the day `gone_today_usd` belongs to
    month: str = ""  # "2026-11": the month `gone_month_usd` belongs to
    gone_today_usd: float = 0.0
    gone_month_usd: Mapping[str, float] = field(default_factory=dict)  # per tenant
    seen: Mapping[str, Contribution] = field(default_factory=dict)  # job uid -> last pass's
    # Lost copies whose Job went before they were settled, by `LostCopy.key`: still counted.
    orphans: Mapping[str, Contribution] = field(default_factory=dict)

    def orphans_besides(self, live: Mapping[str, Contribution]) -> dict[str, Contribution]:
        """The lost copies this pass counts though no Job holds them (none is in `live`): those
        the book keeps, and the unsettled ones of jobs that went since the last pass. One the
        loop settled is still here for this pass, at its fixed cost."""
        found = {key: kept for key, kept in self.orphans.items() if key not in live}
        for key, last in self.seen.items():
            if key not in live and key not in found and last.unsettled_copy:
                found[key] = last
        return found

    def carry(
        self,
        live: Mapping[str, Contribution],
        *,
        day: str,
        month: str,
        orphans: Mapping[str, Contribution] | None = None,
    ) -> SpendBook:
        """The book after a pass that saw `live` jobs: the vanished ones' spend is kept, and
        the `orphans` the pass counted (`orphans_besides`, also in `live`) stay in the book
        while unsettled; a settled one leaves it and, the pass after, joins the gone totals."""
        gone_today = self.gone_today_usd if day == self.day else 0.0
        gone_month = dict(self.gone_month_usd) if month == self.month else {}
        for uid, last in self.seen.items():
            if uid in live:
                continue
            if day == self.day:
                gone_today += last.today_usd
            if month == self.month:
                gone_month[last.tenant] = gone_month.get(last.tenant, 0.0) + last.month_usd
        kept = {key: live[key] for key in orphans or {} if key in live and live[key].unsettled_copy}
        return SpendBook(day, month, gone_today, gone_month, dict(live), kept)

    def settled(self, ends: Mapping[str, float]) -> SpendBook:
        """The book with each orphan in `ends` (by key) settled at its end."""
        orphans = dict(self.orphans)
        for key, end in ends.items():
            kept = orphans[key]
            assert kept.lost is not None
            orphans[key] = replace(kept, lost=replace(kept.lost, ended_at=end))
        return replace(self, orphans=orphans)

    def same_jobs(self, other: SpendBook) -> bool:
        """Whether a save would change what a restart needs (the set of jobs, the totals)."""
        return (
            (self.day, self.month, self.gone_today_usd)
            == (other.day, other.month, other.gone_today_usd)
            and dict(self.gone_month_usd) == dict(other.gone_month_usd)
            and self.seen.keys() == other.seen.keys()
            and _copies(self.seen) == _copies(other.seen)
            and _copies(self.orphans) == _copies(other.orphans)
        )

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "day": self.day,
            "month": self.month,
            "gone_today_usd": self.gone_today_usd,
            "gone_month_usd": dict(self.gone_month_usd),
            "seen": {uid: _contribution_data(c) for uid, c in sorted(self.seen.items())},
            "orphans": {key: _contribution_data(c) for key, c in sorted(self.orphans.items())},
        }
        return json.dumps(data, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SpendBook:
        """Raises ValueError for anything but a book this version wrote."""
        try:
            data = json.loads(text)
            return cls(
                day=str(data["day"]),
                month=str(data["month"]),
                gone_today_usd=float(data["gone_today_usd"]),
                gone_month_usd={str(k): float(v) for k, v in data["gone_month_usd"].items()},
                seen={str(uid): _contribution(c) for uid, c in data["seen"].items()},
                # Books written before orphans were kept have none.
                orphans={str(k): _contribution(c) for k, c in data.get("orphans", {}).items()},
            )
        except (KeyError, TypeError, AttributeError, ValueError) as error:
            raise ValueError(f"not a spend book: {error}") from error


def _copies(contributions: Mapping[str, Contribution]) -> dict[str, LostCopy]:
    """The lost copies among `contributions`, by key: a restart that read a book where one
    still runs, though it was settled on its record, would count it on as an orphan if its
    Job then went, so a settlement is written at once (lost copies are few)."""
    return {key: c.lost for key, c in contributions.items() if c.lost is not None}


def _contribution_data(contribution: Contribution) -> list[Any]:
    data: list[Any] = [contribution.today_usd, contribution.month_usd, contribution.tenant]
    return data if contribution.lost is None else [*data, contribution.lost.to_data()]


def _contribution(data: Any) -> Contribution:
    """A contribution as `_contribution_data` wrote it (three items before lost copies were
    kept with theirs)."""
    today, month, tenant, *lost = data
    if len(lost) > 1:
        raise ValueError(f"a contribution of {len(data)} items")
    copy = LostCopy.from_data(lost[0]) if lost else None
    return Contribution(float(today), float(month), str(tenant), copy)
