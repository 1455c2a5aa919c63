"""The pre-run check that every job can run somewhere, and the reason when one cannot.

A job too big for the simulated on-prem cluster must fit a cloud pool the policy bursts to,
or the run could never finish. `check_fits` refuses such a trace before anything runs and
names the job and what keeps it out of every pool (its queue's rules, its GPU type, its
tenant's allowed clusters and regions, the baselines' capacity type, each pool's limits and
caps), as docs/simulator.md lists them.
"""

from __future__ import annotations

from collections.abc import Sequence

from federator import errors
from federator.core.policy import Caps
from federator.sim.cloud import CloudPool
from federator.sim.onprem import GpuNodes
from federator.sim.scenarios import BASELINE_CAPACITY, Scenario
from federator.sim.traces import TraceJob


def never_fit_on_prem(trace: Sequence[TraceJob], scenario: Scenario) -> list[int]:
    """The jobs no on-prem placement can ever hold, even on an empty cluster."""
    never_fit = {
        size
        for size in {job.gpus for job in trace}
        if GpuNodes(scenario.onprem_gpus, scenario.gpus_per_node).place(size) is None
    }
    return [index for index, job in enumerate(trace) if job.gpus in never_fit]


def check_fits(trace: Sequence[TraceJob], scenario: Scenario, policy: str) -> None:
    """Every job must be able to run somewhere, or the run can never finish: on-prem, or in a
    cloud pool the policy bursts to that takes its GPU type and size under every cap."""
    too_big = [trace[job] for job in never_fit_on_prem(trace, scenario)]
    if not too_big:
        return
    onprem = (
        f"more than the simulated on-prem cluster ({scenario.onprem_gpus} GPUs in nodes of "
        f"{scenario.gpus_per_node}) can ever place"
    )
    if policy == "never" or not scenario.pools:
        first = too_big[0]
        raise errors.UserError(
            f"job {first.job_id} needs {first.gpus} GPUs, {onprem} ({len(too_big)} such "
            f"job(s)); raise --onprem-gpus or allow bursting"
        )
    stranded = [(job, why) for job in too_big if (why := _why_no_pool(job, scenario, policy))]
    if stranded:
        first, why = stranded[0]
        raise errors.UserError(
            f"job {first.job_id} needs {first.gpus} GPUs, {onprem}, and {why} "
            f"({len(stranded)} such job(s)); it could never run: raise --onprem-gpus, or "
            f"change the trace or the policy file"
        )


def _why_no_pool(job: TraceJob, scenario: Scenario, policy: str) -> str | None:
    """Why no cloud pool can ever take this job under this policy, or None if one can."""
    if not scenario.may_burst(job):
        return f"its queue {job.queue!r} may not burst ({scenario.burst_refused[job.queue]})"
    offered = {pool.gpu_type for pool in scenario.pools}
    if job.gpu_type and job.gpu_type not in offered:
        return (
            f"asks for gpu_type {job.gpu_type!r}, which no cloud pool offers (pools' GPU "
            f"types: {', '.join(sorted(offered))}; matching is case-sensitive)"
        )
    allowed, why = _pools_its_tenant_allows(job, scenario)
    if why is not None:
        return why
    scope = scenario.tenant_scope(job)
    capacity = BASELINE_CAPACITY.get(policy)
    pools = [pool for pool in allowed if capacity is None or pool.capacity_type is capacity]
    if not pools:
        where = f" ({scope})" if scope else ""
        return (
            f"the {policy} policy bursts only to {capacity} pools, and none{where} offers its "
            f"GPU type"
        )
    limits = [_pool_limit(pool, scenario.caps) for pool in pools]
    if any(room >= job.gpus for room, _ in limits):
        return None
    each = "; ".join(f"{pool.name} {why}" for pool, (_, why) in zip(pools, limits, strict=True))
    if scope is None:
        return "no cloud pool can ever take it: " + each
    most = max(room for room, _ in limits)
    return f"{scope}, whose pools have at most {most} GPUs per job: {each}"


def _pools_its_tenant_allows(
    job: TraceJob, scenario: Scenario
) -> tuple[list[CloudPool], str | None]:
    """The pools of the job's GPU type its tenant may use, or why there are none."""
    if (nowhere := scenario.why_tenant_has_no_pool(job)) is not None:
        return [], nowhere
    mine = [pool for pool in scenario.pools if scenario.tenant_allows(job, pool)]
    allowed = [pool for pool in mine if not job.gpu_type or pool.gpu_type == job.gpu_type]
    if allowed:
        return allowed, None
    types = ", ".join(sorted({pool.gpu_type for pool in mine}))
    return [], (
        f"{scenario.tenant_scope(job)}, whose pools do not offer gpu_type {job.gpu_type!r} "
        f"(their GPU types: {types})"
    )


def _pool_limit(pool: CloudPool, caps: Caps) -> tuple[int, str]:
    """The most GPUs one job can ever get in this pool, and what sets that limit."""
    limits = [(pool.max_gpus, f"has max_gpus {pool.max_gpus}")]
    if pool.availability is not None:
        most = max(pool.availability.alive)
        limits.append(
            (pool.largest_launch_gpus, f"never has more than {most} instance(s) of "
             f"{pool.gpus_per_node} GPUs in its --spot-trace")
        )  # fmt: skip
    cluster_jobs = caps.cluster_max_bursted_jobs.get(pool.cluster)
    if cluster_jobs is not None and cluster_jobs < 1:
        limits.append((0, f"is in cluster {pool.cluster} with max_bursted_jobs {cluster_jobs}"))
    cluster_gpus = caps.cluster_max_bursted_gpus.get(pool.cluster)
    if cluster_gpus is not None:
        limits.append(
            (cluster_gpus, f"is in cluster {pool.cluster} with max_bursted_gpus {cluster_gpus}")
        )
    if caps.max_bursted_jobs is not None and caps.max_bursted_jobs < 1:
        limits.append((0, f"is under burst.max_bursted_jobs {caps.max_bursted_jobs}"))
    if caps.max_bursted_gpus is not None:
        gpus = caps.max_bursted_gpus
        limits.append((gpus, f"is under burst.max_bursted_gpus {gpus}"))
    return min(limits, key=lambda limit: limit[0])
