"""A price a person wrote into the policy file: a negotiated rate, a reservation, a test pool.

It still goes through the same port and the same checks as every other source, so a typo
like `-3.2` or `.nan` in the config is refused with a reason instead of steering decisions.
"""

from __future__ import annotations

from dataclasses import dataclass

from federator.core.models import CapacityType
from federator.prices.quotes import PriceQuote, PriceRef, Rejection


@dataclass(frozen=True, slots=True)
class FixedPriceSource:
    """Always the configured price per GPU-hour for one capacity type; the other is unknown."""

    usd_per_gpu_hour: float
    capacity: CapacityType
    gpus_per_instance: int = 8
    where: str = "config"  # names the place in the policy file, for rejection messages

    @property
    def name(self) -> str:
        return "fixed"

    def quote(self, ref: PriceRef, now: float) -> PriceQuote | Rejection:
        per_instance = self.usd_per_gpu_hour * self.gpus_per_instance
        spot = per_instance if self.capacity is CapacityType.SPOT else None
        on_demand = per_instance if self.capacity is CapacityType.ON_DEMAND else None
        return PriceQuote(
            instance_type=ref.instance_type,
            region=ref.region,
            zone=ref.zone,
            gpus_per_instance=self.gpus_per_instance,
            on_demand_usd_per_hour=on_demand,
            spot_usd_per_hour=spot,
            source=f"fixed:{self.where}",
            observed_at=now,
        )
