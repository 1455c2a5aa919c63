"""A call waiting for a slot of an endpoint's limiter when the process is told to stop gives up
without sending, raising `RetriesStopped` as its stopped retries do; a request already in
flight keeps its slot and is counted as before."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from federator.storage import retrying
from federator.storage.throttle import AdaptiveLimiter

HANG_GUARD_S = 30.0  # only so that a broken limiter fails the test instead of hanging it


class WatchedStop(threading.Event):
    """A stop event that counts how often it was looked at, so a test knows when a call is
    waiting for a slot: its retries looked once before the try, the limiter once more before
    waiting."""

    def __init__(self) -> None:
        super().__init__()
        self.looks = 0
        self._looked = threading.Condition()

    def is_set(self) -> bool:
        with self._looked:
            self.looks += 1
            self._looked.notify_all()
        return super().is_set()

    def looked_at(self, times: int, by: threading.Thread) -> bool:
        """Wait until it was looked at `times` times, or `by` ended (or the hang guard)."""
        with self._looked:
            for _ in range(int(HANG_GUARD_S / 0.01)):
                if self.looks >= times or not by.is_alive():
                    break
                self._looked.wait(0.01)
            return self.looks >= times


class OneEndpoint:
    """The copy engine's stack for one request: stoppable retries around a slot of the limiter."""

    def __init__(self, limiter: AdaptiveLimiter, stopping: threading.Event) -> None:
        self.limiter = limiter
        self.stopping = stopping
        self._stoppable_calls: dict[Callable[..., object], Callable[..., object]] = {}
        self.sent: list[str] = []

    def retries_stop_on(self) -> threading.Event:
        return self.stopping

    @retrying.until_stopped
    @retrying.transient_retry()
    def put(self, key: str) -> None:
        with self.limiter.slot(self.stopping):
            self.sent.append(key)


def in_thread(call: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    raised: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            raised.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, raised


def test_a_call_waiting_for_a_slot_gives_up_unsent_when_the_stop_comes() -> None:
    limiter = AdaptiveLimiter.with_ceiling("store-a", 1)
    stopping = WatchedStop()
    endpoint = OneEndpoint(limiter, stopping)
    with limiter.slot():  # the one slot, held by a request in flight
        waiting, raised = in_thread(lambda: endpoint.put("k"))
        assert stopping.looked_at(2, by=waiting), raised  # it is waiting for the slot
        stopping.set()
        waiting.join(HANG_GUARD_S)
        assert not waiting.is_alive()  # gave up while the slot was still taken
    assert endpoint.sent == []
    assert len(raised) == 1
    assert isinstance(raised[0], retrying.RetriesStopped)
    assert "store-a" in str(raised[0])


def test_a_call_asking_for_a_slot_after_the_stop_is_not_sent_even_with_slots_free() -> None:
    limiter = AdaptiveLimiter.with_ceiling("store-a", 4)
    stopping = threading.Event()
    stopping.set()
    sent: list[str] = []
    with pytest.raises(retrying.RetriesStopped), limiter.slot(stopping):
        sent.append("k")
    assert sent == []


def test_a_request_in_flight_at_the_stop_keeps_its_slot_and_the_limiter_stays_whole() -> None:
    limiter = AdaptiveLimiter.with_ceiling("store-a", 2)
    stopping = threading.Event()
    with limiter.slot(stopping):
        stopping.set()  # the request already sent gets its answer
    refused = 0
    for _ in range(3):
        with pytest.raises(retrying.RetriesStopped), limiter.slot(stopping):
            pass
        refused += 1
    # The refused calls took no slot and taught the limiter nothing: a call without a stop (or
    # of another copy, whose stop is not set) still gets both slots.
    other_copy = threading.Event()
    with limiter.slot(other_copy), limiter.slot():
        pass
    stats = limiter.stats()
    assert (refused, stats.limit, stats.throttles, list(limiter.changes)) == (3, 2, 0, [])


def test_without_a_stop_event_a_waiting_call_still_gets_the_slot_when_it_frees() -> None:
    limiter = AdaptiveLimiter.with_ceiling("store-a", 1)
    sent: list[str] = []

    def send() -> None:
        with limiter.slot():
            sent.append("k")

    first = limiter.slot()
    first.__enter__()
    waiting, raised = in_thread(send)
    assert sent == []
    first.__exit__(None, None, None)
    waiting.join(HANG_GUARD_S)
    assert (sent, raised) == (["k"], [])
