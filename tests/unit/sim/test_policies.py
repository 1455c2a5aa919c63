"""What the simulator tells the decision core about the on-prem cluster."""

from __future__ import annotations

from typing import Any

from federator.core import placements
from federator.core.decisions import Round
from federator.core.models import OnPremState, RunningJob
from federator.core.node_replay import knows_every_node
from federator.core.policy import DecisionPolicy, Strategy
from federator.sim.engine import Simulation
from federator.sim.policies import CoreController

from .helpers import tiny_scenario, tiny_trace


def test_the_core_is_told_which_node_holds_each_running_job() -> None:
    seen: list[OnPremState] = []

    def spy(*args: Any, **options: Any) -> Round:
        seen.append(args[1])  # decide(jobs, onprem, offers, spend, policy, now, ...)
        return placements.decide(*args, **options)

    policy = DecisionPolicy(strategy=Strategy.FEDERATOR)
    controller = CoreController("federator", policy, decide=spy)
    Simulation(tiny_trace(), tiny_scenario(), controller).run()
    # j1 arrives at 100 s behind j0, which fills the one node until 3,600 s.
    assert seen[0].running == (RunningJob("running-0", 8, 3500.0, nodes=((0, 8),)),)
    assert seen[0].node_free_gpus == (0,)
    assert all(knows_every_node(onprem) for onprem in seen)
