"""The gate in front of the cost model: every nonsense price is refused with its reason."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federator.core.models import CapacityType
from federator.prices.quotes import PricePart, PriceQuote, Rejection, RejectReason
from federator.prices.validation import AcceptedPrice, check_quote

SPOT, ON_DEMAND = CapacityType.SPOT, CapacityType.ON_DEMAND


def quote(
    on_demand: float | None = 32.0,
    spot: float | None = 12.0,
    observed_at: float = 1000.0,
    source: str = "catalog:aws/vms.csv:7",
    gpus: int = 8,
    parts: tuple[PricePart, ...] = (),
) -> PriceQuote:
    return PriceQuote("p4d.24xlarge", "us-east-1", "use1-az1", gpus, on_demand, spot, source,
                      observed_at, parts=parts)  # fmt: skip


@pytest.mark.parametrize(
    ("candidate", "capacity", "reason"),
    [
        (quote(spot=-1.0), SPOT, RejectReason.NEGATIVE),
        (quote(on_demand=-1.0), SPOT, RejectReason.NEGATIVE),  # a broken row is broken
        (quote(spot=0.0), SPOT, RejectReason.ZERO),
        (quote(spot=math.nan), SPOT, RejectReason.NOT_FINITE),
        (quote(on_demand=math.inf), ON_DEMAND, RejectReason.NOT_FINITE),
        (quote(spot=40.0), SPOT, RejectReason.SPOT_ABOVE_ON_DEMAND),
        (quote(spot=None), SPOT, RejectReason.NO_SPOT_OFFERING),
        (quote(on_demand=None), ON_DEMAND, RejectReason.NO_ZONE_DATA),
        (quote(gpus=0), SPOT, RejectReason.MALFORMED),
        (quote(observed_at=0.0), SPOT, RejectReason.STALE),
        (quote(parts=(PricePart("row 3", 10.0, 11.0), PricePart("row 4", 22.0, 1.0))), SPOT,
         RejectReason.SPOT_ABOVE_ON_DEMAND),
        (quote(parts=(PricePart("row 3", -10.0, 1.0),)), ON_DEMAND, RejectReason.NEGATIVE),
    ],
)  # fmt: skip
def test_nonsense_is_refused(
    candidate: PriceQuote, capacity: CapacityType, reason: RejectReason
) -> None:
    result = check_quote(candidate, capacity, now=1500.0, max_age_s=600.0)
    assert isinstance(result, Rejection)
    assert result.reason is reason
    assert result.detail  # always says where and what


def test_a_sane_quote_gives_the_per_gpu_hour_price() -> None:
    result = check_quote(quote(), SPOT, now=1500.0, max_age_s=600.0)
    assert isinstance(result, AcceptedPrice)
    assert result.usd_per_gpu_hour == pytest.approx(1.5)
    assert result.notes == ()


def test_the_staleness_limit_is_inclusive_and_exact() -> None:
    assert isinstance(check_quote(quote(), SPOT, now=1600.0, max_age_s=600.0), AcceptedPrice)
    stale = check_quote(quote(), SPOT, now=1600.5, max_age_s=600.0)
    assert isinstance(stale, Rejection)
    assert "601s old" in stale.detail or "600s old" in stale.detail


def test_spot_above_on_demand_leaves_the_on_demand_pool_usable_with_a_note() -> None:
    result = check_quote(quote(spot=40.0), ON_DEMAND, now=1000.0, max_age_s=600.0)
    assert isinstance(result, AcceptedPrice)
    assert result.usd_per_gpu_hour == pytest.approx(4.0)
    assert result.notes[0].startswith("spot price ignored")


def test_zero_is_allowed_only_for_a_price_a_person_fixed() -> None:
    fixed = quote(on_demand=0.0, spot=None, source="fixed:clusters[1].pools[0]")
    assert isinstance(check_quote(fixed, ON_DEMAND, 1000.0, 600.0), AcceptedPrice)
    assert isinstance(check_quote(quote(on_demand=0.0, spot=None), ON_DEMAND, 1000.0, 600.0),
                      Rejection)  # fmt: skip


def test_a_price_that_underflows_per_gpu_is_refused() -> None:
    """Found by the property below: 5e-324 per 8-GPU instance is 0.0 per GPU."""
    tiny = check_quote(quote(on_demand=None, spot=5e-324), SPOT, 1000.0, 600.0)
    assert isinstance(tiny, Rejection)
    assert "per GPU" in tiny.detail


prices = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=64))


@given(on_demand=prices, spot=prices, capacity=st.sampled_from(list(CapacityType)))
def test_whatever_the_input_an_accepted_price_is_sane(
    on_demand: float | None, spot: float | None, capacity: CapacityType
) -> None:
    result = check_quote(quote(on_demand=on_demand, spot=spot), capacity, 1000.0, 600.0)
    if isinstance(result, Rejection):
        return
    assert math.isfinite(result.usd_per_gpu_hour)
    assert result.usd_per_gpu_hour > 0
    if capacity is SPOT and on_demand is not None:
        assert result.quote.spot_usd_per_hour is not None
        assert result.quote.spot_usd_per_hour <= on_demand * (1 + 1e-4)
