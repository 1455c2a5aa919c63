"""Build the decision core's `DecisionPolicy` from a validated policy file.

The core takes plain values (seconds, dollars, frozensets) and never sees pydantic or YAML;
this is the one place that translates. Knobs that only the daemon's loops use (intervals,
minimum pending GPUs, cooldown) stay in `FederatorConfig` and are read there.
"""

from __future__ import annotations

from federator.core import policy as core
from federator.policy.config import FederatorConfig, resident_datasets
from federator.policy.tenancy import Tenant
from federator.policy.units import seconds

_STRATEGIES = {
    "cost-model": core.Strategy.FEDERATOR,
    "starburst": core.Strategy.STARBURST,
    "never": core.Strategy.NEVER,
    "always-on-demand": core.Strategy.ALWAYS,
    "greedy-spot": core.Strategy.GREEDY_SPOT,
}

_DEFAULTS = core.DecisionPolicy()


def to_decision_policy(config: FederatorConfig) -> core.DecisionPolicy:
    """The knobs of `config` as the decision core's frozen `DecisionPolicy`."""
    cost, burst = config.cost, config.burst
    starburst = burst.starburst
    checkpoint = cost.default_checkpoint_interval
    return core.DecisionPolicy(
        strategy=_STRATEGIES[burst.policy],
        onprem_usd_per_gpu_hour=cost.onprem_usd_per_gpu_hour,
        value_of_time_usd_per_gpu_hour=cost.value_of_waiting_usd_per_gpu_hour,
        value_of_time_usd_per_job_hour=cost.value_of_waiting_usd_per_job_hour,
        queue_value_of_time_usd_per_gpu_hour={
            queue.name: queue.value_of_waiting_usd_per_gpu_hour
            for queue in config.queues
            if queue.value_of_waiting_usd_per_gpu_hour is not None
        },
        priority_value_multipliers=tuple(
            (entry.min_priority, entry.multiplier) for entry in cost.priority_multipliers
        ),
        deadline_miss_penalty_usd=cost.deadline_miss_penalty_usd,
        burst_margin_fraction=burst.margin_fraction,
        burst_margin_usd=burst.margin_usd,
        min_pending_before_burst_s=seconds(burst.min_wait),
        default_checkpoint_interval_s=None if checkpoint is None else seconds(checkpoint),
        checkpoint_write_s=seconds(cost.checkpoint_write_time),
        restart_overhead_s=seconds(cost.restart_overhead),
        preemption_rate_per_node=cost.preemption_rate_per_node,
        gpu_speed=dict(cost.gpu_speed),
        runtime_cv_by_source={
            "oracle": 0.0,
            "annotation": cost.runtime_uncertainty.annotation,
            "history": cost.runtime_uncertainty.history,
            "default": cost.runtime_uncertainty.default,
        },
        bill_startup=cost.bill_startup,
        onprem_backfill=cost.onprem_backfill,
        budgets=_budgets(config),
        caps=_caps(config),
        tenants={tenant.name: _tenant_rule(tenant) for tenant in config.tenants},
        resident_datasets=tuple(sorted(resident_datasets(config))),
        residency_reasons={rule.dataset: rule.reason for rule in config.residency if rule.reason},
        starburst_waiting_budget=starburst.waiting_budget,
        starburst_runtime_weighted_mean_gpus=starburst.runtime_weighted_mean_gpus,
        starburst_max_queue_length=starburst.max_queue_length,
        starburst_clip_s=(
            _DEFAULTS.starburst_clip_s
            if starburst.max_wait is None
            else seconds(starburst.max_wait)
        ),
    )


def _budgets(config: FederatorConfig) -> core.Budgets:
    budgets = config.budgets
    return core.Budgets(
        max_usd_per_hour=budgets.usd_per_hour,
        max_usd_per_day=budgets.usd_per_day,
        tenant_max_usd_per_month={
            tenant.name: tenant.budget_usd_per_month
            for tenant in config.tenants
            if tenant.budget_usd_per_month is not None
        },
        default_tenant_max_usd_per_month=budgets.default_tenant_usd_per_month,
        at_cap=core.AtCap.HOLD if budgets.at_cap == "hold" else core.AtCap.STAY,
    )


def _caps(config: FederatorConfig) -> core.Caps:
    clouds = config.cloud_clusters
    return core.Caps(
        max_bursted_jobs=config.burst.max_bursted_jobs,
        max_bursted_gpus=config.burst.max_bursted_gpus,
        cluster_max_bursted_jobs={
            c.name: c.max_bursted_jobs for c in clouds if c.max_bursted_jobs is not None
        },
        cluster_max_bursted_gpus={
            c.name: c.max_bursted_gpus for c in clouds if c.max_bursted_gpus is not None
        },
    )


def _tenant_rule(tenant: Tenant) -> core.TenantRule:
    # An explicitly empty list means "nowhere"; the core spells that as burst_allowed=False,
    # because its empty sets mean "no restriction".
    nowhere = tenant.allowed_clusters == () or tenant.allowed_regions == ()
    return core.TenantRule(
        allowed_clusters=frozenset(tenant.allowed_clusters or ()),
        allowed_regions=frozenset(tenant.allowed_regions or ()),
        burst_allowed=not nowhere,
    )
