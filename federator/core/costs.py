"""The price of each option a pending job has: stay on-prem, burst to a pool now, or hold for it.

Every figure here is an expectation under a small, explicit model (docs/cost-model.md):
preemptions arrive as a Poisson process, a preempted job loses the work since its last checkpoint
and pays a restart, runtimes and waits are uncertain by a spread that depends on where the
estimate came from. Each option is priced in one currency, dollars: what it costs to run plus
what its delay is worth plus the expected deadline penalty. This module only prices; choosing,
and keeping budgets and capacity, is `placements`' job.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from typing import NamedTuple

from federator.core.models import Offer, PendingJob
from federator.core.policy import DecisionPolicy

# The estimates are NamedTuples, not frozen dataclasses: a round builds several per job and a
# frozen dataclass's __init__ is several times slower (see decisions.Decision).

HOUR_S = 3600.0
GB = 1e9
_MAX_EXPONENT = 50.0  # e^50: far past any affordable option, still a finite float


class StayEstimate(NamedTuple):
    """Staying in the on-prem queue: the wait is the job's whole delay."""

    wait_s: float
    runtime_s: float
    compute_usd: float
    delay_usd: float
    deadline_miss_probability: float
    deadline_usd: float
    queue_usd: float  # the delay the stay causes the jobs queued behind it (see price_stay)

    @property
    def total_usd(self) -> float:
        return self.compute_usd + self.delay_usd + self.deadline_usd + self.queue_usd

    def term_values(self) -> tuple[float, ...]:
        """The values of `STAY_TERM_NAMES`, in that order."""
        return (*self, self.compute_usd + self.delay_usd + self.deadline_usd + self.queue_usd)

    def terms(self) -> dict[str, float]:
        return dict(zip(STAY_TERM_NAMES, self.term_values(), strict=True))


# The stay's terms by name: its fields with a "stay_" prefix, then its total.
STAY_TERM_NAMES = (
    "stay_wait_s",
    "stay_runtime_s",
    "stay_compute_usd",
    "stay_delay_usd",
    "stay_deadline_miss_probability",
    "stay_deadline_usd",
    "stay_queue_usd",
    "stay_total_usd",
)


class RunEstimate(NamedTuple):
    """How long a job runs on a pool once started, with checkpoints and preemptions."""

    runtime_s: float  # uninterrupted runtime on this pool's GPUs
    checkpoint_overhead_s: float
    rework_s: float  # lost work and restarts after preemptions
    expected_preemptions: float
    variance_s2: float  # of the run time, from preemptions only

    @property
    def expected_s(self) -> float:
        return self.runtime_s + self.checkpoint_overhead_s + self.rework_s


class CloudEstimate(NamedTuple):
    """Bursting to one pool, either now or after the job's data is replicated (`held`)."""

    offer: Offer
    held: bool
    run: RunEstimate
    startup_s: float
    transfer_bytes: int
    transfer_s: float
    wait_s: float  # from now until the job runs
    compute_usd: float
    startup_usd: float
    idle_usd: float  # GPUs billed while waiting for data
    data_usd: float
    delay_usd: float
    deadline_miss_probability: float
    deadline_usd: float
    congestion_usd: float = 0.0  # what holding scarce pool GPUs denies other jobs (not billed)

    @property
    def cost_usd(self) -> float:
        """What the cloud bills: the figure budgets are charged with."""
        return self.compute_usd + self.startup_usd + self.idle_usd + self.data_usd

    @property
    def total_usd(self) -> float:
        return self.cost_usd + self.delay_usd + self.deadline_usd + self.congestion_usd

    @property
    def completion_s(self) -> float:
        """Seconds from now until the job is expected to finish."""
        return self.wait_s + self.run.expected_s

    def terms(self) -> dict[str, float]:
        return {
            "cloud_price_usd_per_gpu_hour": self.offer.price_per_gpu_hour_usd,
            "cloud_preemption_rate_per_hour": self.offer.preemption_rate_per_hour,
            "cloud_runtime_s": self.run.runtime_s,
            "cloud_checkpoint_overhead_s": self.run.checkpoint_overhead_s,
            "cloud_rework_s": self.run.rework_s,
            "cloud_expected_preemptions": self.run.expected_preemptions,
            "cloud_startup_s": self.startup_s,
            "cloud_transfer_bytes": float(self.transfer_bytes),
            "cloud_transfer_s": self.transfer_s,
            "cloud_wait_s": self.wait_s,
            "cloud_compute_usd": self.compute_usd,
            "cloud_startup_usd": self.startup_usd,
            "cloud_idle_usd": self.idle_usd,
            "cloud_data_usd": self.data_usd,
            "cloud_cost_usd": self.cost_usd,
            "cloud_delay_usd": self.delay_usd,
            "cloud_deadline_miss_probability": self.deadline_miss_probability,
            "cloud_deadline_usd": self.deadline_usd,
            "cloud_congestion_usd": self.congestion_usd,
            "cloud_total_usd": self.total_usd,
        }


