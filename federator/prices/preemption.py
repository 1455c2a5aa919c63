"""Observed preemptions per pool, and the preemption-rate estimate each offer carries.

Why: a pool's prior (config, Spot Advisor bucket, a default) is a guess; what federator sees
its own jobs go through is evidence. The federation loop records, per pool, how many
preemptions happened and the exposure in which they could happen; this ledger keeps them in
daily buckets, is persisted in a Kubernetes ConfigMap (see `preemption_store`) so a restart
does not forget, and turns prior + evidence into a posterior with the cost model's own pure
update (`federator.core.preemption.estimate_rate`, Gamma-Poisson, with its half-life
discounting by the age of each bucket) — there is one update rule in federator, not two.

Exposure is kept in job-hours, node-hours and GPU-hours at once, because the rate's unit must
match how the cost model reads it (`DecisionPolicy.preemption_rate_per_node`): per running job
(job-hours) or per node (node-hours). GPU-hours at risk are kept for people and dashboards.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from federator.core.preemption import (
    PreemptionEstimate,
    PreemptionObservation,
    PreemptionPrior,
    estimate_rate,
)

FORMAT_VERSION = 1
BUCKET_S = 86400.0  # one bucket per day: enough resolution for a half-life of days
MAX_BUCKETS = 120  # older buckets are folded into the oldest kept one (bounded object size)


@dataclass(frozen=True, slots=True)
class EvidenceBucket:
    """What was observed in one pool during one day (starting at `start`, epoch seconds)."""

    start: float
    preemptions: int = 0
    job_hours: float = 0.0
    node_hours: float = 0.0
    gpu_hours: float = 0.0

    def plus(self, other: EvidenceBucket) -> EvidenceBucket:
        return EvidenceBucket(
            start=min(self.start, other.start),
            preemptions=self.preemptions + other.preemptions,
            job_hours=self.job_hours + other.job_hours,
            node_hours=self.node_hours + other.node_hours,
            gpu_hours=self.gpu_hours + other.gpu_hours,
        )


@dataclass(frozen=True, slots=True)
class PreemptionLedger:
    """Evidence per pool (key `"<cluster>/<pool>"`), oldest bucket first. Immutable."""

    pools: Mapping[str, tuple[EvidenceBucket, ...]] = field(default_factory=dict)

    def record(
        self,
        pool: str,
        *,
        preemptions: int,
        job_hours: float,
        node_hours: float,
        gpu_hours: float,
        at: float,
    ) -> PreemptionLedger:
        """Add what was observed since the last record (increments, not totals)."""
        amounts = (preemptions, job_hours, node_hours, gpu_hours)
        if any(not math.isfinite(a) or a < 0 for a in amounts):
            raise ValueError(f"{pool}: preemption evidence must be finite and >= 0: {amounts}")
        new = EvidenceBucket(math.floor(at / BUCKET_S) * BUCKET_S, preemptions, job_hours,
                             node_hours, gpu_hours)  # fmt: skip
        buckets = {b.start: b for b in self.pools.get(pool, ())}
        buckets[new.start] = buckets[new.start].plus(new) if new.start in buckets else new
        ordered = [buckets[start] for start in sorted(buckets)]
        while len(ordered) > MAX_BUCKETS:
            ordered[:2] = [ordered[1].plus(ordered[0])]
        return PreemptionLedger({**self.pools, pool: tuple(ordered)})

    def totals(self, pool: str) -> EvidenceBucket | None:
        buckets = self.pools.get(pool, ())
        if not buckets:
            return None
        total = buckets[0]
        for bucket in buckets[1:]:
            total = total.plus(bucket)
        return total

    def to_json(self) -> str:
        pools = {name: [asdict(b) for b in buckets] for name, buckets in sorted(self.pools.items())}
        return json.dumps({"version": FORMAT_VERSION, "pools": pools}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PreemptionLedger:
        """Parse what `to_json` wrote; ValueError on anything else (never a half-read ledger)."""
        try:
            body: Any = json.loads(text)
            if body.get("version") != FORMAT_VERSION:
                raise ValueError(
                    f"not a preemption ledger of format {FORMAT_VERSION}: "
                    f"version {body.get('version')!r}"
                )
            pools = {
                str(name): tuple(
                    EvidenceBucket(
                        float(b["start"]),
                        int(b["preemptions"]),
                        float(b["job_hours"]),
                        float(b["node_hours"]),
                        float(b["gpu_hours"]),
                    )
                    for b in buckets
                )
                for name, buckets in body["pools"].items()
            }
        except (AttributeError, KeyError, TypeError, json.JSONDecodeError) as error:
            raise ValueError(f"not a preemption ledger: {error!r}") from error
        return cls(pools)


def pool_estimate(
    prior: PreemptionPrior,
    evidence: tuple[EvidenceBucket, ...],
    *,
    now: float,
    per_node: bool,
    half_life_hours: float | None = None,
) -> PreemptionEstimate:
    """Posterior preemption rate of one pool from its prior and its observed buckets."""
    observations = tuple(
        PreemptionObservation(
            preemptions=bucket.preemptions,
            exposure_hours=bucket.node_hours if per_node else bucket.job_hours,
            age_hours=max(0.0, (now - bucket.start - BUCKET_S / 2) / 3600.0),
        )
        for bucket in evidence
    )
    return estimate_rate(prior, observations, half_life_hours=half_life_hours)
