"""A short account of what a valid policy file sets up, for `federator validate`.

A file that validates can still say something other than its author meant (a pool left at
zero GPUs, a tenant that can burst nowhere), so validation ends by saying back, in a few
lines, what federator will do with it.
"""

from __future__ import annotations

from federator.policy.clusters import CatalogPrice, Cluster, FixedPrice, Pool
from federator.policy.config import FederatorConfig, resident_datasets
from federator.policy.units import format_duration


def describe(config: FederatorConfig) -> list[str]:
    """One line per thing the file sets up, in the order a reader would check them."""
    lines = [_cluster_line(cluster) for cluster in config.clusters]
    lines.append("queues: " + ", ".join(q.display_name for q in config.queues))
    lines.append(_burst_line(config))
    lines.extend(_tenant_line(config, t.name) for t in config.tenants)
    lines.append(_budget_line(config))
    lines.append(_data_line(config))
    return lines


def _cluster_line(cluster: Cluster) -> str:
    where = "/".join(part for part in (cluster.provider, cluster.region) if part)
    head = f"cluster {cluster.name} ({cluster.role}{', ' + where if where else ''})"
    if not cluster.pools:
        return head
    return head + ": " + "; ".join(_pool_text(pool) for pool in cluster.pools)


def _pool_text(pool: Pool) -> str:
    price = pool.price
    if isinstance(price, FixedPrice):
        source = f"${price.usd_per_gpu_hour:g}/GPU-h fixed"
    elif isinstance(price, CatalogPrice):
        source = f"catalog {price.instance_type} {price.zone or price.region}"
    else:
        source = f"AWS spot API {price.instance_type} {price.region}"
    return f"{pool.name} {pool.capacity_type} {pool.gpu_type} up to {pool.max_gpus} GPUs ({source})"


def _burst_line(config: FederatorConfig) -> str:
    burst = config.burst
    caps = []
    if burst.max_bursted_jobs is not None:
        caps.append(f"{burst.max_bursted_jobs} jobs")
    if burst.max_bursted_gpus is not None:
        caps.append(f"{burst.max_bursted_gpus} GPUs")
    cap_text = f", at most {' and '.join(caps)} in the clouds" if caps else ""
    return (
        f"bursting: policy {burst.policy}, after {format_duration(burst.min_wait)} pending, "
        f"margin {burst.margin_fraction:.0%}{cap_text}"
    )


def _tenant_line(config: FederatorConfig, name: str) -> str:
    tenant = next(t for t in config.tenants if t.name == name)
    clouds = (
        "every cloud"
        if tenant.allowed_clusters is None
        else ", ".join(tenant.allowed_clusters) or "nowhere (never bursts)"
    )
    if tenant.allowed_regions is not None:
        regions = tenant.allowed_regions
        clouds += (" in region " if len(regions) == 1 else " in regions ") + (
            ", ".join(regions) or "none"
        )
    budget = (
        f", ${tenant.budget_usd_per_month:,.0f}/month"
        if tenant.budget_usd_per_month is not None
        else ""
    )
    return f"tenant {tenant.name} ({', '.join(tenant.namespaces)}): bursts to {clouds}{budget}"


def _budget_line(config: FederatorConfig) -> str:
    budgets = config.budgets
    parts = []
    if budgets.usd_per_hour is not None:
        parts.append(f"${budgets.usd_per_hour:,.0f}/hour")
    if budgets.usd_per_day is not None:
        parts.append(f"${budgets.usd_per_day:,.0f}/day")
    if not parts:
        return "budgets: no global cap on cloud spend"
    return f"budgets: {', '.join(parts)}; at the cap jobs {budgets.at_cap}"


def _data_line(config: FederatorConfig) -> str:
    resident = sorted(resident_datasets(config))
    text = f"datasets: {len(config.datasets)}"
    if resident:
        verb = "never leaves" if len(resident) == 1 else "never leave"
        text += f" ({', '.join(resident)} {verb} on-prem)"
    text += "; model registry " + (config.registry.uri if config.registry else "not configured")
    return text
