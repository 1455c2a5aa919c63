"""Pure: the spend of bursts whose on-prem Job is gone, so budgets still count it.

Spend is read from the placement records on the on-prem Jobs at every pass. A Job that its
owner deletes (or a `ttlSecondsAfterFinished` controller removes), or whose record federator
drops when the job returns on-prem, takes that record with it — and with it dollars already
spent today and this month. The `SpendBook` remembers, per job, what it contributed at the
last pass; when a job is no longer there, its last contribution moves into the book's
"gone" totals, which count until the day (or month) they belong to ends.

The book is a value; the federation loop keeps it in a ConfigMap through a `SpendStore` port
(`federator/kube/spend_store.py`), so a restart or a new leader remembers it too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one live job adds to the budgets now."""

    today_usd: float
    month_usd: float
    tenant: str


@dataclass(frozen=True, slots=True)
class SpendBook:
    day: str = ""  # "2026-11-29" (UTC): the day `gone_today_usd` belongs to
    month: str = ""  # "2026-11": the month `gone_month_usd` belongs to
    gone_today_usd: float = 0.0
    gone_month_usd: Mapping[str, float] = field(default_factory=dict)  # per tenant
    seen: Mapping[str, Contribution] = field(default_factory=dict)  # job uid -> last pass's

    def carry(self, live: Mapping[str, Contribution], *, day: str, month: str) -> SpendBook:
        """The book after a pass that saw `live` jobs: the vanished ones' spend is kept."""
        gone_today = self.gone_today_usd if day == self.day else 0.0
        gone_month = dict(self.gone_month_usd) if month == self.month else {}
        for uid, last in self.seen.items():
            if uid in live:
                continue
            if day == self.day:
                gone_today += last.today_usd
            if month == self.month:
                gone_month[last.tenant] = gone_month.get(last.tenant, 0.0) + last.month_usd
        return SpendBook(day, month, gone_today, gone_month, dict(live))

    def same_jobs(self, other: SpendBook) -> bool:
        """Whether a save would change what a restart needs (the set of jobs, the totals)."""
        return (
            (self.day, self.month, self.gone_today_usd)
            == (other.day, other.month, other.gone_today_usd)
            and dict(self.gone_month_usd) == dict(other.gone_month_usd)
            and self.seen.keys() == other.seen.keys()
        )

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "day": self.day,
            "month": self.month,
            "gone_today_usd": self.gone_today_usd,
            "gone_month_usd": dict(self.gone_month_usd),
            "seen": {
                uid: [c.today_usd, c.month_usd, c.tenant] for uid, c in sorted(self.seen.items())
            },
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
                seen={
                    str(uid): Contribution(float(t), float(m), str(tenant))
                    for uid, (t, m, tenant) in data["seen"].items()
                },
            )
        except (KeyError, TypeError, AttributeError, ValueError) as error:
            raise ValueError(f"not a spend book: {error}") from error
