"""Which cloud options a job has in this round, and the best of them, found without pricing all.

`RoundOptions` holds the offers sorted once by a job-independent key (price per unit of speed),
the round's ledger, and the rules (opt-out, tenant, residency, GPU type, gang shape). Searching
for a job's best pool walks offers in that order and stops as soon as even the cheapest possible
remaining offer — its bare compute cost, which every other term only adds to — cannot beat the
best found or the bar the option has to clear. That bound is what keeps a 10,000-job round
against 50 offers fast: most jobs price one or two offers, not fifty.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from federator.core import starburst
from federator.core.costs import HOUR_S, CloudEstimate, price_cloud
from federator.core.ledger import RoundLedger
from federator.core.models import CapacityType, Offer, PendingJob, Spend
from federator.core.policy import DecisionPolicy


@dataclass(frozen=True, slots=True)
class Search:
    """The outcome of looking for a job's best cloud option under a bar."""

    best: CloudEstimate | None  # the best option that fits every budget and cap
    blocked: CloudEstimate | None  # a better option that a budget or cap rules out
    blocked_by: str | None
    lower_bound_usd: float  # what no remaining option could go below when the search stopped
    fitting_offers: int  # offers the job may use at all (rules, type, shape, free GPUs)


class RoundOptions:
    """The offers, rules and ledger of one round."""

    def __init__(
        self, offers: Sequence[Offer], spend: Spend, policy: DecisionPolicy, now: float
    ) -> None:
        self.policy = policy
        self.now = now
        self.offers = tuple(
            sorted(
                offers,
                key=lambda o: (o.price_per_gpu_hour_usd / policy.speed_of(o.gpu_type), o.name),
            )
        )
        self.ledger = RoundLedger(self.offers, spend, policy)
        speeds = [policy.speed_of(o.gpu_type) for o in self.offers] or [1.0]
        # A faster GPU shortens the job; the bound must allow for the most that can save.
        self._max_speedup_saving = max(0.0, 1.0 - 1.0 / max(speeds))
        self._per_unit = [
            o.price_per_gpu_hour_usd / policy.speed_of(o.gpu_type) for o in self.offers
        ]
        self._queue: Sequence[PendingJob] = ()
        self._decided: set[str] = set()
        self._trimmed: frozenset[str] | None = None

    def follow(self, queue: Sequence[PendingJob]) -> None:
        """The round's jobs in admission order, for rules that look at the whole queue."""
        self._queue = queue

    def decided(self, job: PendingJob) -> None:
        self._decided.add(job.key)

    def starburst_trimmed(self, job: PendingJob) -> bool:
        """Starburst's `max_queue_length`: is the job in the tail beyond the cap?

        Asked first for the first job that cannot start now, when every job that can has been
        decided, which is the queue Starburst trims (after placing, before the next event).
        """
        cap = self.policy.starburst_max_queue_length
        if cap is None:
            return False
        if self._trimmed is None:
            queued = [
                other
                for other in self._queue
                if other.key not in self._decided
                and self.now < starburst.timeout_at(other, self.policy)
            ]
            self._trimmed = frozenset(other.key for other in queued[cap:])
        return job.key in self._trimmed

    def burst_blocker(self, job: PendingJob) -> str | None:
        """Why this job may not leave on-prem at all, or None."""
        if not job.burst_allowed:
            return "it opted out of bursting"
        rule = self.policy.tenant_rule(job.tenant)
        if not rule.burst_allowed:
            return f"tenant {job.tenant} never bursts"
        for need in job.datasets:
            for pattern in self.policy.resident_datasets:
                if fnmatchcase(need.name, pattern):
                    return f"dataset {need.name} must stay on-prem"
        return None

    def allows(self, job: PendingJob, offer: Offer) -> bool:
        """Rules and shape, not capacity: may this job ever run on this offer?"""
        if job.gpu_types and offer.gpu_type not in job.gpu_types:
            return False
        if job.gpus_per_pod is not None and job.gpus_per_pod > offer.gpus_per_node:
            return False
        rule = self.policy.tenant_rule(job.tenant)
        if rule.allowed_clusters and offer.cluster not in rule.allowed_clusters:
            return False
        return not (rule.allowed_regions and offer.region not in rule.allowed_regions)

    def search(self, job: PendingJob, *, value_per_hour: float, bar_usd: float) -> Search:
        """The cheapest option by expected total that fits, stopping once none can beat the bar."""
        best: CloudEstimate | None = None
        blocked: CloudEstimate | None = None
        blocked_by: str | None = None
        fitting = 0
        compute_hours = job.gpus * job.runtime_estimate_s / HOUR_S
        saving = value_per_hour * job.runtime_estimate_s / HOUR_S * self._max_speedup_saving
        bound = math.inf
        for offer, per_unit in zip(self.offers, self._per_unit, strict=True):
            bound = compute_hours * per_unit - saving
            ceiling = bar_usd if best is None else min(bar_usd, best.total_usd)
            if bound > ceiling:
                break
            if not self.allows(job, offer) or job.gpus > self.ledger.free_gpus(offer):
                continue
            fitting += 1
            option = self._cheaper_variant(job, offer, value_per_hour)
            if best is not None and option.total_usd >= best.total_usd:
                continue
            reason = self.ledger.blocker(job, offer, option.cost_usd)
            if reason is None:
                best = option
            elif blocked is None or option.total_usd < blocked.total_usd:
                blocked, blocked_by = option, reason
        else:
            bound = math.inf
        return Search(best, blocked, blocked_by, bound, fitting)

    def cheapest(
        self, job: PendingJob, capacity: CapacityType
    ) -> tuple[CloudEstimate | None, str | None]:
        """The baselines' rule: lowest list price of one capacity type that fits, else why not."""
        blocked_by: str | None = None
        candidates = sorted(
            (o for o in self.offers if o.capacity_type is capacity and self.allows(job, o)),
            key=lambda o: (o.price_per_gpu_hour_usd, o.name),
        )
        for offer in candidates:
            if job.gpus > self.ledger.free_gpus(offer):
                continue
            option = price_cloud(job, offer, now=self.now, policy=self.policy, value_per_hour=0.0)
            reason = self.ledger.blocker(job, offer, option.cost_usd)
            if reason is None:
                return option, None
            blocked_by = blocked_by or reason
        return None, blocked_by or f"no {capacity} pool has {job.gpus} free GPUs"

    def _cheaper_variant(
        self, job: PendingJob, offer: Offer, value_per_hour: float
    ) -> CloudEstimate:
        now = price_cloud(
            job, offer, now=self.now, policy=self.policy, value_per_hour=value_per_hour
        )
        if now.transfer_s <= 0:
            return now
        held = price_cloud(
            job, offer, now=self.now, policy=self.policy, value_per_hour=value_per_hour, held=True
        )
        return held if held.total_usd < now.total_usd else now
