"""Each pool's prior preemption rate, read one way for the daemon's offers and the simulator.

The order: the pool's own `preemption_rate_per_hour` (on-demand pools included), else 0 for
an on-demand pool, else the Spot Advisor bucket of the pool's region and instance type from
`prices.interruption_data`, else `prices.default_spot_preemption_rate_per_hour`.
"""

from __future__ import annotations

from federator.core.models import CapacityType
from federator.core.preemption import PreemptionPrior
from federator.errors import UserError
from federator.policy import FederatorConfig
from federator.prices.interruption import SpotAdvisor, load_spot_advisor
from federator.prices.pools import PoolPricing
from federator.prices.quotes import Rejection


def spot_advisor_of(config: FederatorConfig) -> SpotAdvisor | None:
    """The Spot Advisor feed `prices.interruption_data` names, or None; a file that cannot be
    read is a `UserError` naming that field."""
    path = config.prices.interruption_data
    if path is None:
        return None
    try:
        return load_spot_advisor(path)
    except UserError as error:
        raise UserError(f"prices.interruption_data: {error}") from None


def preemption_prior(
    config: FederatorConfig, pricing: PoolPricing, advisor: SpotAdvisor | None
) -> PreemptionPrior:
    """The rate believed for `pricing`'s pool before anything is observed, and its source."""
    strength = config.prices.prior_weight.total_seconds() / 3600.0
    if pricing.pool.preemption_rate_per_hour is not None:
        return PreemptionPrior(pricing.pool.preemption_rate_per_hour, strength, "config")
    if pricing.capacity is CapacityType.ON_DEMAND:
        return PreemptionPrior(0.0, strength, "on-demand")
    default = config.prices.default_spot_preemption_rate_per_hour
    if advisor is None or not pricing.instance_type:
        return PreemptionPrior(default, strength, "default")
    found = advisor.prior(pricing.region, pricing.instance_type)
    if isinstance(found, Rejection):
        return PreemptionPrior(default, strength, "default (no advisor data)")
    return PreemptionPrior(found.rate_per_hour, strength, found.evidence)
