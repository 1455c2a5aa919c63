"""The Starburst (USENIX ATC'24) Compute-Wait rule, exactly as its simulator applies it.

A job waits at most w = β·gpus·runtime on-prem (clipped to `clip`), then goes to the cloud at
its timeout `submitted_at + w` whether or not it could start then (the simulator clears
timeouts before it places jobs). β comes from the waiting budget ρ, solved exactly so that the
timeouts add up to ρ × the total runtime: β = ρ·Σr / Σ(g·r). See
/work/shared/docs/starburst-baseline.md §2. This is the baseline federator must beat, so it is
kept faithful rather than improved.
"""

from __future__ import annotations

from collections.abc import Iterable

from federator.core.models import PendingJob
from federator.core.policy import DecisionPolicy


def runtime_weighted_mean_gpus(jobs: Iterable[tuple[int, float]]) -> float:
    """Σ(gpus·runtime) / Σ(runtime) over (gpus, runtime_s) pairs: the β denominator."""
    total_runtime = 0.0
    total_compute = 0.0
    for gpus, runtime in jobs:
        total_runtime += runtime
        total_compute += gpus * runtime
    if total_runtime <= 0:
        raise ValueError("runtime_weighted_mean_gpus needs at least one job with a runtime")
    return total_compute / total_runtime


def compute_wait_coefficient(policy: DecisionPolicy) -> float:
    """β = ρ / (Σ(g·r)/Σr): seconds of waiting per GPU-second of the job."""
    return policy.starburst_waiting_budget / policy.starburst_runtime_weighted_mean_gpus


def waiting_time_s(job: PendingJob, policy: DecisionPolicy) -> float:
    """w = min(clip, max(0, β·g·r)) with r the job's runtime estimate."""
    wait = compute_wait_coefficient(policy) * job.gpus * job.runtime_estimate_s
    return min(policy.starburst_clip_s, max(0.0, wait))


def timeout_at(job: PendingJob, policy: DecisionPolicy) -> float:
    """When the job leaves the queue for the cloud."""
    return job.submitted_at + waiting_time_s(job, policy)
