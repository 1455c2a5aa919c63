"""The Gamma-Poisson preemption-rate update, as a pure function."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federator.core.preemption import (
    PreemptionObservation,
    PreemptionPrior,
    estimate_rate,
    rate_from_monthly_fraction,
)

PRIOR = PreemptionPrior(rate_per_hour=0.4, strength_hours=24.0, source="trace")


@pytest.mark.parametrize(
    ("observations", "want_rate"),
    [
        pytest.param((), 0.4, id="no data: the prior"),
        pytest.param((PreemptionObservation(0, 24.0),), (0.4 * 24) / 48, id="quiet day halves it"),
        pytest.param((PreemptionObservation(12, 24.0),), (9.6 + 12) / 48, id="stormy day"),
        pytest.param(
            (PreemptionObservation(100, 100.0), PreemptionObservation(100, 100.0)),
            (9.6 + 200) / 224,
            id="lots of data dominates the prior",
        ),
    ],
)
def test_posterior_mean(observations: tuple[PreemptionObservation, ...], want_rate: float) -> None:
    assert estimate_rate(PRIOR, observations).rate_per_hour == pytest.approx(want_rate)


def test_discounting_halves_old_evidence() -> None:
    old = (PreemptionObservation(10, 10.0, age_hours=48.0),)
    estimate = estimate_rate(PRIOR, old, half_life_hours=48.0)
    assert estimate.rate_per_hour == pytest.approx((9.6 + 5) / (24 + 5))


def test_evidence_says_prior_and_observations() -> None:
    estimate = estimate_rate(PRIOR, (PreemptionObservation(3, 10.0),))
    assert (
        estimate.evidence
        == "trace 0.4/h (worth 24 h) + 3 preemptions in 10.0 h observed -> 0.371/h"
    )
    assert estimate_rate(PRIOR).evidence == "trace 0.4/h (worth 24 h)"


def test_posterior_sd_shrinks_with_exposure() -> None:
    little = estimate_rate(PRIOR, (PreemptionObservation(1, 2.0),))
    lots = estimate_rate(PRIOR, (PreemptionObservation(100, 200.0),))
    assert lots.sd_per_hour < little.sd_per_hour


@pytest.mark.parametrize(
    ("prior", "observations"),
    [
        pytest.param(PreemptionPrior(-1.0, 10.0), (), id="negative rate"),
        pytest.param(PreemptionPrior(0.1, 0.0), (), id="zero strength"),
        pytest.param(PRIOR, (PreemptionObservation(-1, 1.0),), id="negative count"),
    ],
)
def test_bad_inputs_are_refused(
    prior: PreemptionPrior, observations: tuple[PreemptionObservation, ...]
) -> None:
    with pytest.raises(ValueError, match="preemption"):
        estimate_rate(prior, observations)


def test_monthly_fraction_to_hourly_rate() -> None:
    rate = rate_from_monthly_fraction(0.2)
    assert 1 - math.exp(-rate * 730) == pytest.approx(0.2)


@given(
    count=st.integers(0, 1000),
    exposure=st.floats(0.0, 1e5),
    more=st.integers(1, 100),
)
def test_more_preemptions_in_the_same_exposure_never_lower_the_rate(
    count: int, exposure: float, more: int
) -> None:
    base = estimate_rate(PRIOR, (PreemptionObservation(count, exposure),))
    worse = estimate_rate(PRIOR, (PreemptionObservation(count + more, exposure),))
    assert worse.rate_per_hour > base.rate_per_hour
    assert min(PRIOR.rate_per_hour, count / exposure if exposure else math.inf) <= (
        base.rate_per_hour + 1e-12
    )
