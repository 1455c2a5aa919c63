"""The price metrics' label values: every rejection reason a source can give, and the live
sources' refresh and retry counters, exist at 0 from start (so `increase()` sees the first)."""

from __future__ import annotations

from pathlib import Path

import yaml

from federator import metrics, policy
from federator.daemon import policy_file
from federator.prices import metrics as price_metrics
from federator.prices.quotes import RejectReason
from tests.support.configs import sandbox_config

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "federator.example.yaml"


def test_the_rejection_reasons_are_every_reason_a_source_gives() -> None:
    assert set(metrics.PRICE_REJECTION_REASONS) == {reason.value for reason in RejectReason}


def test_every_rejection_reason_starts_at_0() -> None:
    metrics.initialise()
    for reason in RejectReason:
        value = metrics.REGISTRY.get_sample_value(
            "federator_price_inputs_rejected_total", {"reason": reason.value}
        )
        assert value is not None, reason


def test_a_live_aws_source_has_its_refresh_and_retry_counters_at_0() -> None:
    config = policy.load_policy(EXAMPLE)  # a pool priced by `source: aws-spot-api`
    assert price_metrics.live_sources(config) == ["aws"]
    policy_file.initialise_metrics(config)
    sample = metrics.REGISTRY.get_sample_value
    for outcome in ("ok", "failed"):
        labels = {"source": "aws", "outcome": outcome}
        assert sample("federator_price_refreshes_total", labels) is not None, outcome
    assert sample("federator_price_api_retries_total", {"source": "aws"}) is not None


def test_a_policy_without_live_prices_has_no_live_source(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(sandbox_config()))
    assert price_metrics.live_sources(policy.load_policy(path)) == []
