from __future__ import annotations

from federator.sim.onprem import BestEffortFifo, GpuNodes, Placement


def test_a_job_larger_than_a_node_takes_whole_nodes_plus_a_remainder() -> None:
    nodes = GpuNodes(24, 8)
    assert nodes.place(3) == ((0, 3),)
    assert nodes.place(12) == ((1, 8), (0, 4))  # the remainder best-fits the fullest node
    assert nodes.free == [1, 0, 8]
    assert nodes.place(16) is None  # only one empty node left
    assert nodes.free_gpus == 9


def test_best_fit_keeps_empty_nodes_for_big_jobs() -> None:
    nodes = GpuNodes(16, 8)
    nodes.place(6)
    assert nodes.place(2) == ((0, 2),)
    assert nodes.place(8) == ((1, 8),)


def test_release_gives_the_gpus_back() -> None:
    nodes = GpuNodes(16, 8)
    placement = nodes.place(12)
    assert placement is not None
    nodes.release(placement)
    assert nodes.free == [8, 8]
    assert nodes.free_gpus == 16


def test_best_effort_fifo_lets_smaller_jobs_pass_a_blocked_head() -> None:
    nodes = GpuNodes(8, 8)
    nodes.place(6)
    queue = BestEffortFifo()
    for job, gpus in enumerate([4, 1, 2, 1]):
        queue.push(job, job, gpus)
    admitted = [job for job, _ in queue.admit(nodes)]
    assert admitted == [1, 3]  # 4 does not fit; 1 fits; 2 no longer fits after it; the last 1 fits
    assert 0 in queue
    assert 2 in queue
    assert len(queue) == 2


def test_removed_jobs_are_never_admitted_and_prefix_skips_them() -> None:
    nodes = GpuNodes(8, 8)
    queue = BestEffortFifo()
    for job in range(4):
        queue.push(job, job, 4)
    queue.remove(0)
    assert queue.prefix(through=3, limit=10) == [1, 2, 3]
    assert queue.prefix(through=2, limit=1) == [1]
    assert [job for job, _ in queue.admit(nodes)] == [1, 2]


def test_count_after_counts_the_live_jobs_behind_an_order() -> None:
    queue = BestEffortFifo()
    for job in range(6):
        queue.push(job, job, 1)
    queue.remove(4)
    assert queue.count_after(2) == 2  # 3 and 5
    assert queue.count_after(5) == 0
    assert queue.count_after(-1) == 5


class CountingNodes(GpuNodes):
    """Nodes that record each gang size a scan tries to place."""

    def __init__(self, total_gpus: int, gpus_per_node: int) -> None:
        super().__init__(total_gpus, gpus_per_node)
        self.tried: list[int] = []

    def place(self, gpus: int) -> Placement | None:
        self.tried.append(gpus)
        return super().place(gpus)


def test_a_scan_never_tries_a_job_bigger_than_the_free_gpus() -> None:
    nodes = CountingNodes(8, 8)
    nodes.place(6)
    nodes.tried.clear()
    queue = BestEffortFifo()
    for job, gpus in enumerate([4, 1, 2, 1, 1]):
        queue.push(job, job, gpus)
    assert [job for job, _ in queue.admit(nodes)] == [1, 3]  # the same jobs as trying them all
    # 4 is above the 2 free GPUs, 2 above the 1 left after job 1, 1 above none after job 3:
    # only the two jobs admitted were tried (each failed try used to cost a full candidate scan).
    assert nodes.tried == [1, 1]


def test_the_queued_jobs_view_follows_the_queue() -> None:
    nodes = GpuNodes(8, 8)
    queue = BestEffortFifo()
    jobs = queue.jobs
    for job in range(3):
        queue.push(job, job, 4)
    assert {0, 1, 5} & jobs == {0, 1}
    queue.remove(1)
    assert [job for job, _ in queue.admit(nodes)] == [0, 2]
    assert set(jobs) == set()
    queue.push(3, 3, 1)
    assert {2, 3} & jobs == {3}
