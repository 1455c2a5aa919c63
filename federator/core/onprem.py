"""When each pending job would start on-prem: a replay of the releases the running jobs promise.

The on-prem wait is not a constant. Starting from the free GPUs at `now`, running jobs give
their GPUs back at `now + expected_remaining_s`; queued jobs are admitted in admission order,
and with backfill (Kueue BestEffortFIFO, Starburst's out-of-order loop) a job that does not fit
lets later ones that do fit go first. `OnPremReplay` yields the pending jobs one by one in the
order they would start, and the caller says whether each really stays (and then holds its GPUs
for its runtime) or leaves. That is how decisions in one round account for each other: a job
that bursts frees its place for everyone simulated after it.

Deliberately simple: at `now` gangs must fit on the nodes' free GPUs (`node_free_gpus`, pods
first-fit; a shape that does not fit lets a job of the same size in smaller pods go first);
after that GPUs are pooled (no fragmentation is foreseen; when the caller knows every running
job's nodes, `replay_from_now` picks `node_replay.NodeReplay`, which follows them throughout),
arrivals after `now` are not foreseen, and jobs that cannot fit even on an empty cluster, or
whose pod is bigger than a node, never start (`inf`). Jobs named in `queue_order` that are not
pending here are unknown in size and ignored.
Cost: O(n·s + r) heap and deque steps for n jobs of s distinct sizes and r releases.

Quota pools (`OnPremState.quota_pools`: Kueue cohorts, or ClusterQueues in none) are replayed
apart, each against its own free quota and the releases of its own running jobs, and their
starts merged in time order (`PooledReplay`): a team's full ClusterQueue does not start its
jobs on another team's idle quota. Jobs of no known pool (plain Jobs outside Kueue) are
replayed against the whole cluster, as with one pool. Borrowing limits within a cohort are
not modelled: its members share all their unused quota.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Container, Iterator, Sequence
from dataclasses import replace
from heapq import heapify, heappop, heappush
from typing import Protocol

from federator.core.models import OnPremState, PendingJob, QuotaPool
from federator.core.node_replay import NodeReplay, knows_every_node, pods_of, shape_of


def admission_order(jobs: Sequence[PendingJob], onprem: OnPremState) -> list[PendingJob]:
    """Jobs named in `queue_order` first, in that order; the rest by priority, age and key."""
    return [jobs[index] for index in admission_positions(jobs, onprem)]


def admission_positions(jobs: Sequence[PendingJob], onprem: OnPremState) -> list[int]:
    """`admission_order` as positions in `jobs`, so that callers can map results back."""
    position = {key: index for index, key in enumerate(onprem.queue_order)}
    if not position:
        # The order of (-priority, submitted_at, key, position) tuples, as stable sorts from the
        # last field to the first: each sort compares one plain type (str, float, int), which
        # CPython does about twice as fast as comparing tuples field by field.
        order = sorted(range(len(jobs)), key=[job.key for job in jobs].__getitem__)
        order.sort(key=[job.submitted_at for job in jobs].__getitem__)
        order.sort(key=[-job.priority for job in jobs].__getitem__)
        return order
    # The common case in a live queue: every job is named, already in queue order. A check
    # in one pass instead of sorting keys (the order is the same: positions are distinct).
    last = -1
    for job in jobs:
        at = position.get(job.key, -1)
        if at <= last:
            break
        last = at
    else:
        return list(range(len(jobs)))
    unknown = len(position)
    return sorted(
        range(len(jobs)),
        key=lambda i: (
            position.get(jobs[i].key, unknown),
            -jobs[i].priority,
            jobs[i].submitted_at,
            jobs[i].key,
        ),
    )


_NEVER = math.inf


class Replay(Protocol):
    """What a decision round asks of the on-prem replay (see `OnPremReplay`)."""

    def __len__(self) -> int: ...

    def starts(self) -> Iterator[tuple[int, PendingJob, float]]: ...

    def stays(self, job: PendingJob, start: float) -> None: ...


def replay_from_now(
    ordered: Sequence[PendingJob], onprem: OnPremState, *, now: float, backfill: bool
) -> Replay:
    """The replay of `ordered` (admission order) on `onprem`: several quota pools, nodes
    followed one by one when every running job's nodes are known, else one pool."""
    if len(onprem.quota_pools) > 1:
        return PooledReplay(ordered, onprem, now=now, backfill=backfill)
    if knows_every_node(onprem):
        return NodeReplay(ordered, onprem, now=now, backfill=backfill)
    return OnPremReplay(ordered, onprem, now=now, backfill=backfill)


