"""Metrics of the price sources that `federator.metrics` does not declare (yet).

Why a separate module: `federator.metrics` owns the public metric contract and is maintained
by the daemon's owner; these two series are specific to polling cloud price APIs. They are
registered on the same `REGISTRY`, so `/metrics` shows them with the rest. Rejections and
price age use `federator.metrics.PRICE_INPUTS_REJECTED` / `PRICE_AGE_SECONDS` directly.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter

from federator.metrics import REGISTRY
from federator.policy import FederatorConfig
from federator.policy.clusters import AwsSpotPrice

REFRESH_OUTCOMES = ("ok", "failed")
"""`federator_price_refreshes_total{outcome}`: whether a live source's refresh got prices."""

PRICE_REFRESHES = Counter(
    "federator_price_refreshes_total",
    "Refreshes of a live price source, by source (aws) and outcome (ok, failed).",
    ["source", "outcome"],
    registry=REGISTRY,
)
PRICE_API_THROTTLED = Counter(
    "federator_price_api_retries_total",
    "Calls to a cloud price API retried after throttling or a dropped connection, by source.",
    ["source"],
    registry=REGISTRY,
)


def live_sources(config: FederatorConfig) -> list[str]:
    """The live price sources the policy's pools use: `aws` for `source: aws-spot-api`."""
    pools = [pool for cluster in config.clusters for pool in cluster.pools]
    return ["aws"] if any(isinstance(pool.price, AwsSpotPrice) for pool in pools) else []


def initialise(sources: Iterable[str]) -> None:
    """Every series of the given sources at 0, so `increase()` sees a source's first failure
    (see `federator.metrics.initialise`; call it at start and after every reload)."""
    for source in sources:
        for outcome in REFRESH_OUTCOMES:
            PRICE_REFRESHES.labels(source=source, outcome=outcome)
        PRICE_API_THROTTLED.labels(source=source)
