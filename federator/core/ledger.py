"""What one decision round may still spend and occupy in the clouds.

The round starts from `Spend` (money already spent, jobs and GPUs already bursted) and the
offers' free GPUs; every burst decided in the round is charged here before the next job is
considered, so two jobs can never both take the last GPUs of a pool, the last dollars of a
budget or the last slot under a cap. Budgets are charged with expected costs, conservatively:
the daily and monthly budgets with the whole job's expected cost at once, the hourly budget
with the burst's hourly burn rate.
"""

from __future__ import annotations

from federator.core.models import Offer, PendingJob, Spend
from federator.core.policy import DecisionPolicy

_SLACK = 1e-9  # float sums must not turn "exactly at the budget" into "over it"


class RoundLedger:
    """Running totals for one round; `blocker` says why a burst would not fit, `charge` books it."""

    def __init__(self, offers: tuple[Offer, ...], spend: Spend, policy: DecisionPolicy) -> None:
        self._policy = policy
        self._free = {offer.name: max(0, offer.free_gpus) for offer in offers}
        self._hour_usd = spend.last_hour_usd
        self._day_usd = spend.today_usd
        self._tenant_usd = dict(spend.tenant_month_usd)
        self._jobs = spend.bursted_jobs
        self._gpus = spend.bursted_gpus
        self._cluster_jobs = dict(spend.cluster_bursted_jobs)
        self._cluster_gpus = dict(spend.cluster_bursted_gpus)

    def free_gpus(self, offer: Offer) -> int:
        return self._free.get(offer.name, 0)

    def blocker(self, job: PendingJob, offer: Offer, cost_usd: float) -> str | None:
        """None when the burst fits every budget and cap, else the first one it would break."""
        if job.gpus > self.free_gpus(offer):
            return f"{offer.name} has {self.free_gpus(offer)} free GPUs"
        return self._budget_blocker(job, offer, cost_usd) or self._cap_blocker(job, offer)

    def charge(self, job: PendingJob, offer: Offer, cost_usd: float) -> None:
        self._free[offer.name] = self.free_gpus(offer) - job.gpus
        self._hour_usd += _hourly_usd(job, offer)
        self._day_usd += cost_usd
        self._tenant_usd[job.tenant] = self._tenant_usd.get(job.tenant, 0.0) + cost_usd
        self._jobs += 1
        self._gpus += job.gpus
        self._cluster_jobs[offer.cluster] = self._cluster_jobs.get(offer.cluster, 0) + 1
        self._cluster_gpus[offer.cluster] = self._cluster_gpus.get(offer.cluster, 0) + job.gpus

    def _budget_blocker(self, job: PendingJob, offer: Offer, cost_usd: float) -> str | None:
        budgets = self._policy.budgets
        hourly = budgets.max_usd_per_hour
        if hourly is not None and self._hour_usd + _hourly_usd(job, offer) > hourly + _SLACK:
            return f"hourly budget ${hourly:,.0f}"
        daily = budgets.max_usd_per_day
        if daily is not None and self._day_usd + cost_usd > daily + _SLACK:
            return f"daily budget ${daily:,.0f}"
        monthly = budgets.tenant_max_usd_per_month.get(
            job.tenant, budgets.default_tenant_max_usd_per_month
        )
        spent = self._tenant_usd.get(job.tenant, 0.0)
        if monthly is not None and spent + cost_usd > monthly + _SLACK:
            return f"tenant {job.tenant}'s monthly budget ${monthly:,.0f}"
        return None

    def _cap_blocker(self, job: PendingJob, offer: Offer) -> str | None:
        caps = self._policy.caps
        if caps.max_bursted_jobs is not None and self._jobs + 1 > caps.max_bursted_jobs:
            return f"the cap of {caps.max_bursted_jobs} bursted jobs"
        if caps.max_bursted_gpus is not None and self._gpus + job.gpus > caps.max_bursted_gpus:
            return f"the cap of {caps.max_bursted_gpus} bursted GPUs"
        cluster = offer.cluster
        cluster_jobs = caps.cluster_max_bursted_jobs.get(cluster)
        if cluster_jobs is not None and self._cluster_jobs.get(cluster, 0) + 1 > cluster_jobs:
            return f"{cluster}'s cap of {cluster_jobs} bursted jobs"
        cluster_gpus = caps.cluster_max_bursted_gpus.get(cluster)
        used = self._cluster_gpus.get(cluster, 0)
        if cluster_gpus is not None and used + job.gpus > cluster_gpus:
            return f"{cluster}'s cap of {cluster_gpus} bursted GPUs"
        return None


def _hourly_usd(job: PendingJob, offer: Offer) -> float:
    return offer.price_per_gpu_hour_usd * job.gpus
