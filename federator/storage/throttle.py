"""Adaptive concurrency per S3 endpoint: fewer requests in flight while the store throttles.

Every data and multipart request the copy engine sends to an endpoint holds a slot of that
endpoint's `AdaptiveLimiter` while it is in flight. The limiter's limit follows
`federator.syncing.throttling` (AIMD): halved when the store answers a throttling error
(`503 SlowDown`, `429`, `Throttling`...), plus one after a window of successes, between 1 and
the ceiling. Retries (`storage.retrying`) still back off as before; the limiter makes the retry
meet a store with half the load on it, instead of the same load again.

Why not botocore's `retries={"mode": "adaptive"}`: it is a client-side *rate* limiter (a token
bucket in requests per second, CUBIC-adjusted) that works inside botocore's own retry loop. Our
hot GET/PUT requests do not go through botocore's send path (`leanpath`), botocore's retries are
off so that one policy retries everything (`retrying`), and a rate does not bound how many large
part uploads are in flight at once, which is what an overloaded store feels. The limiter here
bounds in-flight requests over both paths; it reuses botocore's list of throttling error codes
(`retrying.is_throttle`).

Threads that find no free slot wait on a condition; slots are never held while a retry sleeps
(the retry decorator wraps the slot, not the other way round). A call given its retries' stop
event (`slot(stopping)`) that is still waiting for a slot when the process is told to stop gives
up without sending, raising `retrying.RetriesStopped` as its stopped retries would: a shutdown
does not wait behind a queue of requests none of which it wants sent.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import structlog

from federator.storage import retrying
from federator.syncing.throttling import (
    AimdPolicy,
    AimdState,
    LimiterStats,
    after_success,
    after_throttle,
)

log = structlog.get_logger(__name__)

# How often a call waiting for a slot looks at its stop event: an Event cannot wake the
# limiter's condition, and a shutdown (25 s after SIGTERM) can spare this much.
_STOP_CHECK_S = 0.1


@dataclass(frozen=True, slots=True)
class LimitChange:
    """One change of an endpoint's limit, for reports and tests."""

    limit: int  # the new limit
    cause: str  # "throttle" or "recovery"
    peak_in_flight_before: int  # the most requests that were in flight under the old limit


class AdaptiveLimiter:
    """The AIMD-bounded number of requests in flight to one endpoint; thread-safe."""

    def __init__(self, endpoint: str, policy: AimdPolicy) -> None:
        self.endpoint = endpoint
        self.policy = policy
        self._state = AimdState.start(policy)
        self._cond = threading.Condition()
        self._in_flight = 0
        self._peak = 0  # most in flight since the last change
        self._lowest = policy.ceiling
        self._throttles = 0
        self.changes: deque[LimitChange] = deque(maxlen=1000)

    @classmethod
    def with_ceiling(cls, endpoint: str, ceiling: int) -> AdaptiveLimiter:
        return cls(endpoint, AimdPolicy(ceiling=max(1, ceiling)))

    @property
    def limit(self) -> int:
        with self._cond:
            return self._state.limit

    @contextmanager
    def slot(self, stopping: threading.Event | None = None) -> Iterator[None]:
        """Hold one of the endpoint's slots for one request; learn from how it ended.

        `stopping`: the event that ends the caller's retries (`retrying.until_stopped`). Once it
        is set, a call that has no slot yet gives up without sending (`RetriesStopped`), even
        one already waiting for a slot; a request already sent keeps its slot until answered."""
        epoch = self._acquire(stopping)
        try:
            yield
        except BaseException as error:
            self._release(epoch, throttled=retrying.is_throttle(error), succeeded=False)
            raise
        self._release(epoch, throttled=False, succeeded=True)

    def stats(self) -> LimiterStats:
        with self._cond:
            decreases = sum(1 for c in self.changes if c.cause == "throttle")
            return LimiterStats(
                self.endpoint,
                self.policy.ceiling,
                self._state.limit,
                self._lowest,
                self._throttles,
                decreases,
                len(self.changes) - decreases,
            )

    def _acquire(self, stopping: threading.Event | None) -> int:
        with self._cond:
            while not self._stopped(stopping) and self._in_flight >= self._state.limit:
                self._cond.wait(None if stopping is None else _STOP_CHECK_S)
            if self._stopped(stopping):
                raise retrying.RetriesStopped(
                    f"a request to {self.endpoint}: not sent: the process is shutting down"
                )
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)
            return self._state.epoch

    @staticmethod
    def _stopped(stopping: threading.Event | None) -> bool:
        return stopping is not None and stopping.is_set()

    def _release(self, epoch: int, *, throttled: bool, succeeded: bool) -> None:
        with self._cond:
            self._in_flight -= 1
            before = self._state
            if throttled:
                self._throttles += 1
                self._state = after_throttle(before, self.policy, sent_in_epoch=epoch)
            elif succeeded:
                self._state = after_success(before, self.policy, sent_in_epoch=epoch)
            if self._state.limit != before.limit:
                cause = "throttle" if throttled else "recovery"
                self.changes.append(LimitChange(self._state.limit, cause, self._peak))
                self._peak = self._in_flight
                self._lowest = min(self._lowest, self._state.limit)
            after = self._state
            self._cond.notify_all()
        if after.limit < before.limit:
            log.warning(
                "s3 store throttled: fewer requests in flight",
                endpoint=self.endpoint,
                limit_from=before.limit,
                limit_to=after.limit,
            )
