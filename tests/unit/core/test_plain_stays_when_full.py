"""`decide(plain_stays_when_full=True)`: once no job can burst anywhere in a round, the jobs
after that point get a plain stay instead of a priced one, and nothing the simulator reads
changes: which jobs burst, to which pool, and every kind, wait and completion."""

from __future__ import annotations

import random

import pytest

from federator.core.models import CapacityType, Offer, OnPremState, PendingJob, RunningJob, Spend
from federator.core.placements import Decision, DecisionKind, Round, decide
from federator.core.policy import AtCap, Budgets, Caps, DecisionPolicy, Strategy

H = 3600.0
NOW = 10 * H


def busy_cluster() -> OnPremState:
    running = tuple(RunningJob(f"r{i}", 8, (i + 1) * 900.0) for i in range(4))
    return OnPremState(total_gpus=32, free_gpus=0, running=running)


def offers(free_gpus: int) -> tuple[Offer, ...]:
    return (
        Offer("cloud-a", "spot", "A100", CapacityType.SPOT, 1.2, free_gpus, 0.1),
        Offer("cloud-a", "od", "A100", CapacityType.ON_DEMAND, 3.0, free_gpus),
        Offer("cloud-b", "od", "A100", CapacityType.ON_DEMAND, 2.5, free_gpus),
    )


def jobs(rng: random.Random, count: int) -> list[PendingJob]:
    return [
        PendingJob(
            key=f"team/job-{index:03d}",
            gpus=rng.choice([1, 1, 2, 4, 8]),
            submitted_at=NOW - rng.uniform(0, 6 * H),
            runtime_estimate_s=rng.uniform(600, 8 * H),
        )
        for index in range(count)
    ]


def policy(strategy: Strategy, jobs_cap: int, at_cap: AtCap = AtCap.STAY) -> DecisionPolicy:
    return DecisionPolicy(
        strategy=strategy,
        value_of_time_usd_per_gpu_hour=20.0,
        min_pending_before_burst_s=0.0,
        caps=Caps(max_bursted_jobs=jobs_cap),
        budgets=Budgets(at_cap=at_cap),
    )


def what_the_simulator_reads(round_: Round) -> list[tuple[object, ...]]:
    return [
        (d.job_key, d.kind, d.cluster, d.pool_name, d.expected_wait_s, d.expected_completion_s)
        for d in round_.decisions
    ]


def both(
    pending: list[PendingJob], spend: Spend, chosen: DecisionPolicy, free_gpus: int = 64
) -> tuple[Round, Round]:
    args = (pending, busy_cluster(), offers(free_gpus), spend, chosen, NOW)
    return decide(*args), decide(*args, plain_stays_when_full=True)


@pytest.mark.parametrize("strategy", list(Strategy))
@pytest.mark.parametrize("seed", range(6))
def test_kinds_pools_and_waits_are_those_of_the_full_round(strategy: Strategy, seed: int) -> None:
    rng = random.Random(seed)
    pending = jobs(rng, 40)
    cap = rng.choice([1, 3, 6])
    full, plain = both(pending, Spend(bursted_jobs=rng.randint(0, 2)), policy(strategy, cap))
    assert what_the_simulator_reads(plain) == what_the_simulator_reads(full)


def test_jobs_after_the_cap_fills_get_a_plain_stay_and_the_others_are_untouched() -> None:
    pending = jobs(random.Random(7), 40)
    full, plain = both(pending, Spend(), policy(Strategy.FEDERATOR, 2))
    bursts = [d for d in full.decisions if d.kind is DecisionKind.BURST]
    assert len(bursts) == 2  # the cap fills within the round
    plain_ones = [d for d in plain.decisions if "no cloud can take a job" in d.reason]
    assert plain_ones, "some jobs are decided after the cap is full"
    by_key = {d.job_key: d for d in full.decisions}
    for decision in plain.decisions:
        if decision not in plain_ones:
            assert _same(decision, by_key[decision.job_key])  # decided before it filled


def test_a_round_that_starts_full_prices_no_pool() -> None:
    pending = jobs(random.Random(3), 10)
    _, plain = both(pending, Spend(bursted_jobs=4), policy(Strategy.FEDERATOR, 4))
    waiting = [d for d in plain.decisions if d.expected_wait_s > 0]
    assert waiting
    assert all("no cloud can take a job" in d.reason for d in waiting)
    assert not [name for d in plain.decisions for name in d.terms if name.startswith("cloud_")]


def test_a_round_whose_pools_have_no_free_gpu_is_full_too() -> None:
    pending = jobs(random.Random(5), 10)
    full, plain = both(pending, Spend(), policy(Strategy.FEDERATOR, 100), free_gpus=0)
    assert what_the_simulator_reads(plain) == what_the_simulator_reads(full)
    assert any("no cloud can take a job" in d.reason for d in plain.decisions)


def test_with_at_cap_hold_every_job_is_priced_as_in_the_full_round() -> None:
    """A hold names the pool it waits for, so the plain stay would change its kind."""
    pending = jobs(random.Random(11), 30)
    chosen = policy(Strategy.FEDERATOR, 1, at_cap=AtCap.HOLD)
    full, plain = both(pending, Spend(), chosen)
    assert any(d.kind is DecisionKind.HOLD for d in full.decisions)
    assert [_fields(d) for d in plain.decisions] == [_fields(d) for d in full.decisions]


def _fields(decision: Decision) -> tuple[object, ...]:
    return (
        *what_the_simulator_reads(Round(decisions=(decision,), now=NOW))[0],
        decision.expected_cost_usd,
        dict(decision.terms),
        decision.reason,
        decision.revisit_at,
    )


def _same(one: Decision, other: Decision) -> bool:
    return _fields(one) == _fields(other)
