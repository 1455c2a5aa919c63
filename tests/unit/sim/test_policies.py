"""What the simulator tells the decision core about the on-prem cluster."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from federator.core import placements
from federator.core.decisions import Round
from federator.core.models import Offer, OnPremState, PendingJob, RunningJob, Spend
from federator.core.node_replay import knows_every_node
from federator.core.policy import DecisionPolicy, Strategy
from federator.sim.engine import Simulation
from federator.sim.policies import CoreController

from .helpers import tiny_scenario, tiny_trace


def test_the_core_is_told_which_node_holds_each_running_job() -> None:
    seen: list[OnPremState] = []

    def spy(
        jobs: Sequence[PendingJob],
        onprem: OnPremState,
        offers: Sequence[Offer],
        spend: Spend,
        policy: DecisionPolicy,
        now: float,
        *,
        only: Collection[str] | None = None,
        plain_stays_when_full: bool = False,
    ) -> Round:
        seen.append(onprem)
        return placements.decide(
            jobs,
            onprem,
            offers,
            spend,
            policy,
            now,
            only=only,
            plain_stays_when_full=plain_stays_when_full,
        )

    policy = DecisionPolicy(strategy=Strategy.FEDERATOR)
    controller = CoreController("federator", policy, decide=spy)
    Simulation(tiny_trace(), tiny_scenario(), controller).run()
    # j1 arrives at 100 s behind j0, which fills the one node until 3,600 s.
    assert seen[0].running == (RunningJob("running-0", 8, 3500.0, nodes=((0, 8),)),)
    assert seen[0].node_free_gpus == (0,)
    assert all(knows_every_node(onprem) for onprem in seen)
