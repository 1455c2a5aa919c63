"""The on-prem replay: when each pending job would start, from the releases of running jobs."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from federator.core.models import OnPremState, PendingJob, RunningJob
from federator.core.onprem import OnPremReplay, admission_order


def job(
    key: str, gpus: int, runtime: float, submitted: float = 0.0, priority: int = 0
) -> PendingJob:
    return PendingJob(
        key=key, gpus=gpus, submitted_at=submitted, runtime_estimate_s=runtime, priority=priority
    )


def starts(
    jobs: list[PendingJob],
    onprem: OnPremState,
    *,
    backfill: bool = True,
    leaving: set[str] = frozenset(),
) -> dict[str, float]:
    replay = OnPremReplay(admission_order(jobs, onprem), onprem, now=100.0, backfill=backfill)
    seen: dict[str, float] = {}
    while (step := replay.next_start()) is not None:
        pending, start = step
        seen[pending.key] = start - 100.0
        if pending.key not in leaving:
            replay.stays(pending, start)
    return seen


BUSY = OnPremState(
    total_gpus=16,
    free_gpus=2,
    running=(RunningJob("r1", 6, 1000.0), RunningJob("r2", 8, 3000.0)),
)


@pytest.mark.parametrize(
    ("jobs", "backfill", "want"),
    [
        pytest.param([job("a", 2, 50)], True, {"a": 0.0}, id="fits now"),
        pytest.param([job("a", 8, 50)], True, {"a": 1000.0}, id="waits for the first release"),
        pytest.param(
            [job("a", 8, 500), job("b", 8, 50)],
            True,
            {"a": 1000.0, "b": 1500.0},
            id="second takes the GPUs the first gives back",
        ),
        pytest.param(
            [job("big", 16, 50), job("small", 2, 50)],
            True,
            {"small": 0.0, "big": 3000.0},
            id="backfill lets a small job go first",
        ),
        pytest.param(
            [job("big", 16, 50), job("small", 2, 50)],
            False,
            {"big": 3000.0, "small": 3050.0},
            id="strict FIFO keeps the order",
        ),
        pytest.param([job("huge", 32, 50)], True, {"huge": math.inf}, id="never fits"),
    ],
)
def test_replay_start_times(jobs: list[PendingJob], backfill: bool, want: dict[str, float]) -> None:
    assert starts(jobs, BUSY, backfill=backfill) == want


def test_a_job_that_leaves_frees_its_place_for_the_next() -> None:
    jobs = [job("a", 8, 5000), job("b", 8, 50)]
    assert starts(jobs, BUSY)["b"] == 3000.0
    assert starts(jobs, BUSY, leaving={"a"})["b"] == 1000.0


def test_admission_order_follows_queue_order_then_priority_then_age() -> None:
    jobs = [
        job("late", 1, 1, submitted=50),
        job("early", 1, 1, submitted=10),
        job("urgent", 1, 1, submitted=99, priority=5),
        job("named", 1, 1, submitted=99),
    ]
    onprem = OnPremState(total_gpus=1, free_gpus=0, queue_order=("named",))
    got = [pending.key for pending in admission_order(jobs, onprem)]
    assert got == ["named", "urgent", "early", "late"]


def test_replay_yields_in_start_order() -> None:
    jobs = [job(f"j{i}", 1 + i % 3, 100.0 * (i % 5 + 1)) for i in range(30)]
    seen = list(starts(jobs, BUSY).values())
    assert seen == sorted(seen)


@pytest.mark.parametrize(
    ("nodes", "jobs", "want"),
    [
        pytest.param((4, 4), [job("eight", 8, 50)], {"eight": 1000.0}, id="8 free but split"),
        pytest.param((8, 0), [job("eight", 8, 50)], {"eight": 0.0}, id="one whole node"),
        pytest.param(
            (4, 4),
            [job("eight", 8, 50), job("four", 4, 50)],
            {"four": 0.0, "eight": 50.0},
            id="the split job waits, a smaller one backfills; later the pool view",
        ),
        pytest.param(
            (8, 8), [job("sixteen", 16, 50)], {"sixteen": 0.0}, id="big gang across nodes"
        ),
    ],
)
def test_at_now_gangs_must_fit_on_nodes(
    nodes: tuple[int, ...], jobs: list[PendingJob], want: dict[str, float]
) -> None:
    onprem = OnPremState(
        total_gpus=32,
        free_gpus=sum(nodes),
        running=(RunningJob("r", 32 - sum(nodes), 1000.0),),
        node_free_gpus=nodes,
    )
    assert starts(jobs, onprem) == want
    assert starts(jobs, onprem, backfill=False)[jobs[0].key] >= want[jobs[0].key]


def test_a_gang_in_smaller_pods_starts_now_though_a_gang_of_its_size_ahead_does_not_fit() -> None:
    # Node shapes at `now` rule out a shape, not a size: eight 1-GPU pods fit two half-free
    # nodes where one 8-GPU pod does not (before, b was sent to wait for a release too).
    onprem = OnPremState(
        total_gpus=24,
        free_gpus=8,
        running=(RunningJob("r", 16, 1000.0),),
        node_free_gpus=(4, 4, 0),
    )
    whole = replace(job("whole", 8, 50), gpus_per_pod=8)
    split = replace(job("split", 8, 50, submitted=1.0), gpus_per_pod=1)
    other = replace(job("other", 8, 50, submitted=2.0), gpus_per_pod=8)
    # split starts now; when it ends (t=50) the pool view takes over: whole, then other.
    assert starts([whole, split, other], onprem) == {"split": 0.0, "whole": 50.0, "other": 100.0}
    strict = starts([whole, split, other], onprem, backfill=False)
    assert strict["split"] > 0, "strict FIFO: nothing passes the job at the head"


@pytest.mark.parametrize("nodes", [(), (8, 8)])
def test_a_pod_bigger_than_a_node_never_starts_however_many_gpus_come_free(
    nodes: tuple[int, ...],
) -> None:
    onprem = OnPremState(
        total_gpus=16,
        free_gpus=sum(nodes),
        running=(RunningJob("r", 16 - sum(nodes), 600.0),) if sum(nodes) < 16 else (),
        node_free_gpus=nodes,
        gpus_per_node=8,
    )
    big = replace(job("big-pod", 16, 50), gpus_per_pod=16)
    after = job("after", 4, 50, submitted=1.0)
    seen = starts([big, after], onprem)
    assert seen == {"after": 0.0 if nodes else 600.0, "big-pod": math.inf}
    assert list(seen) == ["after", "big-pod"], "a job that never starts is decided last"
