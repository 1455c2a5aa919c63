"""When each pending job would start on-prem, replayed node by node.

`onprem.OnPremReplay` pools the GPUs once the replay leaves `now`: a gang of 16 GPUs "starts"
as soon as any 16 GPUs are free. On a cluster of 8-GPU nodes it needs two empty nodes, and a
node is empty only when the last job on it ends, while the queue's small jobs keep filling the
nodes that drain. Pooling therefore forecasts gangs far too early (docs/cost-model.md §8).

This replay keeps each node's free GPUs for the whole horizon: the running jobs say where their
GPUs are (`RunningJob.nodes`) and give them back to those nodes; a job that stays is placed
best-fit (the fullest node its pod fits, as a bin-packing scheduler with `MostAllocated` does),
and gives its GPUs back to the same nodes when it ends. It is used when the caller knows every
running job's nodes and no quota stands between a job and free nodes (`quota_pools` empty);
arrivals after `now` are still not foreseen.

Cost: for each start and each release that raises the most free GPUs on a node past a waiting
shape's largest pod, one fit test per such shape (O(p·k) for p pods and k GPUs per node; a
one-pod shape is one comparison), plus O(r log r) for r releases and O(m) per placement for m
nodes with the same free GPUs (the lowest index among them, as the scheduler picks).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator, Sequence
from heapq import heapify, heappop, heappush

from federator.core.models import OnPremState, PendingJob, Placement

Shape = tuple[int, int]  # (GPUs, GPUs per pod)


def shape_of(job: PendingJob, node_size: int) -> Shape:
    """The job's GPUs and pod size: its own `gpus_per_pod`, else one node's worth at most."""
    return job.gpus, job.gpus_per_pod or min(job.gpus, node_size)


def pods_of(shape: Shape) -> tuple[int, ...]:
    """The pods of a job of `shape`, largest first: as many full pods as it takes, and what is
    left in one more (none for a job without GPUs)."""
    gpus, pod = shape
    whole, rest = divmod(gpus, pod) if pod > 0 else (0, 0)
    return (pod,) * whole + ((rest,) if rest else ())


def knows_every_node(onprem: OnPremState) -> bool:
    """True when the replay can follow GPUs node by node: the nodes' free GPUs are given, every
    running job says which nodes hold its GPUs, and no quota pool bounds admission (this
    replay reads nodes, not quota)."""
    if not onprem.node_free_gpus or onprem.quota_pools:
        return False
    return all(running.nodes or running.gpus == 0 for running in onprem.running)


class NodeFreeGpus:
    """Free GPUs per node, with the nodes grouped by how many they have free: a fit test costs
    O(GPUs per node) instead of a scan of every node.

    A give-back never raises a node above `size` (the node size, or more if a node has more
    free), so inputs that disagree (a job said to hold GPUs a node does not have) cannot
    invent more room than a node has. (Each node's exact capacity, free plus what the running
    jobs hold there, cost a pass over every placement per round.)"""

    def __init__(self, free: Sequence[int], gpus_per_node: int) -> None:
        self.size = max([gpus_per_node, *free])
        self.free = list(free)
        self._by_free: list[set[int]] = [set() for _ in range(self.size + 1)]
        for node, gpus in enumerate(self.free):
            self._by_free[gpus].add(node)
        self.most = max(self.free, default=0)  # the most free GPUs on any one node

    def fits(self, pods: Sequence[int]) -> bool:
        """Whether pods (largest first) fit, best fit, without taking anything."""
        if not pods:
            return True
        if len(pods) == 1:  # most jobs: one pod fits if one node has room for it
            return pods[0] <= self.most
        if pods[0] > self.most:
            return False
        counts = [len(nodes) for nodes in self._by_free]
        for pod in pods:
            level = next((f for f in range(pod, self.size + 1) if counts[f]), None)
            if level is None:
                return False
            counts[level] -= 1
            counts[level - pod] += 1
        return True

    def take(self, pods: Sequence[int]) -> Placement:
        """Place pods (largest first) best fit; callers test `fits` first."""
        taken: list[tuple[int, int]] = []
        by_free = self._by_free
        for pod in pods:
            for level in range(pod, self.size + 1):
                if by_free[level]:
                    node = min(by_free[level])  # the lowest of the fullest, as the scheduler
                    self._move(node, level - pod)
                    taken.append((node, pod))
                    break
        return tuple(taken)

    def give_back(self, placement: Placement) -> None:
        free, size, nodes = self.free, self.size, len(self.free)
        for node, gpus in placement:
            if 0 <= node < nodes:  # a node since gone keeps nothing
                back = free[node] + gpus
                self._move(node, back if back < size else size)

    def _move(self, node: int, free: int) -> None:
        was = self.free[node]
        by_free = self._by_free
        by_free[was].discard(node)
        by_free[free].add(node)
        self.free[node] = free
        most = self.most
        if free > most:
            self.most = free
        elif was == most and not by_free[was]:
            most = was
            while most > 0 and not by_free[most]:
                most -= 1
            self.most = most


class NodeReplay:
    """`onprem.OnPremReplay`'s contract (`starts`, `stays`), node by node; see the module."""

    def __init__(
        self, ordered: Sequence[PendingJob], onprem: OnPremState, *, now: float, backfill: bool
    ) -> None:
        self._ordered = ordered
        self._backfill = backfill
        self._clock = now
        self._node_size = max(1, onprem.gpus_per_node)
        self._nodes = NodeFreeGpus(onprem.node_free_gpus, self._node_size)
        # (when, tie-breaker, nodes): placements are not comparable, so ties go by sequence.
        self._releases: list[tuple[float, int, Placement]] = [
            (now + (left if (left := running.expected_remaining_s) > 0 else 0.0), i, running.nodes)
            for i, running in enumerate(onprem.running)
        ]
        heapify(self._releases)
        self._sequence = len(self._releases)
        by_shape: dict[Shape, deque[int]] = {}
        self._misfits: deque[int] = deque()
        for index, job in enumerate(ordered):
            if job.gpus_per_pod is not None and job.gpus_per_pod > self._node_size:
                self._misfits.append(index)
            else:
                by_shape.setdefault(shape_of(job, self._node_size), deque()).append(index)
        # One (queue in admission order, pods largest first) per shape.
        self._queues = [(queue, pods_of(shape)) for shape, queue in by_shape.items()]
        self._left = len(ordered) - len(self._misfits)
        self._blocked: set[int] = set()  # `_queues` positions that do not fit until a release
        self._started: tuple[int, tuple[int, ...]] = (-1, ())  # last start's index and pods

    def __len__(self) -> int:
        return self._left + len(self._misfits)

    def starts(self) -> Iterator[tuple[int, PendingJob, float]]:
        """(admission index, job, start) in the order they would start; `stays` in between."""
        while self._left:
            found = self._next_fitting()
            if found is not None:
                self._started = found
                yield found[0], self._ordered[found[0]], self._clock
            elif self._releases:
                self._release_next()
            else:
                index = self._take(self._first_queue())[0]
                yield index, self._ordered[index], math.inf
        while self._misfits:
            index = self._misfits.popleft()
            yield index, self._ordered[index], math.inf

    def stays(self, job: PendingJob, start: float) -> None:
        """The job starts at `start` on the nodes it fits and holds them for its runtime."""
        if start == math.inf:
            return
        index, pods = self._started
        # The contract (`starts`): a stay answers the start just yielded, whose pods fit now.
        if index < 0 or self._ordered[index] is not job:
            raise ValueError("stays() is for the job just yielded")
        placement = self._nodes.take(pods)
        runtime = job.runtime_estimate_s
        self._push_release(start + (runtime if runtime > 0 else 0.0), placement)

    def _next_fitting(self) -> tuple[int, tuple[int, ...]] | None:
        """The first job in admission order whose shape fits now (only the head without
        backfill), taken out of its queue, with its pods."""
        if not self._backfill:
            first = self._first_queue()
            fits = first >= 0 and self._nodes.fits(self._queues[first][1])
            return self._take(first) if fits else None
        best = -1
        best_index = self._left + len(self._ordered)  # past every admission index
        blocked = self._blocked
        most = self._nodes.most
        for position, (queue, pods) in enumerate(self._queues):
            if not queue or queue[0] >= best_index or position in blocked:
                continue
            # One pod fits where one node has room for it: the common case, without a call.
            if (pods[0] <= most) if len(pods) == 1 else self._nodes.fits(pods):
                best, best_index = position, queue[0]
            else:
                blocked.add(position)
        return None if best < 0 else self._take(best)

    def _take(self, position: int) -> tuple[int, tuple[int, ...]]:
        queue, pods = self._queues[position]
        self._left -= 1
        return queue.popleft(), pods

    def _first_queue(self) -> int:
        """The `_queues` position whose head comes first in admission order; -1 when none."""
        heads = [(queue[0], i) for i, (queue, _) in enumerate(self._queues) if queue]
        return min(heads)[1] if heads else -1

    def _release_next(self) -> None:
        when, _, placement = heappop(self._releases)
        self._nodes.give_back(placement)
        while self._releases and self._releases[0][0] <= when:
            self._nodes.give_back(heappop(self._releases)[2])
        if when > self._clock:
            self._clock = when
        # Only shapes whose largest pod now fits some node may fit at all; the rest stay
        # blocked without a test (`fits` would say no at its first comparison).
        if self._blocked:
            most = self._nodes.most
            queues = self._queues
            self._blocked = {i for i in self._blocked if queues[i][1][0] > most}

    def _push_release(self, when: float, placement: Placement) -> None:
        heappush(self._releases, (when, self._sequence, placement))
        self._sequence += 1