def checkpoint_interval_s(job: PendingJob, policy: DecisionPolicy, runtime_s: float) -> float:
    """The interval the job checkpoints at; a job that never checkpoints has one segment."""
    interval = job.checkpoint_interval_s
    if interval is None:
        interval = policy.default_checkpoint_interval_s
    if interval is None or interval <= 0 or interval >= runtime_s:
        return runtime_s
    return interval


def expected_run(
    runtime_s: float, *, interval_s: float, write_s: float, rate_per_s: float, restart_s: float
) -> RunEstimate:
    """Expected time to finish `runtime_s` of work under Poisson preemptions at `rate_per_s`.

    The work is cut into segments of `interval_s`, each followed by a checkpoint write of
    `write_s` (none when the job does not checkpoint). A preemption loses the current segment
    and costs `restart_s`. A segment of length w takes (1/λ + R)(e^{λw} − 1) in expectation,
    whose first-order expansion w + λ·w·(w/2 + R) is the usual "rate × runtime × (interval/2 +
    restart)" rework; the exact form stays right for long segments and jobs without checkpoints.
    """
    if runtime_s <= 0:
        return _new_estimate(RunEstimate, (0.0, 0.0, 0.0, 0.0, 0.0))
    never_checkpoints = interval_s >= runtime_s - 1e-9
    write = 0.0 if never_checkpoints else write_s
    segments = runtime_s / interval_s
    segment_s = interval_s + write
    overhead = segments * write
    if rate_per_s <= 0:
        return _new_estimate(RunEstimate, (runtime_s, overhead, 0.0, 0.0, 0.0))
    exponent = min(rate_per_s * segment_s, _MAX_EXPONENT)
    failures_per_segment = math.expm1(exponent)
    # (1/λ + R)(e^{λw} − 1) written as w·(1 + λR)·expm1(x)/x: the same value, but it stays
    # finite for rates so small that 1/λ overflows.
    growth = failures_per_segment / exponent if exponent > 0 else 1.0
    expected = segments * segment_s * growth * (1.0 + rate_per_s * restart_s)
    preemptions = segments * failures_per_segment
    # Each loss is uniform over the segment plus the restart: E[X²] = w²/3 + w·R + R².
    loss_second_moment = segment_s**2 / 3.0 + segment_s * restart_s + restart_s**2
    rework = max(0.0, expected - runtime_s - overhead)
    variance = preemptions * loss_second_moment
    return _new_estimate(RunEstimate, (runtime_s, overhead, rework, preemptions, variance))


def miss_probability(*, slack_s: float, sd_s: float) -> float:
    """P(finish after the deadline) with a normal finish time; `slack_s` = deadline − mean."""
    if math.isinf(slack_s):
        return 0.0 if slack_s > 0 else 1.0
    if sd_s <= 0:
        return 0.0 if slack_s >= 0 else 1.0
    return 0.5 * math.erfc(slack_s / (sd_s * math.sqrt(2.0)))


