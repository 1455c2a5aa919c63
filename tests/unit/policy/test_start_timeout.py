"""`burst.replacement.start_timeout`: a Duration (15m by default, null turns it off), longer
than every cloud's startup latency, and carried into the federation's settings."""

from __future__ import annotations

import pytest

from federator.daemon import assembly
from federator.policy import parse_policy
from tests.unit.policy.helpers import edited, errors_of


def with_start_timeout(value: str) -> str:
    return edited(append=f"burst:\n  replacement:\n    start_timeout: {value}\n")


def test_the_default_is_fifteen_minutes_and_reaches_the_federation() -> None:
    config = parse_policy(edited())
    assert config.burst.replacement.start_timeout is not None
    assert config.burst.replacement.start_timeout.total_seconds() == 900
    assert assembly.federation_settings(config).start_timeout_s == 900.0


def test_null_turns_it_off() -> None:
    config = parse_policy(with_start_timeout("null"))
    assert config.burst.replacement.start_timeout is None
    assert assembly.federation_settings(config).start_timeout_s is None


def test_a_set_value_reaches_the_federation() -> None:
    config = parse_policy(with_start_timeout("30m"))
    assert assembly.federation_settings(config).start_timeout_s == 1800.0


@pytest.mark.parametrize("value", ["1m", "2m"])
def test_a_timeout_not_longer_than_a_clusters_startup_latency_is_refused(value: str) -> None:
    """cloud-a starts jobs in 2m (the default): a copy would be re-placed before it could."""
    (error,) = errors_of(with_start_timeout(value))
    assert error.field_path == "burst.replacement.start_timeout"
    assert error.line == 21
    assert f"`burst.replacement.start_timeout` ({value}) must be longer than" in error.message
    assert "`startup_latency` of cloud cluster 'cloud-a' (2m)" in error.message


def test_a_pools_startup_latency_counts_and_the_error_points_at_it_when_the_default_is_used() -> (
    None
):
    text = edited(("        max_gpus: 16", "        max_gpus: 16\n        startup_latency: 20m"))
    (error,) = errors_of(text)
    assert error.field_path == "clusters[1].pools[0].startup_latency"
    assert error.line == 15
    assert "(15m) must be longer than the `startup_latency` of pool cloud-a/a100-spot (20m)" in (
        error.message
    )
