"""Wiring for live prices: AWS sources for the policy file's `aws-spot-api` pools, and the
refresh the daemon's price loop calls.

Why separate: it is the only part of the price package that pulls in boto3, so the simulator
and offline tools (which build offers from catalogs and replayed history) never load it.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, runtime_checkable

from federator.policy import Cluster, FederatorConfig, Pool, to_decision_policy
from federator.policy.clusters import AwsSpotPrice
from federator.prices.aws import AwsSettings, AwsSpotSource, RefreshReport
from federator.prices.offers import OfferBuilder
from federator.prices.pools import AwsSourceFactory, PoolPricing, pool_pricings
from federator.prices.priors import spot_advisor_of


@runtime_checkable
class Refreshable(Protocol):
    """A price source that must be asked again from time to time (live APIs)."""

    async def refresh_async(self, now: float, force: bool = False) -> RefreshReport: ...


def aws_source_factory(endpoint_url: str | None = None) -> AwsSourceFactory:
    """Make one `AwsSpotSource` per `aws-spot-api` pool, with the pool's own settings.

    `endpoint_url` points every client at a local emulator in tests; None is real AWS.
    Placement scores are asked for the pool's real size in nodes (max GPUs / GPUs per node):
    the score depends on the target capacity.
    """

    def make(cluster: Cluster, pool: Pool, price: AwsSpotPrice) -> AwsSpotSource:
        nodes = max(1, pool.max_gpus // pool.gpus_per_node)
        settings = AwsSettings(
            refresh_interval_s=price.refresh_interval.total_seconds(),
            max_age_s=price.max_age.total_seconds(),
            placement_scores=price.placement_scores,
            endpoint_url=endpoint_url,
        )
        return AwsSpotSource({price.region: {price.instance_type: nodes}}, settings=settings)

    return make


def offer_builder(
    config: FederatorConfig, *, live_aws: bool = True, aws_endpoint: str | None = None
) -> OfferBuilder:
    """The `OfferBuilder` for a policy file, wired the one way the daemon and the CLI share:
    every pool's source (AWS live unless `live_aws=False`), the Spot Advisor prior from
    `prices.interruption_data`, and the preemption-rate unit the decision policy reads.
    """
    factory = aws_source_factory(aws_endpoint) if live_aws else None
    return OfferBuilder(
        config,
        pool_pricings(config, factory),
        advisor=spot_advisor_of(config),
        per_node_preemption=to_decision_policy(config).preemption_rate_per_node,
    )


async def refresh_all(
    pricings: tuple[PoolPricing, ...], now: float, force: bool = False
) -> dict[str, RefreshReport]:
    """Refresh every live source once (each only if its interval is due), concurrently.

    Returns the report per pool key. A failed refresh never raises: the old prices stay and
    age, and `validation` refuses them once they pass the pool's staleness limit.
    """
    live = [(p.key, p.source) for p in pricings if isinstance(p.source, Refreshable)]
    reports = await asyncio.gather(*(source.refresh_async(now, force) for _, source in live))
    return {key: report for (key, _), report in zip(live, reports, strict=True)}