class PooledReplay:
    """One `OnPremReplay` per quota pool, their starts merged in time order.

    Pools do not take each other's GPUs, so each replays alone; the round still decides jobs in
    the order they would start (ties by admission order), so that a burst's ledger entry is seen
    by every job decided after it, whichever pool it waits in.
    """

    def __init__(
        self, ordered: Sequence[PendingJob], onprem: OnPremState, *, now: float, backfill: bool
    ) -> None:
        self._known = {pool.name: pool for pool in onprem.quota_pools}
        members: dict[str, list[int]] = {}
        for index, job in enumerate(ordered):
            members.setdefault(self._pool_of(job), []).append(index)
        # Admission indices in the round, by pool and position in the pool's own replay.
        self._indices = members
        self._replays = {
            name: OnPremReplay(
                [ordered[i] for i in indices],
                _pool_state(onprem, self._known.get(name)),
                now=now,
                backfill=backfill,
            )
            for name, indices in members.items()
        }

    def _pool_of(self, job: PendingJob) -> str:
        return pool_of(job, self._known)

    def __len__(self) -> int:
        return sum(len(replay) for replay in self._replays.values())

    def starts(self) -> Iterator[tuple[int, PendingJob, float]]:
        """As `OnPremReplay.starts`, all pools together: the earliest next start first."""
        steps = {name: replay.starts() for name, replay in self._replays.items()}
        heads: list[tuple[float, int, str, PendingJob]] = []

        def advance(name: str) -> None:
            # Only after the pool's last job was answered (`stays` or not): its next start
            # depends on that answer; the other pools' next starts do not.
            step = next(steps[name], None)
            if step is not None:
                local, job, start = step
                heappush(heads, (start, self._indices[name][local], name, job))

        for name in steps:
            advance(name)
        while heads:
            start, index, name, job = heappop(heads)
            yield index, job, start
            advance(name)

    def stays(self, job: PendingJob, start: float) -> None:
        self._replays[self._pool_of(job)].stays(job, start)


def pool_of(job: PendingJob, known: Container[str]) -> str:
    """The quota pool `job` waits in among the `known` ones; "" (the whole cluster) when its
    own is unknown: a plain Job outside Kueue, or a queue whose ClusterQueue is not seen."""
    return job.quota_pool if job.quota_pool in known else ""


