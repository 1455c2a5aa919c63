"""Preemption evidence: what this process saw of each pool's preemptions, and the rates it
makes of the offers' prices.

The offers arrive with each pool's preemption rate already estimated from its prior and the
stored evidence (the offers builder's). While it runs, this process counts the preemptions it
meets (a requeue after one) and the copy-hours that ran in each pool (`accrue`, every pass),
and updates each offer's rate with them before the cost model prices it (`rated`). The
composition root also stores these counts as new evidence (`preemptions`, `exposure_h`).

The federation loop creates one `PreemptionEvidence`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from federator.core.models import Offer
from federator.core.preemption import PreemptionObservation, PreemptionPrior, estimate_rate
from federator.federation.blocks import Pool
from federator.federation.ports import CloudView, CopyState


class PreemptionEvidence:
    """This process's preemptions and exposure hours per pool, and the offers rated by them."""

    def __init__(
        self,
        *,
        prior_strength_h: Callable[[], float],
        stored_exposure_h: Callable[[Pool], float],
    ) -> None:
        # The settings' `preemption_prior_strength_h` (reloadable).
        self._prior_strength_h = prior_strength_h
        # Exposure hours (job- or node-hours, as the offers builder counts them) already in the
        # offers' preemption rates: the stored evidence they were built from.
        self._stored_exposure_h = stored_exposure_h
        self.preemptions: dict[Pool, int] = {}
        self.exposure_h: dict[Pool, float] = {}
        self._exposure_at: float | None = None  # when `exposure_h` last accrued

    def count_preemption(self, pool: Pool) -> None:
        """One more preemption seen on `pool` by this process."""
        self.preemptions[pool] = self.preemptions.get(pool, 0) + 1

    def accrue(self, clouds: Mapping[str, CloudView], now: float) -> None:
        """Running copy-hours per pool: the exposure preemptions are counted against."""
        # Its own clock: a pass that stops early (cache not synced, an error) must not make the
        # next one count the same hours again.
        since, self._exposure_at = self._exposure_at, now
        if since is None:
            return
        hours = max(0.0, now - since) / 3600.0
        for view in clouds.values():
            for copy in view.copies:
                if copy.state is CopyState.RUNNING:
                    key = (view.cluster, copy.pool)
                    self.exposure_h[key] = self.exposure_h.get(key, 0.0) + hours

    def rated(self, offer: Offer) -> Offer:
        """The offer with its preemption rate updated by what this process saw in the pool.

        The offer's rate is already the posterior of the pool's prior and its stored evidence,
        Gamma(λ·w, w) with w = the prior's weight + the stored exposure; adding this process's
        preemptions and exposure to that gives the posterior over all the evidence (the Gamma
        update is sequential). Weighed as the prior alone, the stored hours would count for
        nothing and this process's few hours would outweigh them.
        """
        key = (offer.cluster, offer.pool)
        count = self.preemptions.get(key, 0)
        exposure = self.exposure_h.get(key, 0.0)
        if count == 0 and exposure <= 0:
            return offer
        weight_h = self._prior_strength_h() + max(0.0, self._stored_exposure_h(key))
        estimate = estimate_rate(
            PreemptionPrior(offer.preemption_rate_per_hour, weight_h, "prior and stored evidence"),
            (PreemptionObservation(count, exposure),),
        )
        return replace(
            offer,
            preemption_rate_per_hour=estimate.rate_per_hour,
            preemption_evidence=estimate.evidence,
        )
