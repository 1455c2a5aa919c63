"""What one decision round may still spend and occupy in the clouds.

The round starts from `Spend` (money already spent, jobs and GPUs already bursted) and the
offers' free GPUs; every burst decided in the round is charged here before the next job is
considered, so two jobs can never both take the last GPUs of a pool, the last dollars of a
budget or the last slot under a cap. Budgets are charged with expected costs, conservatively:
the daily and monthly budgets with the whole job's expected cost at once, the hourly budget
with the burst's hourly burn rate. Offers are addressed by their index in the round's sorted
offer list, which keeps the per-job checks cheap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from federator.core.models import Offer, PendingJob, Spend
from federator.core.policy import DecisionPolicy
from federator.core.reasons import usd

_SLACK = 1e-9  # float sums must not turn "exactly at the budget" into "over it"


class RoundLedger:
    """Running totals for one round; `blocker` says why a burst would not fit, `charge` books it."""

    def __init__(self, offers: Sequence[Offer], spend: Spend, policy: DecisionPolicy) -> None:
        self._policy = policy
        self._offers = offers
        self.free = [max(0, offer.free_gpus) for offer in offers]
        self.most_free = max(self.free, default=0)
        self._hour_usd = spend.last_hour_usd
        self._day_usd = spend.today_usd
        self._tenant_usd = dict(spend.tenant_month_usd)
        self._jobs = spend.bursted_jobs
        self._gpus = spend.bursted_gpus
        self._cluster_jobs = dict(spend.cluster_bursted_jobs)
        self._cluster_gpus = dict(spend.cluster_bursted_gpus)

    def blocker(
        self, job: PendingJob, index: int, cost_usd: float, *, global_caps: bool = True
    ) -> str | None:
        """None when the burst fits every budget and cap, else the first one it would break.

        `global_caps=False` leaves out the caps on all clouds together, which rule out every
        pool alike: a search asks `global_cap_blocker` once per job, not once per option."""
        offer = self._offers[index]
        if job.gpus > self.free[index]:
            return f"{offer.name} has {self.free[index]} free GPUs"
        return (
            self._budget_blocker(job, offer, cost_usd)
            or (self.global_cap_blocker(job) if global_caps else None)
            or self._cluster_cap_blocker(job, offer)
        )

    def money_room_usd(self, job: PendingJob) -> float:
        """The most a burst of this job may cost under the daily and the tenant's budget."""
        budgets = self._policy.budgets
        room = math.inf
        if budgets.max_usd_per_day is not None:
            room = budgets.max_usd_per_day - self._day_usd + _SLACK
        monthly = self._monthly_budget(job)
        if monthly is not None:
            room = min(room, monthly - self._tenant_usd.get(job.tenant, 0.0) + _SLACK)
        return room

    def burn_room_usd_per_hour(self) -> float:
        """How much hourly burn rate the hourly budget still allows."""
        hourly = self._policy.budgets.max_usd_per_hour
        return math.inf if hourly is None else hourly - self._hour_usd + _SLACK

    def charge(self, job: PendingJob, index: int, cost_usd: float) -> None:
        offer = self._offers[index]
        was_most = self.free[index] == self.most_free
        self.free[index] -= job.gpus
        if was_most:
            self.most_free = max(self.free)
        self._hour_usd += offer.price_per_gpu_hour_usd * job.gpus
        self._day_usd += cost_usd
        self._tenant_usd[job.tenant] = self._tenant_usd.get(job.tenant, 0.0) + cost_usd
        self._jobs += 1
        self._gpus += job.gpus
        self._cluster_jobs[offer.cluster] = self._cluster_jobs.get(offer.cluster, 0) + 1
        self._cluster_gpus[offer.cluster] = self._cluster_gpus.get(offer.cluster, 0) + job.gpus

    def exhausted(self) -> bool:
        """No job of any size can burst anywhere for the rest of the round: the caps on all
        clouds together are reached, or no pool has a free GPU (budgets aside: a cheaper job
        may still fit one)."""
        caps = self._policy.caps
        if caps.max_bursted_jobs is not None and self._jobs >= caps.max_bursted_jobs:
            return True
        if caps.max_bursted_gpus is not None and self._gpus >= caps.max_bursted_gpus:
            return True
        return self.most_free <= 0

    def global_cap_blocker(self, job: PendingJob) -> str | None:
        caps = self._policy.caps
        if caps.max_bursted_jobs is not None and self._jobs + 1 > caps.max_bursted_jobs:
            return f"the cap of {caps.max_bursted_jobs} bursted jobs"
        if caps.max_bursted_gpus is not None and self._gpus + job.gpus > caps.max_bursted_gpus:
            return f"the cap of {caps.max_bursted_gpus} bursted GPUs"
        return None

    def _monthly_budget(self, job: PendingJob) -> float | None:
        budgets = self._policy.budgets
        return budgets.tenant_max_usd_per_month.get(
            job.tenant, budgets.default_tenant_max_usd_per_month
        )

    def _budget_blocker(self, job: PendingJob, offer: Offer, cost_usd: float) -> str | None:
        budgets = self._policy.budgets
        hourly = budgets.max_usd_per_hour
        burn = offer.price_per_gpu_hour_usd * job.gpus
        if hourly is not None and self._hour_usd + burn > hourly + _SLACK:
            # What is compared is a burn rate, not the job's whole cost (the line before this
            # says "at $160" for the job's expected bill): say so.
            return (
                f"hourly budget {usd(hourly)} (its {usd(burn)}/h on top of "
                f"{usd(self._hour_usd)} in the last hour)"
            )
        daily = budgets.max_usd_per_day
        if daily is not None and self._day_usd + cost_usd > daily + _SLACK:
            return f"daily budget {usd(daily)}"
        monthly = self._monthly_budget(job)
        spent = self._tenant_usd.get(job.tenant, 0.0)
        if monthly is not None and spent + cost_usd > monthly + _SLACK:
            return f"tenant {job.tenant}'s monthly budget {usd(monthly)}"
        return None

    def _cluster_cap_blocker(self, job: PendingJob, offer: Offer) -> str | None:
        caps = self._policy.caps
        cluster = offer.cluster
        cluster_jobs = caps.cluster_max_bursted_jobs.get(cluster)
        if cluster_jobs is not None and self._cluster_jobs.get(cluster, 0) + 1 > cluster_jobs:
            return f"{cluster}'s cap of {cluster_jobs} bursted jobs"
        cluster_gpus = caps.cluster_max_bursted_gpus.get(cluster)
        used = self._cluster_gpus.get(cluster, 0)
        if cluster_gpus is not None and used + job.gpus > cluster_gpus:
            return f"{cluster}'s cap of {cluster_gpus} bursted GPUs"
        return None
