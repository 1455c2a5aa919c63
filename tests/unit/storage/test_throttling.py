"""AIMD concurrency per endpoint: the pure arithmetic and the blocking limiter that applies it."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError

from federator.storage import retrying
from federator.storage.throttle import AdaptiveLimiter
from federator.syncing.throttling import AimdPolicy, AimdState, after_success, after_throttle

POLICY = AimdPolicy(ceiling=16)


def s3_error(status: int, code: str) -> ClientError:
    response: Any = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "PutObject")


def test_a_throttle_halves_the_limit_and_starts_a_new_epoch() -> None:
    state = after_throttle(AimdState.start(POLICY), POLICY, sent_in_epoch=0)
    assert (state.limit, state.epoch, state.streak) == (8, 1, 0)


def test_throttles_of_requests_sent_before_the_last_decrease_do_not_halve_again() -> None:
    once = after_throttle(AimdState.start(POLICY), POLICY, sent_in_epoch=0)
    again = after_throttle(once, POLICY, sent_in_epoch=0)  # sent under the old limit of 16
    assert again.limit == 8
    sent_later = after_throttle(once, POLICY, sent_in_epoch=1)
    assert sent_later.limit == 4


def test_the_limit_never_goes_below_the_floor() -> None:
    state = AimdState.start(POLICY)
    for _ in range(10):
        state = after_throttle(state, POLICY, sent_in_epoch=state.epoch)
    assert state.limit == 1
    floored = AimdPolicy(ceiling=16, floor=3)
    state = AimdState.start(floored)
    for _ in range(10):
        state = after_throttle(state, floored, sent_in_epoch=state.epoch)
    assert state.limit == 3


def test_the_limit_grows_by_one_after_a_window_of_successes_up_to_the_ceiling() -> None:
    state = AimdState(limit=4)
    for _ in range(3):
        state = after_success(state, POLICY, sent_in_epoch=state.epoch)
    assert state.limit == 4, "three successes are less than a window of four"
    state = after_success(state, POLICY, sent_in_epoch=state.epoch)
    assert (state.limit, state.streak) == (5, 0)
    for _ in range(1000):
        state = after_success(state, POLICY, sent_in_epoch=state.epoch)
    assert state.limit == 16


def test_successes_of_requests_sent_before_the_last_decrease_do_not_regrow_the_limit() -> None:
    state = after_throttle(AimdState(limit=4), POLICY, sent_in_epoch=0)
    for _ in range(10):
        state = after_success(state, POLICY, sent_in_epoch=0)
    assert (state.limit, state.streak) == (2, 0)


def test_a_throttle_resets_the_run_of_successes() -> None:
    state = AimdState(limit=4, epoch=2)
    for _ in range(3):
        state = after_success(state, POLICY, sent_in_epoch=state.epoch)
    state = after_throttle(state, POLICY, sent_in_epoch=1)  # stale: no decrease, but the run ends
    assert (state.limit, state.streak) == (4, 0)


@pytest.mark.parametrize(
    "policy",
    [
        {"ceiling": 0},
        {"ceiling": 4, "floor": 5},
        {"ceiling": 4, "decrease_factor": 1.0},
        {"ceiling": 4, "increase_step": 0},
    ],
)
def test_nonsense_policies_are_refused(policy: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"must be|need 1 <= floor"):
        AimdPolicy(**policy)


@pytest.mark.parametrize(
    ("status", "code", "throttle"),
    [
        (503, "SlowDown", True),
        (503, "ServiceUnavailable", True),
        (429, "TooManyRequests", True),
        (400, "Throttling", True),
        (500, "InternalError", False),
        (403, "AccessDenied", False),
        (412, "PreconditionFailed", False),
    ],
)
def test_throttling_answers_are_recognised(status: int, code: str, throttle: bool) -> None:
    error = s3_error(status, code)
    assert retrying.is_throttle(error) is throttle
    if throttle:
        assert retrying.is_transient(error), "a throttled request is retried as well"


def test_the_limiter_halves_on_a_throttle_and_regrows_on_successes() -> None:
    limiter = AdaptiveLimiter.with_ceiling("cloud-a", 8)
    with pytest.raises(ClientError), limiter.slot():
        raise s3_error(503, "SlowDown")
    assert limiter.limit == 4
    with pytest.raises(KeyError), limiter.slot():  # not a throttle: no change
        raise KeyError("x")
    assert limiter.limit == 4
    for _ in range(4):
        with limiter.slot():
            pass
    assert limiter.limit == 5
    stats = limiter.stats()
    assert (stats.lowest, stats.throttles, stats.decreases, stats.increases) == (4, 1, 1, 1)
    assert [c.cause for c in limiter.changes] == ["throttle", "recovery"]


def test_the_limiter_never_lets_more_requests_in_flight_than_its_limit() -> None:
    """24 threads against a ceiling of 8 that a throttle lowers to 4: the in-flight count,
    measured by the requests themselves, stays within the limit each one was admitted under."""
    limiter = AdaptiveLimiter.with_ceiling("onprem", 8)
    lock = threading.Lock()
    in_flight = [0]
    admitted: list[tuple[int, int]] = []  # (in flight, limit) as each request began
    gate = threading.Barrier(8)

    def request() -> None:
        try:
            with limiter.slot():
                with lock:
                    in_flight[0] += 1
                    order = len(admitted)
                    admitted.append((in_flight[0], limiter.limit))
                try:
                    if order < 8:
                        gate.wait(timeout=10)  # the first eight admitted are in flight together
                    if order == 0:
                        raise s3_error(503, "SlowDown")
                finally:
                    with lock:
                        in_flight[0] -= 1
        except ClientError:
            pass

    threads = [threading.Thread(target=request) for _ in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert all(not t.is_alive() for t in threads)
    assert len(admitted) == 24
    assert max(n for n, _ in admitted) == 8, "the first eight ran together, up to the ceiling"
    assert all(n <= limit for n, limit in admitted)
    assert limiter.stats().lowest == 4
    assert any(limit == 4 for _, limit in admitted[8:]), "later requests ran under the new limit"
