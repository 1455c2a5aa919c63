"""Metrics of the price sources that `federator.metrics` does not declare (yet).

Why a separate module: `federator.metrics` owns the public metric contract and is maintained
by the daemon's owner; these two series are specific to polling cloud price APIs. They are
registered on the same `REGISTRY`, so `/metrics` shows them with the rest. Rejections and
price age use `federator.metrics.PRICE_INPUTS_REJECTED` / `PRICE_AGE_SECONDS` directly.
"""

from __future__ import annotations

from prometheus_client import Counter

from federator.metrics import REGISTRY

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
