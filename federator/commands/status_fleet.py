"""What `federator status` found, as plain values: the fleet at one moment.

The reader (`status`) builds a `FleetStatus` from the on-prem objects; the view (`status_view`)
shows it as tables or JSON. The values live apart from both so that each side depends only on
them: the view never imports the reader's Kubernetes helpers, the reader never imports rich.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Leader:
    holder: str  # "" when the Lease names nobody
    renewed_at: float | None
    lease_duration_s: float | None

    def holds(self, now: float) -> bool:
        if not self.holder or self.renewed_at is None or self.lease_duration_s is None:
            return False
        return self.renewed_at + self.lease_duration_s > now


@dataclass(frozen=True, slots=True)
class BurstedJob:
    job: str  # "namespace/name" of the on-prem Job
    cluster: str
    pool: str
    attempt: int
    preemptions: int
    phase: str
    remote_state: str  # "" until a state was mirrored
    placed_at: float
    not_before: float  # a requeued job is not placed again before this
    expected_usd: float | None  # None: the record does not keep it
    accrued_usd: float | None  # None: the record keeps no price


@dataclass(frozen=True, slots=True)
class BudgetLine:
    scope: str  # "all" or "tenant:<name>"
    period: str  # "last hour", "today", "this month"
    spent_usd: float
    committed_usd: float
    cap_usd: float | None  # None: the policy sets no cap for it

    @property
    def used_fraction(self) -> float | None:
        if self.cap_usd is None:
            return None
        counted = self.spent_usd + self.committed_usd
        if self.cap_usd <= 0:
            return math.inf if counted > 0 else 1.0  # as budgets.Cap: a $0 cap is reached
        return counted / self.cap_usd


@dataclass(frozen=True, slots=True)
class BlockedPool:
    cluster: str
    pool: str
    until: float
    cause: str
    job: str


@dataclass(frozen=True, slots=True)
class CloudLine:
    cluster: str
    state: str  # "active", "draining", or "not in the policy" (a record still names it)
    jobs: int  # jobs whose copy is (or is being) placed there: records `placing`, `placed`
    copies: int | None = None  # copies found there (`--clouds`); None: not asked or not read
    unreachable: str = ""  # why the copies could not be read (`--clouds`), "" if they were


@dataclass(frozen=True, slots=True)
class CloudCopy:
    """One Job federator created on a cloud cluster (`status --clouds`), and what becomes of it."""

    cluster: str
    namespace: str
    name: str
    job: str  # the on-prem Job "namespace/name"; "" when no on-prem Job has its source uid
    state: str  # as the cloud says: Suspended, Pending, Running, Succeeded, Failed, Preempted
    fate: str  # why it is still there, or that the next pass collects it and why


@dataclass(frozen=True, slots=True)
class OrphanCopy:
    """A copy lost with its cluster whose on-prem Job is gone before it was settled: the spend
    book keeps it, and the budgets count it as running until its cluster shows it stopped."""

    cluster: str
    namespace: str
    name: str
    since: float  # when its attempt was requeued: counted from then
    usd_per_hour: float
    counted_usd: float  # from `since` to now: it may run on


@dataclass(frozen=True, slots=True)
class FleetStatus:
    instance: str
    now: float
    election_enabled: bool
    leader: Leader | None  # None: no Lease
    jobs: tuple[BurstedJob, ...] = ()
    budgets: tuple[BudgetLine, ...] = ()
    orphans: tuple[OrphanCopy, ...] = ()  # lost copies of Jobs that are gone (the spend book)
    blocks: tuple[BlockedPool, ...] = ()
    clouds: tuple[CloudLine, ...] = ()
    copies: tuple[CloudCopy, ...] | None = None  # None: the clouds were not asked (no --clouds)
    sources: Mapping[str, str] = field(default_factory=dict)  # what was read, for the reader
