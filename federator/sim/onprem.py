"""The simulated on-prem cluster: GPU nodes with gang placement, and Kueue-like admission.

Placement is whole-job and all-or-nothing (a gang): a job of at most one node's GPUs must fit
on one node; a larger job is cut into full nodes plus a remainder, each on a distinct node
(12 GPUs on 8-GPU nodes -> one empty node + a node with 4 free). Among the nodes that fit we
pick the fullest (best fit), which keeps whole nodes free for large jobs the way a bin-packing
scheduler (Kubernetes `MostAllocated`) does.

Admission is Kueue's BestEffortFIFO for one ClusterQueue: workloads are tried in submission
order; one that does not fit is set aside and the next is tried, so small jobs backfill behind
a blocked head (no reservation is made for the head, as in Kueue). Because fitting is monotone
in the job's size (if g GPUs do not fit, no job of g' >= g GPUs fits either while the scan only
takes GPUs away), the queue is kept as one FIFO per size and a scan stops looking at a size as
soon as one job of it failed, or as soon as it is above the GPUs left free (never tried). This
makes a scan cost O(jobs admitted x sizes) instead of O(queue length), which is what keeps a
200,000-job trace fast.
"""

from __future__ import annotations

from bisect import insort
from collections import deque
from collections.abc import Iterator, KeysView
from dataclasses import dataclass

from federator.core.models import Placement

_NO_NODES: frozenset[int] = frozenset()


class GpuNodes:
    """Nodes of one size and their free GPUs; places and releases gangs."""

    def __init__(self, total_gpus: int, gpus_per_node: int) -> None:
        if total_gpus < 0 or gpus_per_node < 1:
            raise ValueError("total_gpus must be >= 0 and gpus_per_node >= 1")
        full, rest = divmod(total_gpus, gpus_per_node)
        self.gpus_per_node = gpus_per_node
        self.total_gpus = total_gpus
        self.capacity = [gpus_per_node] * full + ([rest] if rest else [])
        self.free = list(self.capacity)
        self.free_gpus = total_gpus
        # nodes_by_free[f] = the nodes with exactly f free GPUs (best fit is a scan of 9 sets).
        self._nodes_by_free: list[set[int]] = [set() for _ in range(gpus_per_node + 1)]
        for node, free in enumerate(self.free):
            self._nodes_by_free[free].add(node)

    def largest_gang(self) -> int:
        """The GPUs of the largest single-node job that would fit now."""
        for free in range(self.gpus_per_node, 0, -1):
            if self._nodes_by_free[free]:
                return free
        return 0

    def place(self, gpus: int) -> Placement | None:
        """Take `gpus` as a gang, or return None (and take nothing) when it does not fit."""
        if gpus > self.free_gpus:
            return None
        if 0 < gpus <= self.gpus_per_node:
            return self._place_on_one_node(gpus)
        whole, rest = divmod(gpus, self.gpus_per_node)
        empty = self._nodes_by_free[self.gpus_per_node]
        if len(empty) < whole:
            return None
        chosen = sorted(empty)[:whole] if whole else []
        parts = [(node, self.gpus_per_node) for node in chosen]
        if rest:
            node = self._best_fit(rest, exclude=set(chosen))
            if node is None:
                return None
            parts.append((node, rest))
        for node, taken in parts:
            self._move(node, self.free[node] - taken)
        self.free_gpus -= gpus
        return tuple(parts)

    def _place_on_one_node(self, gpus: int) -> Placement | None:
        # Most jobs fit one node: `place` without the whole-node lists and exclusion sets (a
        # simulation of trace A tries ~80,000 gangs; the oracle runs ten simulations).
        node = self._best_fit(gpus, exclude=_NO_NODES)
        if node is None:
            return None
        self._move(node, self.free[node] - gpus)
        self.free_gpus -= gpus
        return ((node, gpus),)

    def release(self, placement: Placement) -> None:
        for node, taken in placement:
            self._move(node, self.free[node] + taken)
            self.free_gpus += taken

    def _best_fit(self, gpus: int, exclude: set[int] | frozenset[int]) -> int | None:
        for free in range(gpus, self.gpus_per_node + 1):
            candidates = self._nodes_by_free[free]
            if exclude:
                candidates = candidates - exclude
            if candidates:
                return min(candidates)
        return None

    def _move(self, node: int, free: int) -> None:
        if not 0 <= free <= self.capacity[node]:
            raise AssertionError(f"node {node} would have {free} free GPUs")
        self._nodes_by_free[self.free[node]].discard(node)
        self._nodes_by_free[free].add(node)
        self.free[node] = free


