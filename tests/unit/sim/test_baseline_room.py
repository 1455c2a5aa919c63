"""A baseline's job waits for room only in the pools its policy bursts to: `always` and
`starburst` burst only on-demand, `greedy-spot` only spot, so room in a pool of the other kind
neither keeps such a job from waiting for room nor asks it again when it comes."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest

from federator.core.policy import DecisionPolicy, Strategy
from federator.sim.cloud import AvailabilityTrace, CloudPool
from federator.sim.controllers import Order
from federator.sim.engine import Simulation
from federator.sim.policies import CoreController
from federator.sim.results import RunResult
from federator.sim.traces import TraceJob
from federator.sim.world import World

from .helpers import on_demand_pool, spot_pool, tiny_scenario

ON_DEMAND = dataclasses.replace(on_demand_pool(startup_s=100.0), max_gpus=8)
SPOT = dataclasses.replace(spot_pool(startup_s=100.0), max_gpus=8)
C = 2

BASELINES = {
    "always": (DecisionPolicy(strategy=Strategy.ALWAYS), ON_DEMAND, SPOT),
    # A waiting budget of 0: the Compute-Wait timeout is the submission, so it bursts at once.
    "starburst": (
        DecisionPolicy(strategy=Strategy.STARBURST, starburst_waiting_budget=0.0),
        ON_DEMAND,
        SPOT,
    ),
    "greedy-spot": (DecisionPolicy(strategy=Strategy.GREEDY_SPOT), SPOT, ON_DEMAND),
}


class CountsAsksAboutC(CoreController):
    """The baseline itself, noting each time it is asked about job c."""

    def __init__(self, name: str) -> None:
        super().__init__(name, BASELINES[name][0])
        self.asked_about_c: list[float] = []

    def decide(self, world: World, now: float, due: Sequence[int]) -> list[Order]:
        if C in due:
            self.asked_about_c.append(now)
        return super().decide(world, now, due)


def run(
    name: str, trace: Sequence[TraceJob], *pools: CloudPool, period_s: float = 0.0
) -> tuple[list[float], RunResult]:
    controller = CountsAsksAboutC(name)
    result = Simulation(trace, tiny_scenario(*pools, period_s=period_s), controller).run()
    return controller.asked_about_c, result


@pytest.mark.parametrize("period_s", [0.0, 30.0])
@pytest.mark.parametrize("name", sorted(BASELINES))
def test_a_job_waits_for_room_in_its_policys_pools_while_the_other_kind_has_room(
    name: str, period_s: float
) -> None:
    # "a" fills the one on-prem node for 10 h; "b" bursts to the baseline's pool, full until
    # 2,100 s (startup 100 s); c stays, while the pool of the other kind has room all along.
    _, mine, other = BASELINES[name]
    trace = (
        TraceJob("a", 0.0, 8, 36_000.0),
        TraceJob("b", 0.0, 8, 2000.0),
        TraceJob("c", 0.0, 8, 600.0),
    )
    asked, result = run(name, trace, mine, other, period_s=period_s)
    out = result.outcomes
    assert float(out.end_s[1]) == pytest.approx(2100.0)
    assert int(out.pool[C]) == 0  # its policy's pool, never the other
    # Asked when b's room comes back (within a round), not only at its doubled revisit
    # (3,840 s): the room of the other kind did not count as room for it.
    woken = [at for at in asked if 2100.0 <= at <= 2100.0 + period_s]
    assert len(woken) == 1
    assert asked[-1] == woken[0]
    assert float(out.start_s[C]) == pytest.approx(woken[0] + 100.0)


@pytest.mark.parametrize("name", ["always", "starburst"])
def test_spot_instances_coming_back_do_not_ask_an_on_demand_baselines_job(name: str) -> None:
    # The on-demand pool is full until 20,100 s (b); the replayed spot pool has no instance
    # until 1,000 s, then one: an on-demand baseline cannot use it, so its return asks c nothing
    # (it was asked at 1,000 s: a wasted ask), and c is asked when b's room comes back.
    back = AvailabilityTrace(tick_s=100.0, alive=(0,) * 10 + (1,) * 990)
    replayed_spot = dataclasses.replace(SPOT, availability=back)
    trace = (
        TraceJob("a", 0.0, 8, 36_000.0),
        TraceJob("b", 0.0, 8, 20_000.0),
        TraceJob("c", 0.0, 8, 600.0),
    )
    asked, result = run(name, trace, ON_DEMAND, replayed_spot)
    assert float(result.outcomes.end_s[1]) == pytest.approx(20_100.0)
    assert 1000.0 not in asked
    assert asked[-1] == 20_100.0
    # Asked only at its doubling revisits (1 s on the 60-s grid, then as long again as it
    # waited) before b's room came back: 0, 60, 120, ..., 15,360 s.
    assert asked[:-1] == [0.0] + [60.0 * 2**i for i in range(9)]
    assert float(result.outcomes.start_s[C]) == pytest.approx(20_200.0)
