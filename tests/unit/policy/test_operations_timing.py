"""Leader election timings leave the fence its margin, and stay within what the client accepts."""

from __future__ import annotations

import pytest

from federator.policy import parse_policy
from tests.unit.policy.helpers import edited, errors_of


def with_timings(lease: str, renew: str, retry: str) -> str:
    return edited(
        append=(
            "leader_election:\n"
            f"  lease_duration: {lease}\n"
            f"  renew_deadline: {renew}\n"
            f"  retry_period: {retry}\n"
        )
    )


@pytest.mark.parametrize("lease", ["11s", "12s"])
def test_a_lease_without_a_margin_over_renew_deadline_plus_retry_is_refused(lease: str) -> None:
    """Before: only retry < renew < lease was checked, so 11s/10s/2s passed and another
    replica could take the lease while the old leader's last write was still in flight."""
    (error,) = errors_of(with_timings(lease, "10s", "2s"))
    assert error.field_path == "leader_election"
    assert f"`lease_duration` ({lease}) must be longer than" in error.message
    assert "`renew_deadline` + `retry_period` (12s)" in error.message


def test_a_lease_just_past_the_margin_is_accepted() -> None:
    config = parse_policy(with_timings("12500ms", "10s", "2s"))
    assert config.leader_election.lease_duration.total_seconds() == 12.5


@pytest.mark.parametrize(
    ("renew", "retry", "named"),
    [("10s", "500ms", "`retry_period` (0.5s) must be at least 1s"),
     ("2s", "2s", "`renew_deadline` (2s) must be longer than 1.2 x `retry_period`")],
)  # fmt: skip
def test_timings_the_kubernetes_client_refuses_are_refused_here(
    renew: str, retry: str, named: str
) -> None:
    """The client's election Config raises on these at every round: the replica never leads."""
    (error,) = errors_of(with_timings("1m", renew, retry))
    assert named in error.message
