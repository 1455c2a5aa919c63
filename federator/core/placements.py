"""One decision round: every pending job gets stay, burst or hold, accounting for the others.

`decide` is the one entry point the daemon and the simulator share. It replays on-prem
admission from `now` (`onprem.OnPremReplay`, one per quota pool) and decides each job at the
moment the replay says it would start, in that order: a job that stays takes its GPUs for its
runtime, so every later job sees a longer wait; a job that bursts takes pool GPUs, budget and
cap room from the round's ledger, so no later job can take them twice. Same inputs, same
round: offers are sorted by (price per speed, name), jobs by admission order and key.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import cast

from federator.core.choices import RoundOptions
from federator.core.decisions import Decision, DecisionKind, Round
from federator.core.models import Offer, OnPremState, PendingJob, Spend
from federator.core.onprem import admission_positions, replay_from_now
from federator.core.policy import AtCap, DecisionPolicy
from federator.core.strategies import STRATEGIES, stay_while_clouds_full

__all__ = ["Decision", "DecisionKind", "Round", "decide"]

_BURST = DecisionKind.BURST


def decide(
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
    """Decide every pending job; decisions come back in the order the jobs were given.

    `only`: the keys of the jobs whose decisions the caller wants (None: all). The others
    still take their place in the round, but a job that may not burst at all (`burst_allowed`
    false: every strategy leaves it in the queue) is then only replayed, not priced, and the
    round ends once every job asked about is decided (a decision never changes after it is
    made). The simulator passes the queue ahead of the jobs it asks about this way.

    `plain_stays_when_full`: once no job can burst anywhere (`RoundLedger.exhausted`: the caps on
    all clouds together are reached or no pool has a free GPU) and the policy's `at_cap` is
    `stay`, every later job gets `stay_while_clouds_full`: the stay at its replayed wait that any
    strategy would decide then, without pricing pools that cannot take it. Only its reason and
    breakdown are plainer (the full decision names the pool a cap blocks), so the simulator,
    which reads kinds, waits and pools, asks for it; the daemon does not (its users read them).
    """
    choose = STRATEGIES[policy.strategy]
    options = RoundOptions(offers, spend, policy, now)
    positions = admission_positions(jobs, onprem)
    ordered = [jobs[position] for position in positions]
    options.follow(ordered)
    replay = replay_from_now(ordered, onprem, now=now, backfill=policy.onprem_backfill)
    stays = replay.stays
    tracked = options.tracks_decided
    counts_behind = policy.prices_queue_behind  # else `options.jobs_behind` stays 0
    options.onprem_gpus = onprem.total_gpus
    behind_unpassed = onprem.queued_behind
    decided: list[Decision | None] = [None] * len(ordered)
    unanswered = len(ordered) if only is None else sum(job.key in only for job in ordered)
    # The jobs not asked about that may be replayed without a decision. None with Starburst's
    # queue cap: which jobs it trims depends on which were decided when it is first asked.
    skippable = None if tracked else only
    ledger = options.ledger
    cheap_when_full = plain_stays_when_full and policy.budgets.at_cap is AtCap.STAY
    for index, job, start in replay.starts() if unanswered else ():
        if skippable is not None and not job.burst_allowed and job.key not in skippable:
            stays(job, start)
        else:
            if counts_behind:
                options.jobs_behind = len(replay) + behind_unpassed
            if cheap_when_full and ledger.exhausted():
                decision = stay_while_clouds_full(job, start - now, options)
            else:
                decision = choose(job, start - now, options)
            if decision.kind is not _BURST:
                stays(job, start)
            decided[index] = decision
            if only is None or job.key in only:
                unanswered -= 1
                if not unanswered:
                    break
        if tracked:
            options.decided(job)
    given: list[Decision | None] = [None] * len(ordered)
    for index, position in enumerate(positions):
        given[position] = decided[index]
    if only is None:  # every job was decided: no filter to run over 10,000 of them
        return Round(decisions=tuple(cast(list[Decision], given)), now=now)
    wanted = tuple(
        decision for decision in given if decision is not None and decision.job_key in only
    )
    return Round(decisions=wanted, now=now)