def runtime_cv(job: PendingJob, policy: DecisionPolicy) -> float:
    return policy.runtime_cv_by_source.get(str(job.runtime_source), 1.0)


def price_stay(
    job: PendingJob,
    *,
    wait_s: float,
    now: float,
    policy: DecisionPolicy,
    value_per_hour: float,
    queue_usd: float = 0.0,
) -> StayEstimate:
    """Staying: on-prem marginal cost, the wait priced at the job's value of time, deadline risk,
    and `queue_usd`, what the stay's delay of the jobs queued behind it is worth (`QueueBehind`).
    """
    runtime = job.runtime_estimate_s
    compute = policy.onprem_usd_per_gpu_hour * job.gpus * runtime / HOUR_S
    never = wait_s == math.inf
    delay = math.inf if never else value_per_hour * wait_s / HOUR_S
    if job.deadline_at is None:
        return _new_stay(StayEstimate, (wait_s, runtime, compute, delay, 0.0, 0.0, queue_usd))
    slack = job.deadline_at - (now + wait_s + runtime)
    sd = runtime_cv(job, policy) * math.hypot(runtime, 0.0 if never else wait_s)
    probability = miss_probability(slack_s=slack, sd_s=sd)
    penalty = probability * policy.deadline_miss_penalty_usd
    return _new_stay(
        StayEstimate, (wait_s, runtime, compute, delay, probability, penalty, queue_usd)
    )


class QueueBehind:
    """What a stay's delay of the jobs queued behind it is worth: the externality of staying.

    A job that holds g on-prem GPUs for r hours takes g·r GPU-hours that C GPUs drain in
    D = g·r/C hours (the fluid view of a busy queue), so each job k still queued when it starts
    starts about D later. That delay costs k at most what waiting costs before bursting beats
    it: with value of time v_k and tolerance t_k (hours of wait at which the cheapest cloud
    option — compute p·g_k·r_k plus its startup — costs as much as waiting), a job that already
    waits W ≥ t_k would burst anyway and loses nothing, one that waits less loses
    v_k·min(D, t_k − W). Each job behind is taken as a draw from the round's jobs (the ones a
    caller did not pass have no figures of their own), so the price of a stay whose start is W
    hours away with N jobs behind is

        N · mean_k[v_k · min(D, max(0, t_k − W))],

    computed in O(log n) from the tolerances sorted once per round with prefix sums.
    """

    def __init__(self, values_and_tolerances: list[tuple[float, float]]) -> None:
        pairs = sorted((t, v) for v, t in values_and_tolerances if v > 0)
        self._count = len(values_and_tolerances)
        self._tolerances = [t for t, _ in pairs]
        self._values = [0.0]  # prefix sums of v_k, then of v_k·t_k (finite t only)
        self._weighted = [0.0]
        for tolerance, value in pairs:
            self._values.append(self._values[-1] + value)
            finite = tolerance if tolerance < math.inf else 0.0
            self._weighted.append(self._weighted[-1] + value * finite)

    def delay_usd(self, *, behind: int, delay_h: float, wait_h: float) -> float:
        """The price of delaying `behind` jobs by `delay_h` from `wait_h` hours from now."""
        if behind <= 0 or delay_h <= 0 or not self._count or wait_h == math.inf:
            return 0.0
        tolerances, values, weighted = self._tolerances, self._values, self._weighted
        first = bisect_right(tolerances, wait_h)  # tolerance passed: bursts anyway
        full = bisect_left(tolerances, wait_h + delay_h)  # the whole delay hurts from here
        partial = weighted[full] - weighted[first] - wait_h * (values[full] - values[first])
        total = partial + delay_h * (values[-1] - values[full])
        return behind * total / self._count


