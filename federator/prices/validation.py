"""The gate between price sources and decisions: nonsense prices never reach the cost model.

Pure functions (no logging, no clock): they turn a quote into an `AcceptedPrice` or a
`Rejection` with a reason from a fixed vocabulary. The caller (`offers`) logs the reason and
counts it; the pool is left out of the offers until a later quote passes again.

Rules, and why:
* NaN/infinite or negative prices are refused: any of them would make the cost model
  prefer (or never consider) a pool for a reason that has nothing to do with its cost; so is
  a price over `MAX_USD_PER_HOUR` (1e308 is finite, but a year of it is not). Zero
  is refused from catalogs and APIs (no cloud gives GPUs away) but allowed for a `fixed`
  price a person wrote, e.g. capacity already paid for by a reservation.
* Spot *equal* to on-demand is a real market state (AWS caps spot at the on-demand price, and
  catalogs publish the cap): accepted, with a note that there is no discount and capacity is
  probably short. Catalogs round the two columns differently (p4d `euc1-az2`: 27.43298 vs
  27.433000), so "equal" allows a relative rounding tolerance.
* Spot clearly *above* on-demand (GCP H200 in some zones) cannot be a price anyone pays —
  nobody buys interruptible capacity at a premium — so a spot pool refuses it. An on-demand
  pool reading the same row keeps its (sane) on-demand price and carries a note.
* A quote older than the staleness limit is refused for new decisions (reason `stale`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from federator.core.models import CapacityType
from federator.prices.quotes import PricePart, PriceQuote, Rejection, RejectReason

# Relative tolerance for "spot equals on-demand": covers the 6-decimal rounding of catalogs.
SPOT_CAP_RELATIVE_TOLERANCE = 1e-4
# No machine costs this much per hour (the largest GPU instances cost about 100 USD): a price
# above it is a typo, and sums of such prices over a simulated year overflow to infinity.
MAX_USD_PER_HOUR = 1e6


@dataclass(frozen=True, slots=True)
class AcceptedPrice:
    """A quote that passed every check, with the per-GPU-hour price for one capacity type."""

    quote: PriceQuote
    capacity: CapacityType
    usd_per_gpu_hour: float
    notes: tuple[str, ...]


def check_amount(value: float, what: str, where: str, allow_zero: bool = False) -> Rejection | None:
    """Refuse a single price that is not a finite number above zero (or zero, if allowed), or
    is beyond `MAX_USD_PER_HOUR`."""
    if not math.isfinite(value):
        return Rejection(RejectReason.NOT_FINITE, f"{where}: {what} price {value!r} is not finite")
    if value < 0:
        return Rejection(RejectReason.NEGATIVE, f"{where}: {what} price {value!r} is negative")
    if value == 0 and not allow_zero:
        return Rejection(
            RejectReason.ZERO,
            f"{where}: {what} price {value!r} is zero (no cloud gives GPUs away)",
        )
    if value > MAX_USD_PER_HOUR:
        return Rejection(
            RejectReason.MALFORMED,
            f"{where}: {what} price {value!r} is over {MAX_USD_PER_HOUR:.0f} USD per hour, "
            "which no machine costs (a misplaced decimal point or exponent?)",
        )
    return None


def check_quote(
    quote: PriceQuote, capacity: CapacityType, now: float, max_age_s: float
) -> AcceptedPrice | Rejection:
    """Accept `quote` for a pool of `capacity` at `now`, or say why not."""
    where = quote.source
    for part in (
        PricePart(where, quote.on_demand_usd_per_hour, quote.spot_usd_per_hour),
        *quote.parts,
    ):
        for what, amount in (
            ("on-demand", part.on_demand_usd_per_hour),
            ("spot", part.spot_usd_per_hour),
        ):
            if amount is not None and (
                problem := check_amount(amount, what, part.label, allow_zero=_is_fixed(quote))
            ):
                return problem
    if quote.gpus_per_instance <= 0:
        return Rejection(
            RejectReason.MALFORMED, f"{where}: {quote.gpus_per_instance} GPUs per instance"
        )
    age = quote.age_s(now)
    if age > max_age_s:
        return Rejection(
            RejectReason.STALE,
            f"{where}: price is {age:.0f}s old, over the {max_age_s:.0f}s staleness limit",
        )
    notes = list(quote.notes)
    for part in quote.parts or (
        PricePart(where, quote.on_demand_usd_per_hour, quote.spot_usd_per_hour),
    ):
        relation = compare_spot_to_on_demand(part.on_demand_usd_per_hour, part.spot_usd_per_hour)
        if relation == "above":
            detail = (
                f"{part.label}: spot {part.spot_usd_per_hour} is above on-demand "
                f"{part.on_demand_usd_per_hour} for {quote.instance_type} in "
                f"{quote.zone or quote.region}"
            )
            if capacity is CapacityType.SPOT:
                return Rejection(RejectReason.SPOT_ABOVE_ON_DEMAND, detail)
            notes.append(f"spot price ignored: {detail}")
        elif relation == "equal":
            notes.append(
                "no spot discount: spot is capped at the on-demand price (likely no capacity)"
            )
    price = quote.usd_per_hour(capacity)
    if price is None:
        reason = (
            RejectReason.NO_SPOT_OFFERING
            if capacity is CapacityType.SPOT
            else (RejectReason.NO_ZONE_DATA)
        )
        return Rejection(
            reason,
            f"{where}: no {capacity.value} price for {quote.instance_type} "
            f"in {quote.zone or quote.region}",
        )
    per_gpu = price / quote.gpus_per_instance
    if per_gpu <= 0 and not _is_fixed(quote):  # a price so small it underflows per GPU
        return Rejection(
            RejectReason.ZERO,
            f"{where}: {capacity.value} price {price!r} per instance is {per_gpu!r} per GPU",
        )
    return AcceptedPrice(quote, capacity, per_gpu, tuple(notes))


def compare_spot_to_on_demand(on_demand: float | None, spot: float | None) -> str:
    """'below', 'equal' (within rounding), 'above', or 'unknown' when either price is missing."""
    if spot is None or on_demand is None:
        return "unknown"
    if spot > on_demand * (1 + SPOT_CAP_RELATIVE_TOLERANCE):
        return "above"
    if spot >= on_demand * (1 - SPOT_CAP_RELATIVE_TOLERANCE):
        return "equal"
    return "below"


def _is_fixed(quote: PriceQuote) -> bool:
    return quote.source.startswith("fixed")
