"""When each pending job would start on-prem: a replay of the releases the running jobs promise.

The on-prem wait is not a constant. Starting from the free GPUs at `now`, running jobs give
their GPUs back at `now + expected_remaining_s`; queued jobs are admitted in admission order,
and with backfill (Kueue BestEffortFIFO, Starburst's out-of-order loop) a job that does not fit
lets later ones that do fit go first. `OnPremReplay` yields the pending jobs one by one in the
order they would start, and the caller says whether each really stays (and then holds its GPUs
for its runtime) or leaves. That is how decisions in one round account for each other: a job
that bursts frees its place for everyone simulated after it.

Deliberately simple: GPUs are pooled (no node fragmentation), arrivals after `now` are not
foreseen, and jobs that cannot fit even on an empty cluster never start (`inf`). Jobs named in
`queue_order` that are not pending here are unknown in size and ignored.
Cost: O(n·s + r) heap and deque steps for n jobs of s distinct sizes and r releases.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Sequence

from federator.core.models import OnPremState, PendingJob


def admission_order(jobs: Sequence[PendingJob], onprem: OnPremState) -> list[PendingJob]:
    """Jobs named in `queue_order` first, in that order; the rest by priority, age and key."""
    position = {key: index for index, key in enumerate(onprem.queue_order)}
    unknown = len(position)
    return sorted(
        jobs,
        key=lambda job: (
            position.get(job.key, unknown),
            -job.priority,
            job.submitted_at,
            job.key,
        ),
    )


class OnPremReplay:
    """Replays on-prem admission forward from `now`; see the module docstring."""

    def __init__(
        self,
        ordered: Sequence[PendingJob],
        onprem: OnPremState,
        *,
        now: float,
        backfill: bool,
    ) -> None:
        self._now = now
        self._free = onprem.free_gpus
        self._backfill = backfill
        self._releases: list[tuple[float, int]] = [
            (now + max(0.0, running.expected_remaining_s), running.gpus)
            for running in onprem.running
        ]
        heapq.heapify(self._releases)
        self._by_size: dict[int, deque[tuple[int, PendingJob]]] = {}
        for index, job in enumerate(ordered):
            self._by_size.setdefault(job.gpus, deque()).append((index, job))
        self._sizes = sorted(self._by_size)
        self._left = len(ordered)
        self._end = len(ordered)  # past every admission index
        self._clock = now

    def __len__(self) -> int:
        return self._left

    def next_start(self) -> tuple[PendingJob, float] | None:
        """The next job to start and when; `inf` when it can never start. None when done."""
        while self._left:
            job = self._take_fitting()
            if job is not None:
                return job, self._clock
            if not self._releases:
                return self._take_first(), math.inf
            self._release_next()
        return None

    def stays(self, job: PendingJob, start: float) -> None:
        """The job really starts at `start` and holds its GPUs for its estimated runtime."""
        if math.isinf(start):
            return
        self._free -= job.gpus
        heapq.heappush(self._releases, (start + max(0.0, job.runtime_estimate_s), job.gpus))

    def _release_next(self) -> None:
        when, gpus = heapq.heappop(self._releases)
        self._free += gpus
        while self._releases and self._releases[0][0] <= when:
            self._free += heapq.heappop(self._releases)[1]
        self._clock = max(self._clock, when)

    def _take_fitting(self) -> PendingJob | None:
        if not self._backfill:
            first = self._first_size()
            return self._pop(first) if first is not None and first <= self._free else None
        free = self._free
        best_size = -1
        best_index = self._end
        by_size = self._by_size
        for size in self._sizes:
            if size > free:
                break
            queue = by_size[size]
            if queue and queue[0][0] < best_index:
                best_size, best_index = size, queue[0][0]
        return self._pop(best_size) if best_size >= 0 else None

    def _take_first(self) -> PendingJob:
        first = self._first_size()
        assert first is not None  # callers only ask while jobs are left
        return self._pop(first)

    def _first_size(self) -> int | None:
        best_size: int | None = None
        best_index = 0
        for size in self._sizes:
            queue = self._by_size[size]
            if queue and (best_size is None or queue[0][0] < best_index):
                best_size, best_index = size, queue[0][0]
        return best_size

    def _pop(self, size: int) -> PendingJob:
        self._left -= 1
        return self._by_size[size].popleft()[1]
