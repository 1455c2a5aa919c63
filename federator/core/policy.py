"""Every knob the decision core reads, as one frozen value of plain data.

`DecisionPolicy` is what `federator.core.placements.decide` is told to do. It holds only plain
values (numbers, strings, tuples, frozensets, mappings) so that the policy-file package can build
it from validated YAML (`federator.policy.to_decision_policy`) and the simulator can build it in
code, without the core ever importing pydantic or reading a file. Each field documents its unit
and why it exists; `docs/cost-model.md` shows where each enters a formula.

Money is US dollars, durations are seconds, rates are per hour (as clouds quote them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Strategy(StrEnum):
    """Which rule turns the model's numbers into decisions."""

    FEDERATOR = "federator"  # price every option, burst when the cloud beats waiting by the margin
    STARBURST = "starburst"  # USENIX ATC'24 Compute-Wait: wait β·gpus·runtime, then burst
    NEVER = "never"  # on-prem only
    ALWAYS = "always"  # cheapest on-demand as soon as the job cannot start on-prem
    GREEDY_SPOT = "greedy-spot"  # cheapest spot as soon as the job cannot start on-prem


class AtCap(StrEnum):
    """What a job does when bursting it would exceed a budget or a cap."""

    STAY = "stay"  # leave it to the on-prem queue
    HOLD = "hold"  # report it as held for the pool it would use; it stays queued on-prem meanwhile


@dataclass(frozen=True, slots=True)
class Budgets:
    """Spend limits; `None` means unlimited. Checked against expected costs, conservatively."""

    # Cap on the cloud burn rate: spend in the last hour plus the hourly price of every GPU
    # bursted in this round must stay at or under it.
    max_usd_per_hour: float | None = None
    # Cap on spend today plus the full expected cost of every job bursted in this round.
    max_usd_per_day: float | None = None
    # Per-tenant monthly cap: month-to-date spend plus the full expected cost of new bursts.
    tenant_max_usd_per_month: Mapping[str, float] = field(default_factory=dict)
    # Monthly cap for tenants not listed above; `None` means unlimited.
    default_tenant_max_usd_per_month: float | None = None
    at_cap: AtCap = AtCap.STAY


@dataclass(frozen=True, slots=True)
class Caps:
    """How much federator may run in the clouds at once; `None` means unlimited."""

    max_bursted_jobs: int | None = None
    max_bursted_gpus: int | None = None
    cluster_max_bursted_jobs: Mapping[str, int] = field(default_factory=dict)
    cluster_max_bursted_gpus: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TenantRule:
    """Where one tenant's jobs may go. Empty sets mean "no restriction"."""

    allowed_clusters: frozenset[str] = frozenset()
    allowed_regions: frozenset[str] = frozenset()
    burst_allowed: bool = True  # False: this tenant never bursts (a whole-tenant opt-out)

    def allows(self, cluster: str, region: str) -> bool:
        """Whether the tenant's jobs may run on a pool of `cluster` in `region`."""
        if self.allowed_clusters and cluster not in self.allowed_clusters:
            return False
        return not (self.allowed_regions and region not in self.allowed_regions)


