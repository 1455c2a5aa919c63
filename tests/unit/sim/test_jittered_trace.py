"""`traces.jittered`: the perturbed replays of simulate --replays and the bench's --jitter."""

from __future__ import annotations

from dataclasses import replace

import pytest

from federator.core.policy import DecisionPolicy, Strategy
from federator.sim.engine import Simulation
from federator.sim.policies import CoreController
from federator.sim.traces import TraceJob, jittered
from federator.sim.world import World

from .helpers import tiny_scenario

JOBS = tuple(
    TraceJob(
        job_id=str(i),
        submit_s=float(10 * (i // 4)),  # four jobs to a second, as in a busy trace
        gpus=1 + i % 3,
        duration_s=60.0 + i,
        deadline_s=None if i % 2 else 10.0 * (i // 4) + 0.5,  # half a second of slack
    )
    for i in range(200)
)


def by_id(jobs: tuple[TraceJob, ...]) -> dict[str, TraceJob]:
    return {job.job_id: job for job in jobs}


def test_the_same_seed_gives_the_same_replay() -> None:
    assert jittered(JOBS, seed=3) == jittered(JOBS, seed=3)


def test_another_seed_gives_another_replay() -> None:
    assert jittered(JOBS, seed=3) != jittered(JOBS, seed=4)


def test_the_replay_is_in_submission_order_and_reorders_jobs_of_the_same_second() -> None:
    moved = jittered(JOBS, seed=5)
    times = [job.submit_s for job in moved]
    assert times == sorted(times)
    assert [job.job_id for job in moved] != [job.job_id for job in JOBS]
    assert sorted(job.job_id for job in moved) == sorted(job.job_id for job in JOBS)


def test_each_job_is_only_delayed_and_by_less_than_the_spread() -> None:
    for spread in (1.0, 30.0):
        moved = by_id(jittered(JOBS, seed=7, spread_s=spread))
        delays = [moved[job.job_id].submit_s - job.submit_s for job in JOBS]
        assert all(0.0 <= delay < spread for delay in delays)
        assert max(delays) > spread / 2  # 200 draws: really spread, not a constant shift


def test_nothing_but_the_submit_time_changes() -> None:
    moved = by_id(jittered(JOBS, seed=1))
    for job in JOBS:
        assert replace(moved[job.job_id], submit_s=0.0, deadline_s=None) == replace(
            job, submit_s=0.0, deadline_s=None
        )


def test_a_deadline_moves_with_its_job_so_no_job_arrives_after_it() -> None:
    moved = by_id(jittered(JOBS, seed=2))
    for job in JOBS:
        after = moved[job.job_id]
        if job.deadline_s is None:
            assert after.deadline_s is None
        else:
            assert after.deadline_s is not None
            slack_after = after.deadline_s - after.submit_s
            assert slack_after == pytest.approx(job.deadline_s - job.submit_s)


def test_jobs_that_fit_never_wait_in_any_replay() -> None:
    """Two 1-GPU jobs of the same second on an empty 8-GPU node start as they arrive, whatever
    order the jitter gives them (a replay out of order made the later-drawn one wait)."""
    trace = (TraceJob("a", 0.0, 1, 3600.0), TraceJob("b", 0.0, 1, 3600.0))
    never = DecisionPolicy(strategy=Strategy.NEVER)
    for seed in range(10):
        result = Simulation(
            jittered(trace, seed), tiny_scenario(), CoreController("never", never)
        ).run()
        assert result.summary.mean_wait_s == 0.0


def test_the_simulator_refuses_a_trace_out_of_submission_order() -> None:
    trace = (TraceJob("late", 5.0, 1, 60.0), TraceJob("early", 1.0, 1, 60.0))
    with pytest.raises(ValueError, match="out of submission order: job 'early'"):
        World(trace, tiny_scenario())
