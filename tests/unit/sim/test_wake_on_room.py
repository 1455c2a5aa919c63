"""`Order.wake_on_room`: a controller can tell the engine that freed cloud room cannot change
its answer about a job, so the job is not asked again each time a cloud job finishes."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import pytest

from federator.core.policy import DecisionPolicy
from federator.sim.controllers import Order
from federator.sim.engine import Simulation
from federator.sim.oracle import CloudOption, PlannedBurst, PlannedBursts
from federator.sim.traces import TraceJob
from federator.sim.world import World

from .helpers import ScriptedController, on_demand_pool, tiny_scenario

# "a" fills the one on-prem node for 10 h; the pool takes one 8-GPU job at a time, so "b"
# bursts at once and "c" stays short of room until b ends (startup 100 s + 2000 s = 2100 s).
TRACE = (
    TraceJob("a", 0.0, 8, 36000.0),
    TraceJob("b", 0.0, 8, 2000.0),
    TraceJob("c", 0.0, 8, 600.0),
)
POOL = dataclasses.replace(on_demand_pool(startup_s=100.0), max_gpus=8)


class BurstsBThenAsksC(ScriptedController):
    """Bursts b; leaves c in the queue until 10,000 s (its own revisit), then bursts it."""

    def __init__(self, wake_on_room: bool) -> None:
        self.wake_on_room = wake_on_room
        self.asked_about_c: list[float] = []

    def decide(self, world: World, now: float, due: Sequence[int]) -> list[Order]:
        orders = []
        for job in due:
            if job == 1:
                orders.append(Order(job, pool=POOL))
            elif job == 2 and now < 10_000.0:
                self.asked_about_c.append(now)
                orders.append(Order(job, revisit_at=10_000.0, wake_on_room=self.wake_on_room))
            else:
                orders.append(Order(job, pool=POOL))
        return orders


@pytest.mark.parametrize("period_s", [0.0, 30.0])
def test_a_job_that_freed_room_cannot_change_is_not_woken_by_it(period_s: float) -> None:
    controller = BurstsBThenAsksC(wake_on_room=False)
    result = Simulation(TRACE, tiny_scenario(POOL, period_s=period_s), controller).run()
    assert float(result.outcomes.end_s[1]) == pytest.approx(2100.0)
    assert controller.asked_about_c == [0.0]  # not again at 2100 s, only at its own revisit
    assert 10_100.0 <= float(result.outcomes.start_s[2]) <= 10_100.0 + period_s


@pytest.mark.parametrize("period_s", [0.0, 30.0])
def test_a_job_short_of_room_is_still_woken_by_default(period_s: float) -> None:
    controller = BurstsBThenAsksC(wake_on_room=True)
    Simulation(TRACE, tiny_scenario(POOL, period_s=period_s), controller).run()
    woken = controller.asked_about_c[1]
    assert controller.asked_about_c[0] == 0.0
    assert 2100.0 <= woken <= 2100.0 + period_s


def test_the_oracle_asks_not_to_be_woken_about_jobs_it_leaves_alone_for_good() -> None:
    scenario = tiny_scenario(POOL)
    world = World(TRACE, scenario)
    for job in range(len(TRACE)):
        world.estimate_at_submission(job)
    world.pool_used_gpus[POOL.name] = 8  # the pool is full: a planned burst is held back
    option = CloudOption(POOL, cost_usd=1.0, delay_s=100.0)
    # At $16/h (8 GPUs at $2), b pays until 36,000 - 100 - 225 s; c only until 500 - 325 s.
    plan = {1: PlannedBurst(option, 36_000.0), 2: PlannedBurst(option, 500.0)}
    player = PlannedBursts("oracle", plan, DecisionPolicy(value_of_time_usd_per_gpu_hour=2.0))

    first = {order.job: order for order in player.decide(world, 0.0, [0, 1, 2])}
    assert [first[job].pool for job in range(3)] == [None, None, None]
    assert not first[0].wake_on_room  # not in the plan: it never bursts
    assert first[1].wake_on_room  # held back: room may let them go
    assert first[2].wake_on_room

    later = {order.job: order for order in player.decide(world, 1000.0, [1, 2])}
    assert later[1].wake_on_room
    assert not later[2].wake_on_room  # no longer pays: it stays whatever room frees
    assert later[2].revisit_at is None
    assert math.isfinite(later[1].revisit_at or math.inf)


class AsksCLaterEachTime(ScriptedController):
    """Bursts b; the first three times c is asked, leaves it queued until `10 x now + 5,000 s`."""

    def __init__(self) -> None:
        self.asked_about_c: list[float] = []

    def decide(self, world: World, now: float, due: Sequence[int]) -> list[Order]:
        orders = []
        for job in due:
            if job == 2 and len(self.asked_about_c) < 3:
                self.asked_about_c.append(now)
                orders.append(Order(job, revisit_at=10 * now + 5000.0))
            else:
                orders.append(Order(job, pool=POOL))
        return orders


def test_a_revisit_moved_later_is_kept_by_one_heap_entry() -> None:
    # c is asked at 0 (revisit 5,000 s), woken by b's end at 2,100 s (revisit 26,000 s): the
    # entry at 5,000 s is pushed on to 26,000 s when it comes, not joined by a second one.
    simulation = Simulation(TRACE, tiny_scenario(POOL), controller := AsksCLaterEachTime())
    revisit = 1  # engine._REVISIT
    pushed: list[float] = []
    most_entries = 0
    push = simulation._push

    def counting_push(when: float, kind: int, job: int) -> None:
        nonlocal most_entries
        push(when, kind, job)
        if job == 2 and kind == revisit:
            pushed.append(when)
            entries = [entry for entry in simulation._heap if entry[1:4:2] == (revisit, 2)]
            most_entries = max(most_entries, len(entries))

    simulation._push = counting_push  # type: ignore[method-assign]
    result = simulation.run()
    assert controller.asked_about_c == [0.0, 2100.0, 26_000.0]
    assert pushed == [5000.0, 26_000.0, 265_000.0]
    assert most_entries == 1
    assert float(result.outcomes.start_s[2]) == pytest.approx(36_000.0)  # on-prem, after a
