"""`traces.jittered`: the perturbed replays of scripts/bench/simulate.py --jitter."""

from __future__ import annotations

from dataclasses import replace

import pytest

from federator.sim.traces import TraceJob, jittered

JOBS = tuple(
    TraceJob(
        job_id=str(i),
        submit_s=float(10 * i),
        gpus=1 + i % 3,
        duration_s=60.0 + i,
        deadline_s=None if i % 2 else 10.0 * i + 0.5,  # half a second of slack for some
    )
    for i in range(200)
)


def test_the_same_seed_gives_the_same_replay() -> None:
    assert jittered(JOBS, seed=3) == jittered(JOBS, seed=3)


def test_another_seed_gives_another_replay() -> None:
    assert jittered(JOBS, seed=3) != jittered(JOBS, seed=4)


def test_each_job_is_only_delayed_and_by_less_than_the_spread() -> None:
    for spread in (1.0, 30.0):
        moved = jittered(JOBS, seed=7, spread_s=spread)
        pairs = zip(JOBS, moved, strict=True)
        delays = [after.submit_s - before.submit_s for before, after in pairs]
        assert all(0.0 <= delay < spread for delay in delays)
        assert max(delays) > spread / 2  # 200 draws: really spread, not a constant shift


def test_nothing_but_the_submit_time_changes() -> None:
    moved = jittered(JOBS, seed=1)
    assert [replace(job, submit_s=0.0, deadline_s=None) for job in moved] == [
        replace(job, submit_s=0.0, deadline_s=None) for job in JOBS
    ]


def test_a_deadline_moves_with_its_job_so_no_job_arrives_after_it() -> None:
    for before, after in zip(JOBS, jittered(JOBS, seed=2), strict=True):
        if before.deadline_s is None:
            assert after.deadline_s is None
        else:
            assert after.deadline_s is not None
            slack_after = after.deadline_s - after.submit_s
            assert slack_after == pytest.approx(before.deadline_s - before.submit_s)