@dataclass(slots=True)
class Queued:
    """A job waiting for on-prem admission; `live` turns False when it leaves (e.g. bursts)."""

    order: int  # submission order: the FIFO key
    job: int  # index of the job in the trace
    gpus: int
    live: bool = True

    def __lt__(self, other: Queued) -> bool:
        return self.order < other.order


class BestEffortFifo:
    """Kueue's BestEffortFIFO over one ClusterQueue, kept as one FIFO per job size."""

    def __init__(self) -> None:
        self._by_size: dict[int, deque[Queued]] = {}
        self._sizes: list[int] = []  # the keys of _by_size, ascending: a scan stops at a size
        self._entries: dict[int, Queued] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, job: int) -> bool:
        return job in self._entries

    @property
    def jobs(self) -> KeysView[int]:
        """The queued jobs, as a live set-like view: it follows every push, admission and
        removal, and set operations with it (`due & queue.jobs`) run without a Python call per
        job (the engine filters whole rounds of due jobs with it)."""
        return self._entries.keys()

    def push(self, order: int, job: int, gpus: int) -> None:
        """Queue a job; `order` must grow with every push (submission order)."""
        entry = Queued(order, job, gpus)
        self._entries[job] = entry
        fifo = self._by_size.get(gpus)
        if fifo is None:
            fifo = self._by_size[gpus] = deque()
            insort(self._sizes, gpus)
        fifo.append(entry)

    def remove(self, job: int) -> None:
        """Take a job out of the queue (it bursted); O(1), swept lazily."""
        self._entries.pop(job).live = False

    def admit(self, nodes: GpuNodes) -> Iterator[tuple[int, Placement]]:
        """Yield (job, placement) for every job admitted now, in BestEffortFIFO order."""
        if not nodes.free_gpus:
            return  # a full cluster: the common case in an overflow
        # Sizes >= blocked_from cannot be placed for the rest of the scan (which only takes
        # GPUs away): those that failed in it, and those above the free GPUs, never tried.
        blocked_from = nodes.free_gpus + 1
        while True:
            entry = self._next_candidate(blocked_from)
            if entry is None:
                return
            placement = nodes.place(entry.gpus)
            if placement is None:
                blocked_from = entry.gpus
                continue
            self._by_size[entry.gpus].popleft()
            del self._entries[entry.job]
            yield entry.job, placement
            blocked_from = min(blocked_from, nodes.free_gpus + 1)

    def prefix(self, through: int, limit: int) -> list[int]:
        """Queued jobs in FIFO order up to and including order `through`, at most `limit`."""
        found: list[int] = []
        for entry in self._entries.values():  # dicts keep insertion order, pushes come in FIFO
            if entry.order > through or len(found) >= limit:
                break
            found.append(entry.job)
        return found

    def count_after(self, through: int) -> int:
        """How many queued jobs come after order `through` (counted from the tail)."""
        count = 0
        for entry in reversed(self._entries.values()):
            if entry.order <= through:
                break
            count += 1
        return count

    def _next_candidate(self, blocked_from: int) -> Queued | None:
        best: Queued | None = None
        by_size = self._by_size
        for size in self._sizes:
            if size >= blocked_from:
                break
            fifo = by_size[size]
            while fifo and not fifo[0].live:
                fifo.popleft()
            if fifo and (best is None or fifo[0].order < best.order):
                best = fifo[0]
        return best
