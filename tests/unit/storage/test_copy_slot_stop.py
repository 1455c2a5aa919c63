"""A copier request still waiting for a slot of its endpoint's limiter when the copy is
stopped is not sent: it raises `retrying.RetriesStopped`, as its stopped retries do."""

from __future__ import annotations

from federator.storage import retrying
from federator.storage.throttle import AdaptiveLimiter
from tests.unit.storage.test_copy_review import MemoryS3, copier
from tests.unit.storage.test_throttle_stop import WatchedStop, in_thread

HANG_GUARD_S = 30.0


def test_a_put_waiting_for_a_slot_when_the_copy_stops_is_not_sent() -> None:
    source, target = MemoryS3(), MemoryS3()
    engine = copier(source, target)
    engine.requests.target_limiter = AdaptiveLimiter.with_ceiling("cloud", 1)
    stopping = WatchedStop()
    engine.requests._stopping = stopping  # before any stoppable call is built
    with engine.requests.target_limiter.slot():  # the one slot, held by a request in flight
        waiting, raised = in_thread(lambda: engine.requests.put("a.bin", b"x", b"m"))
        assert stopping.looked_at(2, by=waiting), raised
        engine.stop()
        waiting.join(HANG_GUARD_S)
        assert not waiting.is_alive()
    assert [call for call in target.calls if call[0].startswith("put")] == []
    assert len(raised) == 1
    assert isinstance(raised[0], retrying.RetriesStopped)
