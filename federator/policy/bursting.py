"""When federator bursts, how hard it tries, and the caps on what it may run in the cloud.

A job is only considered once the watched queues have enough pending GPU demand and the job
has waited a minimum time; the cost model must then beat staying on-prem by a margin
(hysteresis), and a bursted job is not pulled back on-prem within the cooldown, so decisions
do not flap. `policy: starburst` swaps the cost model for the Starburst waiting policy (USENIX
ATC'24), the baseline federator is measured against.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from federator.policy.base import (
    Count,
    NonNegative,
    NotBoolean,
    Positive,
    PositiveCount,
    Section,
    Switch,
)
from federator.policy.units import Duration, PositiveDuration, parse_duration


class Starburst(Section):
    """Starburst's Compute-Wait policy (USENIX ATC'24): a job may wait on-prem up to
    β x GPUs x runtime before it bursts, with β solved from a waiting budget."""

    waiting_budget: NonNegative = 0.25
    """ρ: the sum of all jobs' maximum waits is ρ x the sum of their runtimes (0.25 = 25 %)."""

    runtime_weighted_mean_gpus: Positive = 1.0
    """Σ(GPUs x runtime) / Σ(runtime) over your workload, so β = ρ / this (3.13 on the Philly
    trace); `federator simulate` prints it for a trace."""

    max_queue_length: PositiveCount | None = None
    """Jobs beyond this position in the queue burst at once (Starburst's fig. 7 uses 30); no
    limit when omitted."""

    max_wait: Duration | None = None
    """Longest wait before any job bursts; no limit when omitted."""


class Replacement(Section):
    """What happens when a cloud copy is preempted, never starts, or its cluster stops
    answering."""

    max_replacements: Count = 3
    """How many times one job may be re-placed before it goes back on-prem for good."""

    backoff: Duration = parse_duration("30s")
    """Wait before the first re-placement; doubled after each one."""

    max_backoff: Duration = parse_duration("10m")
    """Longest wait between re-placements."""

    block_pool_for: Duration = parse_duration("30m")
    """After a preemption or a start timeout, do not place new jobs on the same pool for this
    long (a preempted pool is likely to preempt again soon, and capacity that did not come is
    unlikely to come at once)."""

    start_timeout: PositiveDuration | None = Field(default=parse_duration("15m"), examples=["20m"])
    """A cloud copy none of whose pods started this long after it was created (or resumed,
    once its data was copied) is deleted and the job re-placed, counting towards
    `max_replacements`, and its pool is left alone for `block_pool_for`: capacity that never
    comes (spot capacity unavailable, a node pool that cannot scale, a taint or quota that
    keeps the pods Pending). Must be longer than every cloud cluster's and pool's
    `startup_latency`; `null` waits for ever."""

    @model_validator(mode="after")
    def _backoff_fits(self) -> Replacement:
        if self.backoff > self.max_backoff:
            raise ValueError("`backoff` is longer than `max_backoff`")
        return self


class Burst(Section):
    """When federator moves pending jobs to the cloud."""

    policy: Literal["cost-model", "starburst", "never", "always-on-demand", "greedy-spot"] = (
        "cost-model"
    )
    """`cost-model`: burst when the expected cloud cost beats the value of waiting;
    `starburst`: burst after a wait proportional to the job's size (see `starburst`);
    `never`: observe only; `always-on-demand` / `greedy-spot`: baselines that send every job
    that cannot start on-prem to the cheapest on-demand / spot pool."""

    decision_interval: PositiveDuration = parse_duration("30s")
    """How often the pending jobs are re-evaluated."""

    min_pending_gpus: Count = 1
    """Burst only while the jobs waiting in the watched queues (with those waiting to be
    re-placed) ask for at least this many GPUs in total; below it every job stays on-prem,
    and its decision says so."""

    min_wait: Duration = parse_duration("2m")
    """A job must have waited at least this long on-prem before it may burst."""

    margin_fraction: Annotated[float, Field(ge=0, lt=1), NotBoolean] = 0.1
    """The best cloud option must be cheaper than staying by this fraction (0.1 = 10 %); below
    1, as at 1 or more only a free cloud option could be that much cheaper, which would turn
    bursting off without saying so (`policy: never` says it)."""

    margin_usd: NonNegative = 0.0
    """...and by at least this many US dollars."""

    cooldown: Duration = parse_duration("5m")
    """A job bursted to the cloud is not pulled back on-prem (see `pull_back`) before its
    placement is this old, so a short gap in the on-prem queue does not bounce it back and
    forth."""

    max_bursted_jobs: Count | None = None
    """Most jobs running in all clouds at once; no limit when omitted."""

    max_bursted_gpus: Count | None = None
    """Most GPUs used in all clouds at once; no limit when omitted."""

    pull_back: Switch = True
    """When on-prem GPUs free up, cancel cloud copies that have not started yet and run the
    jobs on-prem instead."""

    copy_config_maps: Switch = True
    """Copy the ConfigMaps a job's pods reference to the cloud cluster."""

    copy_secrets: Switch = False
    """Copy the Secrets a job's pods reference to the cloud cluster (off: secrets stay put)."""

    replacement: Replacement = Field(default_factory=Replacement)
    """Re-placement after a preemption, a copy that never starts, or an unreachable cluster."""

    starburst: Starburst = Field(default_factory=Starburst)
    """Settings of the Starburst waiting policy, used with `policy: starburst`."""
