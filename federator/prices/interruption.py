"""AWS Spot Instance Advisor buckets as the *prior* for a pool's preemption rate.

Why only a prior: the advisor publishes a coarse monthly, region-level bucket ("<5%" ...
">20%" of instances interrupted per month). The shipped V100 traces show real GPU spot
preemption at 0.3-0.7 per running hour, orders of magnitude above what a bucket implies, so
the bucket seeds the estimate and the pool's own observed preemptions (see `preemption`)
quickly outweigh it.

Bucket -> hazard per running hour from the bucket's midpoint fraction per month (the `>20%`
tail is assumed to be 30%), converted by the cost model's `rate_from_monthly_fraction`
(λ = -ln(1 - f) / 730 h, the Poisson reading of "f of instances interrupted in a month").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from federator.core.preemption import rate_from_monthly_fraction
from federator.errors import UserError
from federator.prices.quotes import Rejection, RejectReason

# Midpoint of each advisor bucket, as a fraction of instances interrupted per month.
BUCKET_MIDPOINTS = {0: 0.025, 1: 0.075, 2: 0.125, 3: 0.175, 4: 0.30}


@dataclass(frozen=True, slots=True)
class PreemptionPrior:
    """A prior preemption rate for one pool, and where it came from (shown to people)."""

    rate_per_hour: float
    evidence: str  # e.g. "advisor us-east-1 p4d.24xlarge bucket 10-15%/month"


@dataclass(frozen=True, slots=True)
class SpotAdvisor:
    """The advisor snapshot: bucket labels and (region, OS, type) -> bucket index, savings."""

    labels: Mapping[int, str]
    buckets: Mapping[tuple[str, str, str], tuple[int, int]]  # -> (bucket index, savings %)
    source: str
    regions: frozenset[str] = frozenset()

    def prior(
        self, region: str, instance_type: str, operating_system: str = "Linux"
    ) -> PreemptionPrior | Rejection:
        found = self.buckets.get((region, operating_system, instance_type))
        if found is None:
            known_here = region in self.regions
            reason = RejectReason.UNKNOWN_INSTANCE_TYPE if known_here else RejectReason.NO_ZONE_DATA
            return Rejection(
                reason, f"{self.source}: no advisor data for {instance_type} in {region}"
            )
        index, savings = found
        label = self.labels.get(index, f"#{index}")
        return PreemptionPrior(
            rate_per_hour=rate_from_monthly_fraction(BUCKET_MIDPOINTS[index]),
            evidence=(
                f"advisor {region} {instance_type}: {label} interrupted/month, "
                f"{savings}% typical savings"
            ),
        )


def load_spot_advisor(path: Path) -> SpotAdvisor:
    """Read `spot-advisor-data.json` (the public Spot Instance Advisor feed)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise UserError(f"{path}: cannot read the spot advisor data: {error.strerror}") from error
    except json.JSONDecodeError as error:
        raise UserError(f"{path}:{error.lineno}:{error.colno}: not JSON: {error.msg}") from error
    return parse_spot_advisor(document, source=path.name)


def parse_spot_advisor(document: Any, source: str) -> SpotAdvisor:
    if not isinstance(document, dict) or not isinstance(document.get("spot_advisor"), dict):
        raise UserError(f"{source}: expected an object with a 'spot_advisor' mapping")
    labels = {
        int(item["index"]): str(item["label"])
        for item in document.get("ranges", [])
        if isinstance(item, dict) and "index" in item and "label" in item
    }
    buckets: dict[tuple[str, str, str], tuple[int, int]] = {}
    for region, systems in document["spot_advisor"].items():
        for operating_system, types in (systems or {}).items():
            for instance_type, entry in (types or {}).items():
                index = entry.get("r") if isinstance(entry, dict) else None
                if isinstance(index, int) and index in BUCKET_MIDPOINTS:
                    buckets[(region, operating_system, instance_type)] = (
                        index,
                        int(entry.get("s", 0)),
                    )
    regions = frozenset(key[0] for key in buckets)
    return SpotAdvisor(labels=labels, buckets=buckets, source=source, regions=regions)
