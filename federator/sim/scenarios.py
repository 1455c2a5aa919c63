"""The scenario's rules: what the simulated world holds and what the policy file allows in it.

A `Scenario` is fixed for a run: the on-prem cluster's size, the cloud pools, what the
policies are told (runtime estimates, data sizes, decision period) and the policy file's
rules copied from the decision policy (caps, queues that may not burst, tenants and where
each may burst). It answers which pools a job may use; the pre-run checks (`federator.sim.fits`),
the world's cloud room (`federator.sim.world`) and the event loop (`federator.sim.engine`) all
ask it, so one reading of the rules holds everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from federator.core.models import CapacityType
from federator.core.policy import Caps, TenantRule
from federator.sim.cloud import CloudPool, JobPhysics
from federator.sim.estimates import EstimateMode
from federator.sim.traces import TraceJob

_DEFAULT_TENANT = "default"  # `PendingJob.tenant`'s, for a queue no tenant was worked out for


@dataclass(frozen=True, slots=True)
class Scenario:
    """The simulated world: the on-prem cluster, the cloud pools, what the policy is told."""

    onprem_gpus: int
    gpus_per_node: int = 8
    pools: tuple[CloudPool, ...] = ()
    estimate: EstimateMode = field(default_factory=lambda: EstimateMode("exact"))
    seed: int = 0
    physics: JobPhysics = field(default_factory=lambda: JobPhysics(checkpoint_interval_s=1800.0))
    dataset_bytes_per_job: int = 0  # traces carry no data sizes; 0 unless configured
    output_bytes_per_job: int = 0  # results each bursted job copies back (egress)
    decision_period_s: float = 30.0
    # The policy file's caps on what runs in the clouds at once (the decision policy's own,
    # copied here by `setup`): the world needs them to tell a job that waits for room from
    # one that waits for a price, and a job that can never run from one that can.
    caps: Caps = field(default_factory=Caps)
    # Trace queues whose jobs may not burst, each with the policy file's reason (its queue's
    # `burst` mode or a `burst_rules` entry, as `federator.policy.may_burst` reads them).
    burst_refused: Mapping[str, str] = field(default_factory=dict)
    # The tenant of each trace queue's jobs, as the daemon names it (`setup.trace_tenants`); a
    # queue not listed keeps the core's default tenant.
    tenants: Mapping[str, str] = field(default_factory=dict)
    # Where each tenant's jobs may go (the decision policy's rules, copied here by `setup`): the
    # pre-run checks need them to tell which pools a job's tenant can ever use.
    tenant_rules: Mapping[str, TenantRule] = field(default_factory=dict)

    def may_burst(self, job: TraceJob) -> bool:
        """Whether the policy file lets this job leave on-prem at all (its queue's rules)."""
        return job.queue not in self.burst_refused

    def tenant_of(self, job: TraceJob) -> str:
        return self.tenants.get(job.queue, _DEFAULT_TENANT)

    def tenant_allows(self, job: TraceJob, pool: CloudPool) -> bool:
        """Whether the job's tenant may use this pool: its allowed clusters and regions, as the
        core reads them (an empty set: no restriction)."""
        rule = self.tenant_rules.get(self.tenant_of(job))
        return rule is None or rule.allows(pool.cluster, pool.region)

    def tenant_scope(self, job: TraceJob) -> str | None:
        """Where the job's tenant may burst, as a person reads it ("tenant t may use only
        cloud-a in region us-east-1"); None when its tenant restricts neither."""
        tenant = self.tenant_of(job)
        rule = self.tenant_rules.get(tenant)
        if rule is None or not (rule.allowed_clusters or rule.allowed_regions):
            return None
        where = ", ".join(sorted(rule.allowed_clusters))
        if rule.allowed_regions:
            regions = sorted(rule.allowed_regions)
            listed = f"region{'s' if len(regions) > 1 else ''} {', '.join(regions)}"
            where = f"{where} in {listed}" if where else listed
        return f"tenant {tenant} may use only {where}"

    def why_tenant_has_no_pool(self, job: TraceJob) -> str | None:
        """Why the job's tenant can burst to no pool at all (its allowed clusters and regions
        hold none of the pools), or None if one is allowed."""
        scope = self.tenant_scope(job)
        if scope is None or not self.pools:  # no pools: no tenant's rule is why nothing bursts
            return None
        if any(self.tenant_allows(job, pool) for pool in self.pools):
            return None
        where = sorted({f"{pool.cluster} ({pool.region or 'no region'})" for pool in self.pools})
        return f"{scope}, where no cloud pool is (the pools are in {', '.join(where)})"

    def pools_of_its_type(self, job: TraceJob) -> list[CloudPool]:
        """The pools whose GPU type the job accepts (any, when it names none)."""
        return [pool for pool in self.pools if not job.gpu_type or pool.gpu_type == job.gpu_type]


# The pools a baseline strategy bursts to (the core's `cheapest(job, capacity)`); the others
# may use every pool.
BASELINE_CAPACITY = {
    "always": CapacityType.ON_DEMAND,
    "starburst": CapacityType.ON_DEMAND,
    "greedy-spot": CapacityType.SPOT,
}


def pools_for_room(
    trace: Sequence[TraceJob], scenario: Scenario, policy: str
) -> list[tuple[CloudPool, ...]]:
    """Per job, the pools whose room matters to it: those of its GPU type its tenant may use
    (clusters and regions) and the policy bursts to (a baseline, only one capacity type), as
    the pre-run check counts them. Room in a pool the policy never bursts to neither makes a
    job wait for room nor wakes it. Jobs of one GPU type and queue (so one tenant) share the
    answer."""
    capacity = BASELINE_CAPACITY.get(policy)
    by_kind: dict[tuple[str, str], tuple[CloudPool, ...]] = {}
    pools: list[tuple[CloudPool, ...]] = []
    for spec in trace:
        kind = (spec.gpu_type, spec.queue)
        if kind not in by_kind:
            by_kind[kind] = tuple(
                pool
                for pool in scenario.pools_of_its_type(spec)
                if scenario.tenant_allows(spec, pool)
                and (capacity is None or pool.capacity_type is capacity)
            )
        pools.append(by_kind[kind])
    return pools
