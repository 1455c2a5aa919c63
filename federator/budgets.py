"""Budget warnings: tell operators when cloud spend nears a cap, before the cap stops bursts.

The cost model enforces the caps of the policy file's `budgets` section (and per tenant); this
module only watches them. After every pass it measures spend against each configured cap
(`hour`, `day`, `tenant:<name>`), sets `federator_budget_remaining_usd` and
`federator_budget_used_fraction`, and when spend crosses `budgets.warn_at_fraction` of a cap it
says so once: one warning log line, one count of `federator_budget_warnings_total`, and one
Kubernetes Event (posted by the caller). It says so again only after spend fell back well
below the fraction (a new hour or day), so a rolling hour hovering at the line does not flap.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import structlog

from federator import metrics, policy
from federator.core.models import Spend

log = structlog.get_logger(__name__)

REARM_FACTOR = 0.9  # re-warn only after spend fell under 90 % of the warning line


@dataclass(frozen=True, slots=True)
class Cap:
    """One configured cap and the spend that counts against it."""

    scope: str  # "hour", "day" or "tenant:<name>"
    limit_usd: float
    spent_usd: float

    @property
    def used_fraction(self) -> float:
        if self.limit_usd <= 0:
            return math.inf if self.spent_usd > 0 else 1.0  # a zero cap is always "reached"
        return self.spent_usd / self.limit_usd

    @property
    def remaining_usd(self) -> float:
        return max(0.0, self.limit_usd - self.spent_usd)

    @property
    def used_fraction_or_none(self) -> float | None:
        """For JSON (logs): a $0 cap with spend is infinitely used, and JSON has no Infinity."""
        fraction = self.used_fraction
        return round(fraction, 3) if math.isfinite(fraction) else None

    def describe(self, warn_at: float) -> str:
        fraction = self.used_fraction
        used = f"{fraction:.0%}" if math.isfinite(fraction) else "a $0 cap"
        return (
            f"cloud spend in scope {self.scope} is ${self.spent_usd:,.2f} of its "
            f"${self.limit_usd:,.2f} cap ({used}, warning at {warn_at:.0%}); "
            "bursts stop when a burst would pass the cap"
        )


def caps_of(config: policy.FederatorConfig, spend: Spend) -> list[Cap]:
    """Every cap the policy file sets, with the spend that counts against it."""
    budgets = config.budgets
    caps: list[Cap] = []
    if budgets.usd_per_hour is not None:
        caps.append(Cap("hour", budgets.usd_per_hour, spend.last_hour_usd))
    if budgets.usd_per_day is not None:
        caps.append(Cap("day", budgets.usd_per_day, spend.today_usd))
    for tenant, limit in tenant_monthly_caps(config, spend.tenant_month_usd).items():
        if limit is not None:
            caps.append(Cap(f"tenant:{tenant}", limit, spend.tenant_month_usd.get(tenant, 0.0)))
    return caps


def tenant_monthly_caps(
    config: policy.FederatorConfig, seen: Iterable[str] = ()
) -> dict[str, float | None]:
    """Every tenant the policy file names and every tenant in `seen` (one with spend but no
    `tenants` entry), in name order, with its monthly cap, or None where it has none.

    One rule for the warnings (`caps_of`) and `federator status`, which also lists the tenants
    without a cap, so the two cannot drift apart. The cost model applies the same rule on its
    own (`policy.decision` into `core.ledger`), as the pure core may not import this module."""
    default = config.budgets.default_tenant_usd_per_month
    own_limits = {t.name: t.budget_usd_per_month for t in config.tenants}
    caps: dict[str, float | None] = {}
    for tenant in sorted(set(own_limits) | set(seen)):
        # A tenant's own cap wins even when it is $0 (no cloud at all), as in the cost model;
        # only a tenant that sets none gets the default.
        limit = own_limits.get(tenant)
        caps[tenant] = default if limit is None else limit
    return caps


def scopes_of(config: policy.FederatorConfig) -> list[str]:
    """The scope of every cap the policy file sets before any spend is seen: the label values
    of the budget metrics to create at start (`metrics.initialise(budget_scopes=...)`)."""
    return [cap.scope for cap in caps_of(config, Spend())]


class BudgetWarnings:
    """Remembers which caps are past the warning line, so each crossing is told once."""

    def __init__(self) -> None:
        self._warned: set[str] = set()

    def observe(self, caps: Iterable[Cap], warn_at: float, *, telling: bool = True) -> list[Cap]:
        """Publish every cap's metrics; return the caps that crossed `warn_at` just now.

        Only the leader tells (`telling`: the log line and the counter; the caller posts the
        Event), as with decisions and spend: every replica observes, and a sum of the counter
        over replicas would count one crossing once per replica. A follower still remembers
        the crossing, so when it leads it does not tell it again."""
        crossed: list[Cap] = []
        for cap in caps:
            # `metrics.initialise` creates the counter of every configured cap at start; a cap
            # that appears later (a reload, a tenant's first spend) gets it here, at 0 unless
            # this very pass crosses its line.
            warnings = metrics.BUDGET_WARNINGS.labels(scope=cap.scope)
            metrics.BUDGET_REMAINING_USD.labels(scope=cap.scope).set(cap.remaining_usd)
            metrics.BUDGET_USED_FRACTION.labels(scope=cap.scope).set(cap.used_fraction)
            if cap.used_fraction >= warn_at:
                if cap.scope not in self._warned:
                    self._warned.add(cap.scope)
                    crossed.append(cap)
                    if not telling:
                        continue
                    warnings.inc()
                    log.warning(
                        "budget_warning",
                        scope=cap.scope,
                        spent_usd=round(cap.spent_usd, 2),
                        limit_usd=cap.limit_usd,
                        used_fraction=cap.used_fraction_or_none,
                        warn_at_fraction=warn_at,
                    )
            elif cap.used_fraction < warn_at * REARM_FACTOR:
                self._warned.discard(cap.scope)
        return crossed
