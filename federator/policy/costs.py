"""What time and money are worth: the inputs of the cost model, the price refresh, budgets.

The cost model compares the cloud bill of a job with what its wait on-prem is worth. These
settings put a price on waiting (per queue or priority class), say what to assume when a job
does not tell its runtime or checkpoint interval, and cap spend per hour, day and tenant.

Jobs describe themselves with annotations: `federator.io/runtime-estimate` ("3h"),
`federator.io/checkpoint-interval` ("20m"), `federator.io/deadline` (RFC 3339),
`federator.io/datasets` (comma-separated dataset names), `federator.io/gpu-types` ("A100,H100").
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from federator.policy.base import (
    ConfigPath,
    Fraction,
    Integer,
    Multiplier,
    NonNegative,
    Positive,
    Section,
    Switch,
    UsdPerHour,
)
from federator.policy.units import Duration, PositiveDuration, parse_duration


class PriorityMultiplier(Section):
    """A multiplier of the value of waiting for jobs at or above a priority."""

    min_priority: Integer
    """Lowest priority this multiplier applies to: a Kueue Workload's priority (its
    WorkloadPriorityClass or PriorityClass value); plain Jobs count as priority 0. One entry
    per value."""

    multiplier: Multiplier
    """Factor applied to the value of waiting, e.g. 4 for urgent jobs."""


class RuntimeUncertainty(Section):
    """Typical relative error (coefficient of variation) of runtime estimates by their source;
    it sets the probability of missing a deadline."""

    annotation: NonNegative = 0.25
    """For runtimes a job declares in its annotation."""

    history: NonNegative = 0.5
    """For runtimes learned from finished jobs of the same queue."""

    default: NonNegative = 1.0
    """For the default runtime (nothing known about the job)."""


class Cost(Section):
    """Inputs of the cost model that are not cloud prices."""

    onprem_usd_per_gpu_hour: UsdPerHour = 0.0
    """Marginal cost of one on-prem GPU-hour (power, wear); 0 if the hardware is a sunk cost."""

    value_of_waiting_usd_per_gpu_hour: UsdPerHour = 2.0
    """What one GPU-hour of a job's waiting is worth to the organisation, in US dollars
    (a 4-GPU job waiting 2 h costs 8 x this). Queues and priority classes may override it."""

    value_of_waiting_usd_per_job_hour: UsdPerHour = 0.0
    """What one hour of waiting costs per job whatever its size, added to the per-GPU value."""

    priority_multipliers: tuple[PriorityMultiplier, ...] = ()
    """Scale the value of waiting by the priority of a job's Kueue Workload (plain Jobs count
    as priority 0): the entry with the highest `min_priority` at or below it applies, so
    urgent jobs burst sooner."""

    default_runtime: PositiveDuration = parse_duration("1h")
    """Runtime assumed for a job that declares none in its `federator.io/runtime-estimate`
    annotation (e.g. `"3h"`) and has no history."""

    runtime_uncertainty: RuntimeUncertainty = Field(default_factory=RuntimeUncertainty)
    """How far off runtime estimates typically are, by where they come from."""

    default_checkpoint_interval: PositiveDuration | None = parse_duration("30m")
    """Checkpoint interval assumed for a job without a `federator.io/checkpoint-interval`
    annotation; the work lost on a preemption is on average half of it. `null`: such jobs do
    not checkpoint, so a preemption loses all progress."""

    checkpoint_write_time: Duration = parse_duration("30s")
    """Time a job stalls to write one checkpoint (checkpointing overhead)."""

    restart_overhead: Duration = parse_duration("5m")
    """Time to resume after a preemption on top of the pool's startup latency (restore from the
    checkpoint, warm-up)."""

    preemption_rate_per_node: Switch = False
    """`true`: a pool's preemption rate is per node, so a job on 4 nodes is preempted 4 times
    as often; `false`: the rate is per running job."""

    gpu_speed: dict[str, Positive] = Field(default_factory=dict)
    """Speed of each GPU type relative to the on-prem GPU, e.g. `{H100: 2.0}` makes a job run
    twice as fast on H100; 1.0 for a type not listed. Each key must be the `gpu_type` of a
    cloud pool, written the same way (case matters)."""

    bill_startup: Switch = True
    """Count the startup latency as billed time (cloud instances boot on the meter)."""

    onprem_backfill: Switch = True
    """Model the on-prem queue as letting later jobs that fit start first (Kueue
    `BestEffortFIFO`); `false` for `StrictFIFO`."""

    deadline_miss_penalty_usd: NonNegative = 100.0
    """Cost of missing a deadline, charged times the probability of missing it, for a job
    with a `federator.io/deadline` annotation (RFC 3339 time)."""


class Prices(Section):
    """How cloud prices and preemption estimates are kept fresh."""

    refresh_interval: PositiveDuration = parse_duration("1m")
    """How often the daemon asks the price sources for news. A live source refetches only
    when its pool's `price.refresh_interval` is due, so this is the finest grain of those."""

    max_price_age: PositiveDuration = parse_duration("1h")
    """A price older than this is not used for new decisions; its pool is skipped."""

    interruption_data: ConfigPath | None = None
    """AWS Spot Instance Advisor JSON (`spot-advisor-data.json`) giving each spot pool a prior
    preemption rate; `default_spot_preemption_rate_per_hour` is used when omitted."""

    default_spot_preemption_rate_per_hour: NonNegative = 0.1
    """Prior preemptions per running hour for a spot pool with no other evidence."""

    prior_weight: PositiveDuration = parse_duration("24h")
    """How many running hours of evidence the prior is worth against observed preemptions."""


class Budgets(Section):
    """Caps on cloud spend. When a cap is reached, `at_cap` says what happens."""

    usd_per_hour: NonNegative | None = None
    """Most cloud spend per rolling hour, in US dollars; no cap when omitted."""

    usd_per_day: NonNegative | None = None
    """Most cloud spend per calendar day (UTC), in US dollars; no cap when omitted."""

    default_tenant_usd_per_month: NonNegative | None = None
    """Monthly cap for tenants that set no `budget_usd_per_month`; no cap when omitted."""

    at_cap: Literal["stay", "hold"] = "stay"
    """When bursting a job would pass a budget or cap: `stay` leaves it to the on-prem queue;
    `hold` also reports it as held for the pool it would use. Jobs already in the cloud
    always finish."""

    warn_at_fraction: Fraction = 0.8
    """When spend reaches this fraction of a cap (the hour, the day or a tenant's month), log
    a warning, count `federator_budget_warnings_total{scope}` and post a Warning Event in
    `state_namespace`, once per crossing. `federator_budget_remaining_usd` and
    `federator_budget_used_fraction` show every cap at all times."""
