"""One decision round: every pending job gets stay, burst or hold, accounting for the others.

`decide` is the one entry point the daemon and the simulator share. It replays on-prem
admission from `now` (`onprem.OnPremReplay`) and decides each job at the moment the replay
says it would start, in that order: a job that stays takes its GPUs for its runtime, so every
later job sees a longer wait; a job that bursts takes pool GPUs, budget and cap room from the
round's ledger, so no later job can take them twice. Same inputs, same round: offers are
sorted by (price per speed, name), jobs by admission order and key.
"""

from __future__ import annotations

from collections.abc import Sequence

from federator.core.choices import RoundOptions
from federator.core.decisions import Decision, DecisionKind, Round
from federator.core.models import Offer, OnPremState, PendingJob, Spend
from federator.core.onprem import OnPremReplay, admission_order
from federator.core.policy import DecisionPolicy
from federator.core.strategies import STRATEGIES

__all__ = ["Decision", "DecisionKind", "Round", "decide"]


def decide(
    jobs: Sequence[PendingJob],
    onprem: OnPremState,
    offers: Sequence[Offer],
    spend: Spend,
    policy: DecisionPolicy,
    now: float,
) -> Round:
    """Decide every pending job; decisions come back in the order the jobs were given."""
    choose = STRATEGIES[policy.strategy]
    options = RoundOptions(offers, spend, policy, now)
    ordered = admission_order(jobs, onprem)
    options.follow(ordered)
    replay = OnPremReplay(ordered, onprem, now=now, backfill=policy.onprem_backfill)
    decided: dict[int, Decision] = {}
    while (step := replay.next_start()) is not None:
        job, start = step
        decision = choose(job, start - now, options)
        if decision.kind is not DecisionKind.BURST:
            replay.stays(job, start)
        options.decided(job)
        decided[id(job)] = decision
    return Round(decisions=tuple(decided[id(job)] for job in jobs), now=now)