@dataclass(frozen=True, slots=True)
class DecisionPolicy:
    """The whole decision policy. Defaults are deliberately neutral, not tuned to any trace."""

    strategy: Strategy = Strategy.FEDERATOR

    # --- what time is worth -----------------------------------------------------------------
    # Marginal cost of running on-prem, per GPU-hour (0 when the cluster is a sunk cost).
    onprem_usd_per_gpu_hour: float = 0.0
    # What one hour of delay of a job costs, per GPU it asks for: a 8-GPU job waiting 1 h costs
    # 8 × this. Per GPU because a bigger job usually stands for more people's work.
    value_of_time_usd_per_gpu_hour: float = 2.0
    # What one hour of delay costs per job, whatever its size (the unweighted mean JCT view).
    value_of_time_usd_per_job_hour: float = 0.0
    # Per-queue override of `value_of_time_usd_per_gpu_hour`.
    queue_value_of_time_usd_per_gpu_hour: Mapping[str, float] = field(default_factory=dict)
    # (minimum priority, multiplier) pairs: the pair with the largest minimum at or below a
    # job's priority multiplies its value of time. Lets "urgent" classes burst sooner.
    priority_value_multipliers: tuple[tuple[int, float], ...] = ()
    # Cost of missing a job's deadline, multiplied by the probability of missing it.
    deadline_miss_penalty_usd: float = 100.0

    # --- when to burst ----------------------------------------------------------------------
    # Burst only when the best cloud option's expected total is at most
    # (1 - burst_margin_fraction) × staying's, minus burst_margin_usd.
    burst_margin_fraction: float = 0.1
    burst_margin_usd: float = 0.0
    # A job is never bursted before it has been pending this long (hysteresis: a job that would
    # start in a moment is not sent away on a noisy estimate).
    min_pending_before_burst_s: float = 0.0

    # --- how jobs run in the cloud ----------------------------------------------------------
    # Checkpoint interval for jobs that do not declare one; `None`: jobs do not checkpoint, so a
    # preemption loses all progress.
    default_checkpoint_interval_s: float | None = 1800.0
    checkpoint_write_s: float = 30.0  # time one checkpoint stalls the job
    # Time to resume after a preemption on top of the pool's startup latency (restore, warm-up).
    restart_overhead_s: float = 300.0
    # True: a pool's preemption rate is per node, and a job on n nodes is preempted n times as
    # often. False: the rate is per running job (the `Offer` contract's default meaning).
    preemption_rate_per_node: bool = False
    # Speed of a GPU type relative to the on-prem GPU (runtime there = runtime / speed).
    gpu_speed: Mapping[str, float] = field(default_factory=dict)
    # Relative spread (coefficient of variation) of runtime estimates by their source, used for
    # the deadline-miss probability.
    runtime_cv_by_source: Mapping[str, float] = field(
        default_factory=lambda: {"oracle": 0.0, "annotation": 0.25, "history": 0.5, "default": 1.0}
    )
    # Bill the GPUs during startup latency (most clouds do: instances boot on the meter).
    bill_startup: bool = True
    # Price of taking scarce pool capacity: a burst that takes a share s of a pool's free GPUs
    # adds weight × s × its compute bill to its total (not to the bill). Cloud capacity a long
    # big job holds is capacity later jobs cannot burst to; 0 turns this off.
    congestion_weight: float = 1.0
    # Price of holding on-prem GPUs others queue for: a stay adds weight × what delaying each job
    # queued behind it by g·r/C hours is worth to that job, capped where bursting would beat
    # waiting for it (docs/cost-model.md §2). Off (0) by default: on trace A it did not move the
    # cost-JCT curve beyond noise (docs/benchmarks.md); 1 is the model's own, unweighted value.
    queue_externality_weight: float = 0.0

    # --- on-prem model ----------------------------------------------------------------------
    # True: a job that does not fit lets later ones that fit go first (Kueue BestEffortFIFO,
    # Starburst's out-of-order scheduling). False: strict FIFO (Kueue StrictFIFO).
    onprem_backfill: bool = True

    # --- limits and rules -------------------------------------------------------------------
    budgets: Budgets = field(default_factory=Budgets)
    caps: Caps = field(default_factory=Caps)
    tenants: Mapping[str, TenantRule] = field(default_factory=dict)
    # fnmatch patterns of dataset names that must never leave on-prem (data residency).
    resident_datasets: tuple[str, ...] = ()
    # Why a pattern of `resident_datasets` is there ("patient data, GDPR"), for the reason of
    # a job it keeps on-prem; patterns without an entry are shown bare.
    residency_reasons: Mapping[str, str] = field(default_factory=dict)

    # --- the Starburst baseline -------------------------------------------------------------
    # Waiting budget ρ: total timeouts = ρ × total runtime (starburst-baseline.md §2).
    starburst_waiting_budget: float = 0.25
    # Σ(gpus·runtime) / Σ(runtime) over the workload, to solve β = ρ / this exactly. The
    # simulator computes it from the trace with `starburst.runtime_weighted_mean_gpus`.
    starburst_runtime_weighted_mean_gpus: float = 1.0
    # Starburst's `max_queue_length` (fig. 7 uses 30): the tail of the queue beyond it bursts.
    starburst_max_queue_length: int | None = None
    starburst_clip_s: float = 1e9 * 3600.0  # the simulator's clip_time (1e9 h)

    @property
    def prices_queue_behind(self) -> bool:
        """Whether a round prices what a stay costs the jobs queued behind it: only the
        federator strategy does, and only with a positive `queue_externality_weight`."""
        return self.strategy is Strategy.FEDERATOR and self.queue_externality_weight > 0

    def tenant_rule(self, tenant: str) -> TenantRule:
        return self.tenants.get(tenant, _NO_RULE)

    def speed_of(self, gpu_type: str) -> float:
        return self.gpu_speed.get(gpu_type, 1.0)

    def value_of_time_usd_per_hour(
        self, *, gpus: int, queue: str, priority: int, per_gpu_usd: float | None = None
    ) -> float:
        """Dollars one hour of delay of this job is worth; `per_gpu_usd`: its queue's own value
        per GPU-hour, when known, instead of looking `queue` up by name."""
        per_gpu = per_gpu_usd
        if per_gpu is None:
            per_gpu = self.queue_value_of_time_usd_per_gpu_hour.get(
                queue, self.value_of_time_usd_per_gpu_hour
            )
        return (per_gpu * gpus + self.value_of_time_usd_per_job_hour) * self._multiplier(priority)

    def _multiplier(self, priority: int) -> float:
        chosen: tuple[int, float] | None = None
        for minimum, multiplier in self.priority_value_multipliers:
            if minimum <= priority and (chosen is None or minimum > chosen[0]):
                chosen = (minimum, multiplier)
        return 1.0 if chosen is None else chosen[1]


_NO_RULE = TenantRule()