def _pool_state(onprem: OnPremState, pool: QuotaPool | None) -> OnPremState:
    """The cluster as one pool's jobs see it; the whole cluster for jobs of no known pool."""
    if pool is None:
        return replace(onprem, quota_pools=())
    running = tuple(job for job in onprem.running if job.quota_pool == pool.name)
    return replace(
        onprem,
        total_gpus=pool.total_gpus,
        free_gpus=pool.free_gpus,
        running=running,
        quota_pools=(),
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
        # `x if x > 0 else 0.0` is max(0.0, x) without a call; these lines run per job.
        self._releases: list[tuple[float, int]] = [
            (now + (left if (left := running.expected_remaining_s) > 0 else 0.0), running.gpus)
            for running in onprem.running
        ]
        heapify(self._releases)
        self._ordered = ordered
        # Admission indices by job size, each queue in admission order (plain ints: a round
        # keeps one entry per pending job alive here, and ints cost the collector nothing).
        self._node_size = max(1, onprem.gpus_per_node)
        self._by_size: dict[int, deque[int]] = {}
        # Jobs with a pod bigger than a node never start, however many GPUs come free.
        self._misfits: deque[int] = deque()
        for index, job in enumerate(ordered):
            if job.gpus_per_pod is not None and job.gpus_per_pod > self._node_size:
                self._misfits.append(index)
            else:
                self._by_size.setdefault(job.gpus, deque()).append(index)
        self._sizes = sorted(self._by_size)
        self._left = len(ordered) - len(self._misfits)
        self._end = len(ordered)  # past every admission index
        self._clock = now
        # Node by node free GPUs, used while the replay is still at `now` (gangs must fit on
        # nodes, not just in the pool); once it moves on, the pool view is all there is.
        self._nodes = list(onprem.node_free_gpus) or None
        # (GPUs, pod size) of jobs that fit the pool but not the nodes at `now`.
        self._unplaceable: set[tuple[int, int]] = set()
        self._steps: Iterator[tuple[int, PendingJob, float]] | None = None

    def __len__(self) -> int:
        return self._left + len(self._misfits)

    def next_start(self) -> tuple[PendingJob, float] | None:
        """The next job to start and when; `inf` when it can never start. None when done."""
        if self._steps is None:
            self._steps = self.starts()
        step = next(self._steps, None)
        return None if step is None else (step[1], step[2])

    def starts(self) -> Iterator[tuple[int, PendingJob, float]]:
        """(admission index, job, start) for every job in the order they would start.

        The caller says `stays` (or nothing, when the job leaves) before asking for the next.
        The common step — no node shapes left to respect, backfill on — is written out here
        rather than in helper calls: a round runs it once per pending job.
        """
        ordered = self._ordered
        by_size = self._by_size
        sizes = self._sizes
        end = self._end
        releases = self._releases
        while self._left:
            if self._nodes is None and self._backfill:
                free = self._free
                best_size = -1
                best_index = end
                for size in sizes:
                    if size > free:
                        break
                    queue = by_size[size]
                    if queue and queue[0] < best_index:
                        best_size, best_index = size, queue[0]
                if best_size >= 0:
                    self._left -= 1
                    index = by_size[best_size].popleft()
                    yield index, ordered[index], self._clock
                    continue
                if releases:  # nothing fits: the next release (as _release_next, inline)
                    when, freed = heappop(releases)
                    while releases and releases[0][0] <= when:
                        freed += heappop(releases)[1]
                    self._free = free + freed
                    if when > self._clock:
                        self._clock = when
                    continue
            else:
                found = self._take_fitting()
                if found is not None:
                    yield found, ordered[found], self._clock
                    continue
            if not releases:
                index = self._take_first()
                yield index, ordered[index], math.inf
                continue
            self._release_next()
        while self._misfits:
            index = self._misfits.popleft()
            yield index, ordered[index], math.inf

    def stays(self, job: PendingJob, start: float) -> None:
        """The job really starts at `start` and holds its GPUs for its estimated runtime."""
        if start == _NEVER:
            return
        if self._nodes is not None:
            self._place(job, self._nodes)
        self._free -= job.gpus
        runtime = job.runtime_estimate_s
        heappush(self._releases, (start + (runtime if runtime > 0 else 0.0), job.gpus))

    def _release_next(self) -> None:
        releases = self._releases
        when, gpus = heappop(releases)
        self._free += gpus
        while releases and releases[0][0] <= when:
            self._free += heappop(releases)[1]
        if when > self._clock:
            self._clock = when
        self._nodes = None

    def _take_fitting(self) -> int | None:
        while True:
            candidate = self._fitting_candidate()
            if candidate is None:
                return None
            size, position, index = candidate
            job = self._ordered[index]
            if self._nodes is None or self._place(job, list(self._nodes)):
                del self._by_size[size][position]
                self._left -= 1
                return index
            # It fits the pool but not the nodes: its shape waits for a release, while a job
            # of the same size in smaller pods may still fit now.
            self._unplaceable.add(self._shape(job))

    def _shape(self, job: PendingJob) -> tuple[int, int]:
        return shape_of(job, self._node_size)

    def _place(self, job: PendingJob, nodes: list[int]) -> bool:
        """First-fit the job's pods onto `nodes` (changed in place); False if one does not fit."""
        for size in pods_of(self._shape(job)):
            for node, free in enumerate(nodes):
                if free >= size:
                    nodes[node] = free - size
                    break
            else:
                return False
        return True

    def _fitting_candidate(self) -> tuple[int, int, int] | None:
        """(size, position in its size's queue, admission index) of the next job to try."""
        free = self._free
        if not self._backfill:  # strict FIFO: only the first job may start
            first = self._first_size()
            if first is None or first > free:
                return None
            index = self._by_size[first][0]
            blocked = self._nodes is not None and self._shape(self._ordered[index]) in (
                self._unplaceable
            )
            return None if blocked else (first, 0, index)
        best: tuple[int, int, int] | None = None
        for size in self._sizes:
            if size > free:
                break
            found = self._first_placeable(self._by_size[size])
            if found is not None and (best is None or found[1] < best[2]):
                best = (size, *found)
        return best

    def _first_placeable(self, queue: deque[int]) -> tuple[int, int] | None:
        """(position, admission index) of the first job in `queue` whose shape may fit."""
        if not self._unplaceable or self._nodes is None:
            return (0, queue[0]) if queue else None
        for position, index in enumerate(queue):
            if self._shape(self._ordered[index]) not in self._unplaceable:
                return position, index
        return None

    def _take_first(self) -> int:
        first = self._first_size()
        assert first is not None  # callers only ask while jobs are left
        return self._pop(first)

    def _first_size(self) -> int | None:
        best_size: int | None = None
        best_index = 0
        for size in self._sizes:
            queue = self._by_size[size]
            if queue and (best_size is None or queue[0] < best_index):
                best_size, best_index = size, queue[0]
        return best_size

    def _pop(self, size: int) -> int:
        self._left -= 1
        return self._by_size[size].popleft()
