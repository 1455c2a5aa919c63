"""Which source prices which pool: the policy file's `price:` sections turned into sources.

Why separate from `offers`: deciding *whom to ask* happens once per config (catalog files are
read once and shared between pools), asking happens every decision round. AWS live sources
are made by a factory the caller passes in (`federator.prices.live.aws_source_factory`), so
this module — and the simulator, which uses it offline — never imports boto3.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from federator.core.models import CapacityType
from federator.policy import Cluster, FederatorConfig, Pool
from federator.policy.clusters import AwsSpotPrice, CatalogPrice, FixedPrice
from federator.prices.catalog import Catalog, CatalogPriceSource, load_catalog
from federator.prices.fixed import FixedPriceSource
from federator.prices.quotes import PriceQuote, PriceRef, PriceSource, Rejection, RejectReason

AwsSourceFactory = Callable[[Cluster, Pool, AwsSpotPrice], PriceSource]


@dataclass(frozen=True, slots=True)
class PoolPricing:
    """One configured pool, the source that prices it, and what to ask that source."""

    cluster: Cluster
    pool: Pool
    source: PriceSource
    refs: tuple[PriceRef, ...]  # several when the pool may use several zones: cheapest wins
    max_age_s: float
    where: str  # the pool's place in the policy file, e.g. "clusters[1].pools[0]"

    @property
    def key(self) -> str:
        return f"{self.cluster.name}/{self.pool.name}"

    @property
    def capacity(self) -> CapacityType:
        return CapacityType(self.pool.capacity_type)

    @property
    def instance_type(self) -> str:
        return self.refs[0].instance_type if self.refs else ""

    @property
    def region(self) -> str:
        return self.refs[0].region if self.refs else self.cluster.region


@dataclass(frozen=True, slots=True)
class OfflineAws:
    """Stands in for AWS live prices where they are switched off; always says so."""

    @property
    def name(self) -> str:
        return "aws-offline"

    def quote(self, ref: PriceRef, now: float) -> PriceQuote | Rejection:
        return Rejection(
            RejectReason.NOT_FETCHED,
            f"aws {ref.describe()}: live AWS prices are switched off here (offline run)",
        )


def pool_pricings(
    config: FederatorConfig, aws_factory: AwsSourceFactory | None = None
) -> tuple[PoolPricing, ...]:
    """Every cloud pool of `config` with its price source, in config order."""
    catalogs: dict[Path, CatalogPriceSource] = {}
    default_age = config.prices.max_price_age.total_seconds()
    pricings: list[PoolPricing] = []
    for c_index, cluster in enumerate(config.clusters):
        for p_index, pool in enumerate(cluster.pools):
            where = f"clusters[{c_index}].pools[{p_index}]"
            pricings.append(_pricing(cluster, pool, where, catalogs, default_age, aws_factory))
    return tuple(pricings)


def _pricing(
    cluster: Cluster,
    pool: Pool,
    where: str,
    catalogs: dict[Path, CatalogPriceSource],
    default_age: float,
    aws_factory: AwsSourceFactory | None,
) -> PoolPricing:
    price = pool.price
    capacity = CapacityType(pool.capacity_type)
    gpus = pool.gpus_per_node
    if isinstance(price, FixedPrice):
        source: PriceSource = FixedPriceSource(price.usd_per_gpu_hour, capacity, gpus, where)
        refs: tuple[PriceRef, ...] = (
            PriceRef("", cluster.region, pool.zone, gpus_per_instance=gpus, capacity=capacity),
        )
        return PoolPricing(cluster, pool, source, refs, default_age, where)
    if isinstance(price, CatalogPrice):
        if price.file not in catalogs:
            catalogs[price.file] = CatalogPriceSource([_load(price.file)])
        refs = (catalog_ref(pool, price),)
        return PoolPricing(cluster, pool, catalogs[price.file], refs, default_age, where)
    source = OfflineAws() if aws_factory is None else aws_factory(cluster, pool, price)
    zones: tuple[str | None, ...] = price.zones or (None,)
    refs = tuple(PriceRef(price.instance_type, price.region, zone, gpus_per_instance=gpus,
                          capacity=capacity) for zone in zones)  # fmt: skip
    return PoolPricing(cluster, pool, source, refs, price.max_age.total_seconds(), where)


def catalog_ref(pool: Pool, price: CatalogPrice) -> PriceRef:
    """What a catalog-priced pool asks its catalog for (the row, and how to read it)."""
    gpus = pool.gpus_per_node
    count = gpus if price.accelerator else None
    capacity = CapacityType(pool.capacity_type)
    return PriceRef(price.instance_type, price.region, price.zone, price.accelerator, count,
                    gpus_per_instance=gpus, capacity=capacity)  # fmt: skip


def _load(path: Path) -> Catalog:
    return load_catalog(path)
