"""Building a simulated world from the policy file the daemon would run with.

The policy file says which cloud pools exist, how each is priced (fixed, a catalog row, or
live AWS prices), its preemption prior, startup latency, data path and caps, and every knob
of the decision policy. The simulator reads it with the policy package and prices pools with
the prices package, exactly as the daemon does offline. What a policy file cannot say — how
big the on-prem cluster is, which market history to replay — comes from `WorldOptions`
(the command's flags).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from federator import errors
from federator.core.models import CapacityType
from federator.core.policy import DecisionPolicy
from federator.policy import FederatorConfig, load_policy, to_decision_policy
from federator.policy.clusters import CatalogPrice
from federator.policy.eligibility import JobFacts, may_burst
from federator.prices.interruption import SpotAdvisor
from federator.prices.pools import PoolPricing, pool_pricings
from federator.prices.priors import preemption_prior, spot_advisor_of
from federator.prices.quotes import PriceQuote, Rejection, RejectReason
from federator.prices.validation import check_quote
from federator.sim import markets
from federator.sim.cloud import (
    AvailabilityTrace,
    CloudPool,
    JobPhysics,
    PriceHistory,
    availability_from_trace,
)
from federator.sim.estimates import EstimateMode
from federator.sim.scenarios import Scenario
from federator.sim.traces import TraceJob


@dataclass(frozen=True, slots=True)
class WorldOptions:
    """The simulated world beyond the policy file (from `federator simulate`'s flags)."""

    onprem_gpus: int | None = None  # None: sized from the trace's mean demand
    gpus_per_node: int = 8
    estimate: EstimateMode = field(default_factory=lambda: EstimateMode("exact"))
    seed: int = 0
    # pool name ("cluster/pool") or "*" (every spot pool) -> availability trace file
    spot_traces: Mapping[str, Path] = field(default_factory=dict)
    # pool name or "*" -> (DescribeSpotPriceHistory JSON, zone)
    spot_prices: Mapping[str, tuple[Path, str]] = field(default_factory=dict)
    dataset_gb_per_job: float = 0.0
    output_gb_per_job: float = 0.0
    decision_period_s: float | None = None  # None: the policy's decision interval


@dataclass(frozen=True, slots=True)
class WorldSetup:
    """Everything a run needs besides the trace and the strategy."""

    scenario: Scenario
    policy: DecisionPolicy


def load_world(config_path: Path, trace: Sequence[TraceJob], options: WorldOptions) -> WorldSetup:
    config = load_policy(config_path)
    return build_world(config, trace, options)


def build_world(
    config: FederatorConfig, trace: Sequence[TraceJob], options: WorldOptions
) -> WorldSetup:
    policy = to_decision_policy(config)
    pricings = pool_pricings(config)
    _check_market_names(options, pricings)
    advisor = spot_advisor_of(config)
    pools = tuple(_cloud_pool(pricing, config, options, advisor) for pricing in pricings)
    period = options.decision_period_s
    if period is None:
        period = config.burst.decision_interval.total_seconds()
    scenario = Scenario(
        onprem_gpus=options.onprem_gpus or default_onprem_gpus(trace, options.gpus_per_node),
        gpus_per_node=options.gpus_per_node,
        pools=pools,
        estimate=options.estimate,
        seed=options.seed,
        physics=JobPhysics(
            checkpoint_interval_s=policy.default_checkpoint_interval_s,
            checkpoint_write_s=policy.checkpoint_write_s,
            restart_overhead_s=policy.restart_overhead_s,
        ),
        dataset_bytes_per_job=int(options.dataset_gb_per_job * 1e9),
        output_bytes_per_job=int(options.output_gb_per_job * 1e9),
        decision_period_s=period,
        caps=policy.caps,
        burst_refused=burst_refusals(config, trace),
        tenants=trace_tenants(config, trace),
        tenant_rules=policy.tenants,
    )
    return WorldSetup(scenario=scenario, policy=policy)


def burst_refusals(config: FederatorConfig, trace: Sequence[TraceJob]) -> dict[str, str]:
    """The trace queues whose jobs may not burst, each with the daemon's reason
    (`federator.policy.may_burst`: burst rules, then the queue's `burst` mode, then tenant)."""
    refused = {}
    for name in sorted({job.queue for job in trace}):
        verdict = may_burst(config, trace_job_facts(config, name))
        if not verdict.allowed:
            refused[name] = verdict.reason
    return refused


def trace_tenants(config: FederatorConfig, trace: Sequence[TraceJob]) -> dict[str, str]:
    """The tenant of each trace queue's jobs, as the daemon names it: the tenant listing the
    namespace the queue maps to (`trace_job_facts`), else the namespace itself (budgets and
    tenant rules are keyed by tenant name; a namespace no tenant lists is its own)."""
    tenants = {}
    for name in sorted({job.queue for job in trace}):
        namespace = trace_job_facts(config, name).namespace
        tenant = config.tenant_of_namespace(namespace)
        tenants[name] = tenant.name if tenant is not None else namespace
    return tenants


def trace_job_facts(config: FederatorConfig, queue: str) -> JobFacts:
    """What the daemon would know about a job of this trace queue.

    A trace has no namespaces, labels or priority classes, only a queue name. The simulated
    on-prem cluster is one ClusterQueue: the policy file's first. A trace queue named like a
    watched LocalQueue is that LocalQueue (in its namespace); named like a watched Namespace,
    a plain Job of that namespace; named like a ClusterQueue, that ClusterQueue; any other
    name (`default` when the trace has no queue column) is a LocalQueue of that name feeding
    the simulated ClusterQueue. The namespace is the queue's name unless a LocalQueue says
    otherwise. So opt-in queues never burst (no job carries the opt-in label).
    """
    cluster_queues = [q.name for q in config.queues if q.kind == "ClusterQueue"]
    simulated = cluster_queues[0] if cluster_queues else None
    for watched in config.queues:
        if watched.name != queue:
            continue
        if watched.kind == "LocalQueue" and watched.namespace is not None:
            return JobFacts(namespace=watched.namespace, queue=queue, cluster_queue=simulated)
        if watched.kind == "Namespace":
            return JobFacts(namespace=queue)
        return JobFacts(namespace=queue, cluster_queue=queue)
    return JobFacts(namespace=queue, queue=queue, cluster_queue=simulated)


def default_onprem_gpus(trace: Sequence[TraceJob], gpus_per_node: int) -> int:
    """The trace's mean GPU demand over its submission span, in whole nodes, and never fewer
    GPUs than its biggest job asks for (a cluster that can never place a job would make the
    `never` policy's run impossible, and nobody asked for that size).

    A cluster sized to the mean is overloaded about half of the time, where bursting matters.
    """
    span = max(job.submit_s for job in trace) - min(job.submit_s for job in trace)
    work = sum(job.gpus * job.duration_s for job in trace)
    biggest = max(job.gpus for job in trace)
    mean = work / span if span > 0 else biggest
    return math.ceil(max(mean, biggest, 1) / gpus_per_node) * gpus_per_node


def _cloud_pool(
    pricing: PoolPricing,
    config: FederatorConfig,
    options: WorldOptions,
    advisor: SpotAdvisor | None,
) -> CloudPool:
    capacity = pricing.capacity
    price, on_demand = _list_prices(pricing)
    pool, cluster = pricing.pool, pricing.cluster
    # The daemon's prior, read by the same function (the pool's own rate, 0 on-demand, the
    # Spot Advisor's bucket, the default), is also the rate the simulated market preempts at.
    rate = preemption_prior(config, pricing, advisor).rate_per_hour
    # `is None`, not `or`: a pool's 0s (nodes already up) is a value, not "unset".
    startup = cluster.startup_latency if pool.startup_latency is None else pool.startup_latency
    history = _price_history(pricing, options, on_demand) if capacity is CapacityType.SPOT else None
    availability = _availability(pricing, options) if capacity is CapacityType.SPOT else None
    if price is None:
        if history is None:
            raise errors.UserError(
                f"{pricing.where} ({pricing.key}): no offline price "
                f"({_why_no_price(pricing)}); give it a `fixed` or `catalog` price, or replay "
                f"a market with --spot-prices {pricing.key}=FILE@ZONE"
            )
        price = history.mean_price()
    return CloudPool(
        cluster=cluster.name,
        pool=pool.name,
        gpu_type=pool.gpu_type,
        capacity_type=capacity,
        price_per_gpu_hour_usd=price,
        on_demand_price_per_gpu_hour_usd=on_demand if on_demand is not None else price,
        max_gpus=pool.max_gpus,
        preemption_rate_per_hour=rate,
        startup_latency_s=startup.total_seconds(),
        gpus_per_node=pool.gpus_per_node,
        egress_usd_per_gb=cluster.egress_usd_per_gb,
        # Data in leaves the on-prem cluster: its egress price, as the daemon's offers say.
        ingress_usd_per_gb=_onprem_egress_usd_per_gb(config),
        transfer_bytes_per_s=float(cluster.transfer_bandwidth_per_second),
        price_history=history,
        availability=availability,
        region=_offer_region(pricing),
    )


def _offer_region(pricing: PoolPricing) -> str:
    """The region the daemon's offers give this pool (`federator.prices.offers`): its price
    quote's, else its cluster's. A pool with no offline quote (live AWS prices, replayed
    here) is priced in its price reference's region, which a live quote would carry."""
    quote = pricing.source.quote(pricing.refs[0], 0.0) if pricing.refs else None
    if quote is None or isinstance(quote, Rejection):
        return pricing.region or pricing.cluster.region
    return quote.region or pricing.cluster.region


def _onprem_egress_usd_per_gb(config: FederatorConfig) -> float:
    return next((c.egress_usd_per_gb for c in config.clusters if c.role == "onprem"), 0.0)


def _list_prices(pricing: PoolPricing) -> tuple[float | None, float | None]:
    """(this pool's price, its on-demand price) per GPU-hour from the pool's price source.

    The quote passes the daemon's own gate first (`federator.prices.validation.check_quote`):
    a price `federator prices` shows as SKIPPED (negative, zero, NaN, infinite, spot above
    on-demand) stops the run with a `UserError`, instead of being simulated. A spot pool whose
    source sells no spot there keeps its on-demand price, for a replayed market to use.
    """
    quote = pricing.source.quote(pricing.refs[0], 0.0) if pricing.refs else None
    if quote is None or isinstance(quote, Rejection):
        return None, None
    checked = check_quote(quote, pricing.capacity, quote.observed_at, math.inf)
    if isinstance(checked, Rejection):
        if checked.reason is not RejectReason.NO_SPOT_OFFERING:
            raise errors.UserError(_refused_price(pricing, quote, checked))
        return None, quote.per_gpu_hour(CapacityType.ON_DEMAND)
    return checked.usd_per_gpu_hour, quote.per_gpu_hour(CapacityType.ON_DEMAND)


def _refused_price(pricing: PoolPricing, quote: PriceQuote, refusal: Rejection) -> str:
    """`clusters.<cluster>.pools.<pool>.price: ...`, with the catalog file and its line."""
    field = f"clusters.{pricing.cluster.name}.pools.{pricing.pool.name}.price"
    price = pricing.pool.price
    detail = refusal.detail.removeprefix(f"{quote.source}: ")
    if isinstance(price, CatalogPrice):
        lines = quote.source.rpartition(":")[2]
        origin = (
            f"catalog {price.file}:{lines} ({quote.instance_type} in {quote.zone or quote.region})"
        )
        fix = "fix the row, or price the pool another way"
    else:
        origin = f"{pricing.source.name} price {quote.source}"
        fix = "fix the price"
    return (
        f"{field} ({pricing.where}): {origin}: {detail}; `federator prices` and the daemon "
        f"refuse this price too: {fix}"
    )


def _why_no_price(pricing: PoolPricing) -> str:
    quote = pricing.source.quote(pricing.refs[0], 0.0) if pricing.refs else None
    return quote.detail if isinstance(quote, Rejection) else "the source has no price"


def _for_pool(choices: Mapping[str, object], pricing: PoolPricing) -> object | None:
    return choices.get(pricing.key, choices.get("*"))


def _availability(pricing: PoolPricing, options: WorldOptions) -> AvailabilityTrace | None:
    path = _for_pool(options.spot_traces, pricing)
    if not isinstance(path, Path):
        return None
    return availability_from_trace(markets.load_availability(path))


def _price_history(
    pricing: PoolPricing, options: WorldOptions, on_demand: float | None
) -> PriceHistory | None:
    choice = _for_pool(options.spot_prices, pricing)
    if not isinstance(choice, tuple):
        return None
    path, zone = choice
    price = pricing.pool.price  # a fixed price names no instance type
    instance_type = getattr(price, "instance_type", None)
    return markets.load_price_history(
        path, zone, pricing.key, on_demand, pricing.pool.gpus_per_node, instance_type
    )


def _check_market_names(options: WorldOptions, pricings: Sequence[PoolPricing]) -> None:
    """Each replayed market must reach a spot pool: an on-demand pool has no spot market."""
    capacity = {pricing.key: pricing.capacity for pricing in pricings}
    pools = ", ".join(f"{key} ({kind.value})" for key, kind in sorted(capacity.items()))
    for flag, chosen in (
        ("--spot-trace", options.spot_traces),
        ("--spot-prices", options.spot_prices),
    ):
        unknown = sorted(set(chosen) - set(capacity) - {"*"})
        if unknown:
            raise errors.UserError(
                f"{flag}: no cloud pool called {', '.join(unknown)} in the policy file "
                f"(pools: {pools or 'none'})"
            )
        for name in sorted(set(chosen) - {"*"}):
            if capacity[name] is not CapacityType.SPOT:
                raise errors.UserError(
                    f"{flag} {name}=...: pool {name} is an {capacity[name].value} pool; a "
                    f"replayed spot market only applies to spot pools (pools: {pools})"
                )
        if "*" in chosen and CapacityType.SPOT not in capacity.values():
            raise errors.UserError(
                f"{flag} (for every spot pool): the policy file has no spot pool to replay it for "
                f"(pools: {pools or 'none'})"
            )


def unmatched_gpu_types(trace: Sequence[TraceJob], pools: Sequence[CloudPool]) -> str | None:
    """A warning when trace jobs ask for a GPU type no cloud pool has (None: all match).

    Such jobs are valid (they run on-prem, where the simulator does not model GPU types) but
    can never burst; matching is exact, as in the daemon, so `v100` does not match `V100`.
    """
    offered = {pool.gpu_type for pool in pools}
    counts: dict[str, int] = {}
    for job in trace:
        if job.gpu_type and job.gpu_type not in offered:
            counts[job.gpu_type] = counts.get(job.gpu_type, 0) + 1
    if not counts:
        return None
    asked = ", ".join(f"{name!r} ({jobs} job(s))" for name, jobs in sorted(counts.items()))
    by_case = {name.casefold(): name for name in sorted(offered)}
    hints = sorted(
        f"{name!r} -> {by_case[name.casefold()]!r}" for name in counts if name.casefold() in by_case
    )
    hint = f"; GPU types match case-sensitively (did you mean {', '.join(hints)}?)" if hints else ""
    return (
        f"{sum(counts.values())} trace job(s) ask for a gpu_type no cloud pool offers: {asked}; "
        f"they can only run on-prem, never burst (pools' GPU types: "
        f"{', '.join(sorted(offered)) or 'no cloud pools'}){hint}"
    )


def refused_queues(trace: Sequence[TraceJob], scenario: Scenario) -> str | None:
    """A note when the policy file keeps some trace queues on-prem (None: every job may burst),
    so a run where nothing bursts is not a surprise: queues that may not burst, and queues
    whose tenant may use only clusters or regions where no cloud pool is."""
    counts: dict[str, int] = {}
    reasons: dict[str, str] = {}
    for job in trace:
        if job.queue not in reasons:
            why = scenario.burst_refused.get(job.queue) or scenario.why_tenant_has_no_pool(job)
            reasons[job.queue] = why or ""
        if reasons[job.queue]:
            counts[job.queue] = counts.get(job.queue, 0) + 1
    if not counts:
        return None
    listed = "; ".join(
        f"queue {name!r} ({jobs} job(s)): {reasons[name]}" for name, jobs in sorted(counts.items())
    )
    return f"{sum(counts.values())} trace job(s) may never burst, by the policy file: {listed}"
