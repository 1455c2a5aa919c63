"""The offers the cost model receives: one per configured pool whose price passed every check.

Why here: this is where prices, the preemption estimate and the capacity signal meet, and
where nonsense is stopped. Each round, every pool is priced by its source, the quote goes
through `validation`, the preemption rate is the posterior from the pool's prior and its
observed preemptions, and the capacity comes from the placement score and the free GPUs the
federation loop saw on the cluster's nodes. A pool whose quote is refused is left out of the
offers — it is "skipped until fixed" — with a logged reason (once when it starts, once when it
recovers, so a stuck pool does not flood the log) and a count in
`federator_price_inputs_rejected_total{reason}` every round it stays out.

`OfferBook.rows` keeps every pool, offered or not, for `federator prices` and for the
decision log: a person can always see why a pool is missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import structlog

from federator import metrics
from federator.core.models import CapacityType, Offer
from federator.core.preemption import PreemptionEstimate, PreemptionPrior
from federator.policy import FederatorConfig
from federator.prices.interruption import SpotAdvisor
from federator.prices.pools import PoolPricing
from federator.prices.preemption import PreemptionLedger, pool_estimate
from federator.prices.priors import preemption_prior
from federator.prices.quotes import PriceQuote, Rejection
from federator.prices.validation import AcceptedPrice, check_quote

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PoolRow:
    """One pool as `federator prices` shows it, offered or refused."""

    key: str
    gpu_type: str
    capacity: CapacityType
    spot_usd_per_gpu_hour: float | None
    on_demand_usd_per_gpu_hour: float | None
    price_age_s: float | None
    source: str
    preemption: PreemptionEstimate
    placement_score: float | None
    free_gpus: int
    offer: Offer | None
    refusal: Rejection | None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OfferBook:
    """The offers for one decision round, and the full story per pool."""

    offers: tuple[Offer, ...]
    rows: tuple[PoolRow, ...]

    @property
    def refused(self) -> tuple[PoolRow, ...]:
        return tuple(row for row in self.rows if row.refusal is not None)


@dataclass(slots=True)
class OfferBuilder:
    """Builds an `OfferBook` each round from the pools' sources and the evidence so far."""

    config: FederatorConfig
    pricings: tuple[PoolPricing, ...]
    advisor: SpotAdvisor | None = None
    per_node_preemption: bool = False  # must match DecisionPolicy.preemption_rate_per_node
    half_life_hours: float | None = None
    _refused: dict[str, str] = field(default_factory=dict)  # pool -> last logged reason

    def build(
        self,
        now: float,
        *,
        ledger: PreemptionLedger | None = None,
        free_gpus: Mapping[str, int] | None = None,
        used_gpus: Mapping[str, int] | None = None,
    ) -> OfferBook:
        """Offers at `now`. `free_gpus`: provisionable GPUs seen on each pool's nodes (pool
        key "<cluster>/<pool>"); `used_gpus`: GPUs federator already holds there."""
        rows = tuple(
            self._row(p, now, ledger or PreemptionLedger(), free_gpus or {}, used_gpus or {})
            for p in self.pricings
        )
        return OfferBook(tuple(r.offer for r in rows if r.offer is not None), rows)

    def _row(
        self,
        pricing: PoolPricing,
        now: float,
        ledger: PreemptionLedger,
        free_gpus: Mapping[str, int],
        used_gpus: Mapping[str, int],
    ) -> PoolRow:
        quote, result = self._price(pricing, now)
        estimate = pool_estimate(
            self._prior(pricing), ledger.pools.get(pricing.key, ()), now=now,
            per_node=self.per_node_preemption, half_life_hours=self.half_life_hours,
        )  # fmt: skip
        cap_left = max(0, pricing.pool.max_gpus - used_gpus.get(pricing.key, 0))
        free = min(cap_left, free_gpus[pricing.key]) if pricing.key in free_gpus else cap_left
        self._log_transition(pricing, result)
        offer = None
        if quote is not None:  # a stale quote shows its real age too
            metrics.PRICE_AGE_SECONDS.labels(
                cluster=pricing.cluster.name, pool=pricing.pool.name
            ).set(quote.age_s(now))
        if isinstance(result, AcceptedPrice):
            offer = self._offer(pricing, result, estimate, free, now)
        else:
            metrics.PRICE_INPUTS_REJECTED.labels(reason=result.reason.value).inc()
        return PoolRow(
            key=pricing.key,
            gpu_type=pricing.pool.gpu_type,
            capacity=pricing.capacity,
            spot_usd_per_gpu_hour=_shown(quote, CapacityType.SPOT),
            on_demand_usd_per_gpu_hour=_shown(quote, CapacityType.ON_DEMAND),
            price_age_s=None if quote is None else quote.age_s(now),
            source=quote.source if quote else pricing.source.name,
            preemption=estimate,
            placement_score=None if quote is None else quote.placement_score,
            free_gpus=free,
            offer=offer,
            refusal=result if isinstance(result, Rejection) else None,
            notes=result.notes if isinstance(result, AcceptedPrice) else (),
        )

    def _price(
        self, pricing: PoolPricing, now: float
    ) -> tuple[PriceQuote | None, AcceptedPrice | Rejection]:
        """The cheapest accepted quote over the pool's refs, else the first refusal."""
        best: tuple[PriceQuote | None, AcceptedPrice | Rejection] | None = None
        for ref in pricing.refs:
            quote = pricing.source.quote(ref, now)
            if isinstance(quote, Rejection):
                best = best or (None, quote)
                continue
            checked = check_quote(quote, pricing.capacity, now, pricing.max_age_s)
            if isinstance(checked, Rejection):
                best = best or (quote, checked)
                continue
            if (
                best is None
                or not isinstance(best[1], AcceptedPrice)
                or (checked.usd_per_gpu_hour < best[1].usd_per_gpu_hour)
            ):
                best = (quote, checked)
        if best is None:
            raise ValueError(f"{pricing.where}: pool has no price reference")
        return best

    def _prior(self, pricing: PoolPricing) -> PreemptionPrior:
        return preemption_prior(self.config, pricing, self.advisor)

    def _offer(
        self,
        pricing: PoolPricing,
        price: AcceptedPrice,
        estimate: PreemptionEstimate,
        free: int,
        now: float,
    ) -> Offer:
        cluster, pool = pricing.cluster, pricing.pool
        # `is None`, not `or`: a pool's 0s (nodes already up) is a value, not "unset".
        startup = cluster.startup_latency if pool.startup_latency is None else pool.startup_latency
        return Offer(
            cluster=cluster.name,
            pool=pool.name,
            gpu_type=pool.gpu_type,
            capacity_type=pricing.capacity,
            price_per_gpu_hour_usd=price.usd_per_gpu_hour,
            free_gpus=free,
            preemption_rate_per_hour=estimate.rate_per_hour,
            startup_latency_s=startup.total_seconds(),
            provider=cluster.provider,
            region=price.quote.region or cluster.region,
            gpus_per_node=pool.gpus_per_node,
            egress_usd_per_gb=cluster.egress_usd_per_gb,
            ingress_usd_per_gb=self._onprem_egress_usd_per_gb(),
            transfer_bytes_per_s=float(cluster.transfer_bandwidth_per_second),
            price_source=price.quote.source,
            price_age_s=price.quote.age_s(now),
            preemption_evidence=estimate.evidence,
            placement_score=price.quote.placement_score,
        )

    def _onprem_egress_usd_per_gb(self) -> float:
        return next((c.egress_usd_per_gb for c in self.config.clusters if c.role == "onprem"), 0.0)

    def _log_transition(self, pricing: PoolPricing, result: AcceptedPrice | Rejection) -> None:
        before = self._refused.get(pricing.key)
        if isinstance(result, Rejection):
            if before != result.reason.value:
                log.warning("pool skipped: its price was refused", pool=pricing.key,
                            reason=result.reason.value, detail=result.detail)  # fmt: skip
            self._refused[pricing.key] = result.reason.value
        elif before is not None:
            log.info("pool offered again: its price passes the checks", pool=pricing.key,
                     source=result.quote.source)  # fmt: skip
            del self._refused[pricing.key]


def _shown(quote: PriceQuote | None, capacity: CapacityType) -> float | None:
    return None if quote is None else quote.per_gpu_hour(capacity)
