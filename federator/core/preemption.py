"""How often a cloud pool preempts, learned from a prior and from what federator saw there.

Preemptions of a running job are modelled as a Poisson process with an unknown rate λ per hour.
The conjugate prior of a Poisson rate is a Gamma distribution, so the update is exact and
closed-form: a prior rate λ0 held with a strength of h0 hours (as if h0 hours had been observed
at that rate: Gamma(α0 = λ0·h0, β0 = h0)) plus n preemptions over an exposure of e hours gives
the posterior Gamma(α0 + n, h0 + e), whose mean (λ0·h0 + n) / (h0 + e) is the estimate. A pool
with little exposure keeps close to its prior (the catalog, the Spot Advisor bucket, a trace);
one with a lot of exposure follows what was seen. Old evidence can be discounted by a half-life
so a pool that changed its behaviour is relearned. The exposure unit (job-hours or node-hours)
is the caller's choice; it must match how `Offer.preemption_rate_per_hour` is read (see
`DecisionPolicy.preemption_rate_per_node`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

HOURS_PER_MONTH = 730.0


@dataclass(frozen=True, slots=True)
class PreemptionPrior:
    rate_per_hour: float  # λ0: the rate believed before any observation
    strength_hours: float  # h0: how many hours of observation the prior is worth
    source: str = "prior"  # where λ0 came from, for the evidence line


@dataclass(frozen=True, slots=True)
class PreemptionObservation:
    preemptions: int  # n: preemptions seen
    exposure_hours: float  # e: running hours (job-hours or node-hours) in which they could happen
    age_hours: float = 0.0  # how long ago, for discounting


@dataclass(frozen=True, slots=True)
class PreemptionEstimate:
    rate_per_hour: float  # posterior mean
    sd_per_hour: float  # posterior standard deviation √α / β
    shape: float  # α of the posterior Gamma
    exposure_hours: float  # β of the posterior Gamma (prior strength included)
    evidence: str  # one line saying where the figure comes from


def estimate_rate(
    prior: PreemptionPrior,
    observations: tuple[PreemptionObservation, ...] = (),
    *,
    half_life_hours: float | None = None,
) -> PreemptionEstimate:
    """The Gamma-Poisson posterior of a pool's preemption rate; see the module docstring."""
    if prior.rate_per_hour < 0 or prior.strength_hours <= 0:
        raise ValueError("a preemption prior needs a rate >= 0 and a strength > 0 hours")
    count = 0.0
    exposure = 0.0
    for seen in observations:
        if seen.preemptions < 0 or seen.exposure_hours < 0:
            raise ValueError("preemption observations need counts and exposures >= 0")
        weight = _weight(seen.age_hours, half_life_hours)
        count += weight * seen.preemptions
        exposure += weight * seen.exposure_hours
    shape = prior.rate_per_hour * prior.strength_hours + count
    scale_hours = prior.strength_hours + exposure
    rate = shape / scale_hours
    return PreemptionEstimate(
        rate_per_hour=rate,
        sd_per_hour=math.sqrt(shape) / scale_hours,
        shape=shape,
        exposure_hours=scale_hours,
        evidence=_evidence(prior, count, exposure, rate),
    )


def rate_from_monthly_fraction(fraction: float) -> float:
    """Hourly rate from "fraction of instances interrupted per month" (the Spot Advisor buckets).

    P(interrupted within a month) = 1 − e^{−λ·730 h}, so λ = −ln(1 − fraction) / 730. The
    advisor is known to understate the hourly hazard of GPU pools by a lot (anchors-cost.md),
    which is why it should only be a weak prior.
    """
    if not 0 <= fraction < 1:
        raise ValueError("a monthly interruption fraction must be in [0, 1)")
    return -math.log1p(-fraction) / HOURS_PER_MONTH


def _weight(age_hours: float, half_life_hours: float | None) -> float:
    if half_life_hours is None:
        return 1.0
    return math.pow(0.5, max(0.0, age_hours) / half_life_hours)


def _evidence(prior: PreemptionPrior, count: float, exposure: float, rate: float) -> str:
    start = f"{prior.source} {prior.rate_per_hour:.3g}/h (worth {prior.strength_hours:.0f} h)"
    if exposure <= 0 and count <= 0:
        return start
    return f"{start} + {count:g} preemptions in {exposure:.1f} h observed -> {rate:.3g}/h"