# A round prices a stay per pending job and a few cloud options per searched one: the fields
# go to tuple.__new__ directly, all of them given in order, as NamedTuple's own __new__ is a
# Python function that does only this (and slower still with keywords).
_new_stay = _new_estimate = tuple.__new__


def transfer_bytes(job: PendingJob, offer: Offer) -> int:
    """Bytes of the job's datasets not yet in the pool's store."""
    missing = 0
    for need in job.datasets:
        if need.name in offer.replicated_datasets:
            continue
        missing += offer.pending_dataset_bytes.get(need.name, need.size_bytes)
    return missing


def jobs_preemption_rate_per_s(job: PendingJob, offer: Offer, policy: DecisionPolicy) -> float:
    rate = offer.preemption_rate_per_hour / HOUR_S
    if policy.preemption_rate_per_node:
        rate *= max(1, math.ceil(job.gpus / max(1, offer.gpus_per_node)))
    return rate


def price_cloud(
    job: PendingJob,
    offer: Offer,
    *,
    now: float,
    policy: DecisionPolicy,
    value_per_hour: float,
    held: bool = False,
    free_gpus: int | None = None,
) -> CloudEstimate:
    """Bursting to `offer` now (data copies while the GPUs start) or after replication (`held`).

    Bursting now bills the GPUs from the end of startup, so a copy longer than the startup
    leaves them idle on the meter; holding copies first and starts after, idle-free but later.
    `free_gpus` is what the pool has left in this round (default: the offer's), for the
    congestion price: a job that takes a share s = gpus/free of what is left pays
    `congestion_weight` × s × its compute bill on top, because while it runs, later jobs find
    that much less room (a job taking the last GPUs of a pool doubles its price; one GPU of many
    barely changes it).
    """
    runtime = job.runtime_estimate_s / policy.speed_of(offer.gpu_type)
    restart = offer.startup_latency_s + policy.restart_overhead_s
    run = expected_run(
        runtime,
        interval_s=checkpoint_interval_s(job, policy, runtime),
        write_s=policy.checkpoint_write_s,
        rate_per_s=jobs_preemption_rate_per_s(job, offer, policy),
        restart_s=restart,
    )
    missing = transfer_bytes(job, offer)
    transfer = missing / offer.transfer_bytes_per_s if missing else 0.0
    startup = offer.startup_latency_s
    wait = transfer + startup if held else max(startup, transfer)
    usd_per_s = offer.price_per_gpu_hour_usd * job.gpus / HOUR_S
    idle = 0.0 if held else max(0.0, transfer - startup)
    data = missing / GB * offer.ingress_usd_per_gb + job.output_bytes / GB * offer.egress_usd_per_gb
    delay_s = wait + run.expected_s - job.runtime_estimate_s
    probability = 0.0
    if job.deadline_at is not None:
        sd = math.sqrt((runtime_cv(job, policy) * runtime) ** 2 + run.variance_s2)
        probability = miss_probability(
            slack_s=job.deadline_at - now - wait - run.expected_s, sd_s=sd
        )
    compute = usd_per_s * run.expected_s
    congestion = _congestion_usd(policy.congestion_weight, compute, job.gpus, free_gpus, offer)
    # Every field in order, to tuple.__new__ (see _new_estimate).
    return _new_estimate(CloudEstimate, (
        offer, held, run, startup, missing, transfer, wait, compute,
        usd_per_s * startup if policy.bill_startup else 0.0, usd_per_s * idle, data,
        value_per_hour * delay_s / HOUR_S, probability,
        probability * policy.deadline_miss_penalty_usd, congestion,
    ))  # fmt: skip


def _congestion_usd(
    weight: float, compute_usd: float, gpus: int, free_gpus: int | None, offer: Offer
) -> float:
    free = offer.free_gpus if free_gpus is None else free_gpus
    if weight <= 0 or free <= 0:
        return 0.0
    return weight * compute_usd * min(1.0, gpus / free)
