"""A controller may leave out a job that freed cloud room woke: the job stays as it was before
the wake (waiting for room, with its revisit), and the oracle does so with planned bursts that
cannot take the room, so a cloud finish at a full cloud costs one answer, not one per held job."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest

from federator.core.models import PendingJob
from federator.core.policy import DecisionPolicy
from federator.sim.controllers import Order
from federator.sim.engine import Simulation
from federator.sim.oracle import CloudOption, PlannedBurst, PlannedBursts
from federator.sim.traces import TraceJob
from federator.sim.world import World

from .helpers import ScriptedController, on_demand_pool, tiny_scenario

# "a" fills the one on-prem node for 10 h; the pool takes one 8-GPU job at a time: "b" bursts at
# once (ends at 100 + 2000 s), "c" and "d" stay short of room until then; "d" then takes the
# room (ends at 2100 + 100 + 1000 s).
TRACE = (
    TraceJob("a", 0.0, 8, 36000.0),
    TraceJob("b", 0.0, 8, 2000.0),
    TraceJob("c", 0.0, 8, 600.0),
    TraceJob("d", 0.0, 8, 1000.0),
)
POOL = dataclasses.replace(on_demand_pool(startup_s=100.0), max_gpus=8)


class LeavesOutC(ScriptedController):
    """Bursts b at once and d when woken; leaves c out whenever freed room woke it, and bursts
    it at its own revisit (10,000 s). `too_early`: leaves c out at 0 s as well (not woken)."""

    def __init__(self, too_early: bool = False) -> None:
        self.too_early = too_early
        self.asked_about_c: list[tuple[float, bool]] = []  # (when, left out)

    def decide(self, world: World, now: float, due: Sequence[int]) -> list[Order]:
        orders = []
        for job in due:
            if job == 2 and now < 10_000.0:
                left_out = job in world.woken_by_room or self.too_early
                self.asked_about_c.append((now, left_out))
                if not left_out:
                    orders.append(Order(job, revisit_at=10_000.0))
            elif job in (1, 2) or job in world.woken_by_room:
                orders.append(Order(job, pool=POOL))
            else:
                orders.append(Order(job, revisit_at=10_000.0))
        return orders


@pytest.mark.parametrize("period_s", [0.0, 30.0])
def test_a_left_out_job_keeps_waiting_for_room_and_its_revisit(period_s: float) -> None:
    controller = LeavesOutC()
    result = Simulation(TRACE, tiny_scenario(POOL, period_s=period_s), controller).run()
    asked = controller.asked_about_c
    assert [left_out for _, left_out in asked] == [False, True, True]
    # Woken by b's end, left out; still short of room, so woken again by d's end.
    assert 2100.0 <= asked[1][0] <= 2100.0 + period_s
    assert 3200.0 <= asked[2][0] <= 3200.0 + period_s
    # Its own revisit stood: it bursts then.
    assert 10_100.0 <= float(result.outcomes.start_s[2]) <= 10_100.0 + period_s
    # Decided: b, c, d at 0; d at b's end; c at its revisit (left-out asks do not count).
    assert result.decided_jobs == 5


def test_only_a_job_freed_room_woke_may_be_left_out() -> None:
    with pytest.raises(AssertionError, match="left out a job freed room did not wake"):
        Simulation(TRACE, tiny_scenario(POOL), LeavesOutC(too_early=True)).run()


def test_the_oracle_leaves_out_a_woken_planned_burst_it_cannot_place_until_its_retry() -> None:
    world = World(TRACE, tiny_scenario(POOL))
    for job in range(len(TRACE)):
        world.estimate_at_submission(job)
    world.pool_used_gpus[POOL.name] = 8  # the pool is full: the planned burst is held back
    option = CloudOption(POOL, cost_usd=1.0, delay_s=100.0)
    player = PlannedBursts(
        "oracle",
        {2: PlannedBurst(option, 36_000.0)},
        DecisionPolicy(value_of_time_usd_per_gpu_hour=2.0),
    )
    first = player.decide(world, 0.0, [2])
    assert [(order.job, order.revisit_at) for order in first] == [(2, 60.0)]  # MIN_RETRY_S

    world.woken_by_room = {2}  # cloud room freed (elsewhere): woken before its retry
    assert player.decide(world, 30.0, [2]) == []  # left out: its retry at 60 s stands
    retried = player.decide(world, 60.0, [2])  # woken, and its retry has come: answered
    assert [(order.job, order.revisit_at) for order in retried] == [(2, 120.0)]

    world.pool_used_gpus[POOL.name] = 0  # room for it: it goes, woken or not
    assert [order.pool for order in player.decide(world, 90.0, [2])] == [POOL]


def test_once_the_round_is_full_the_oracle_leaves_out_woken_held_jobs_without_asking() -> None:
    world = World(TRACE, tiny_scenario(POOL))
    for job in range(len(TRACE)):
        world.estimate_at_submission(job)
    world.pool_used_gpus[POOL.name] = 8  # full: b, c and d are all held back
    option = CloudOption(POOL, cost_usd=1.0, delay_s=100.0)
    plan = {job: PlannedBurst(option, 36_000.0) for job in (1, 2, 3)}
    player = PlannedBursts("oracle", plan, DecisionPolicy(value_of_time_usd_per_gpu_hour=2.0))
    assert [order.pool for order in player.decide(world, 0.0, [1, 2, 3])] == [None] * 3

    world.pool_used_gpus[POOL.name] = 0  # room for one 8-GPU job frees and wakes all three
    world.woken_by_room = {1, 2, 3}
    asked: list[int] = []
    pending_job = world.pending_job

    def recording(job: int) -> PendingJob:
        asked.append(job)
        return pending_job(job)

    world.pending_job = recording  # type: ignore[method-assign]
    orders = player.decide(world, 30.0, [1, 2, 3])
    assert [(order.job, order.pool) for order in orders] == [(1, POOL)]  # c and d left out
    # The round was full once b took the room: c and d were not priced against its ledger.
    assert asked == [1]
