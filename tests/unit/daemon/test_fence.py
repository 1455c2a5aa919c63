"""The fence closes writes by itself when lease renewals stop, before the lease can expire."""

from __future__ import annotations

import pytest
import structlog.testing

from federator.leadership import Fence, NotLeader


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_fresh_follower_may_not_write() -> None:
    fence = Fence(10.0, clock=FakeClock())
    assert not fence.is_leader
    assert not fence.allows_writes()
    with pytest.raises(NotLeader):
        fence.require()


def test_writes_open_on_renewal_and_close_after_the_renew_deadline_without_any_call() -> None:
    clock = FakeClock()
    fence = Fence(10.0, clock=clock)
    fence.mark_renewed()
    assert fence.allows_writes()
    clock.now += 9.9
    assert fence.allows_writes()
    clock.now += 0.2
    assert fence.is_leader  # the election loop has not noticed yet...
    assert not fence.allows_writes()  # ...but writes are already fenced off


def test_losing_the_lease_closes_writes_at_once() -> None:
    fence = Fence(10.0, clock=FakeClock())
    fence.mark_renewed()
    fence.mark_lost()
    assert not fence.allows_writes()


def test_with_leader_election_disabled_writes_are_always_allowed() -> None:
    fence = Fence(10.0, always_open=True, clock=FakeClock())
    assert fence.is_leader
    assert fence.allows_writes()


def test_leadership_is_known_once_the_lease_was_read_even_as_a_follower() -> None:
    fence = Fence(10.0, clock=FakeClock())
    assert not fence.leadership_known
    fence.mark_observed()
    assert fence.leadership_known
    assert not fence.allows_writes()


def test_each_change_of_leadership_is_logged_once() -> None:
    clock = FakeClock()
    fence = Fence(10.0, clock=clock)
    with structlog.testing.capture_logs() as logged:
        fence.mark_renewed()
        fence.mark_renewed()  # a renewal while leading says nothing
        clock.now += 11.0
        fence.allows_writes()
        fence.allows_writes()  # closed once, reported once
        fence.mark_lost()
        fence.mark_renewed()
    assert [entry["event"] for entry in logged] == [
        "leading",
        "write_fence_closed",
        "leadership_lost",
        "leading",
    ]
