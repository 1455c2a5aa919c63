"""The on-prem replay: when each pending job would start, from the releases of running jobs."""

from __future__ import annotations

import math

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
