"""Pure: the views of a decision round that the loop builds around the cost model.

The cost model (`federator.core.placements.decide`) sees offers and a spend and answers with a
`Round`. The loop asks it twice a pass (queued jobs, then plain suspended Jobs), gives it the
GPUs each pool still has once the live placements are counted (`gpus_by_pool`), and explains
its decisions where the model could not (a gate decided, a pool was blocked). Each of those
views is a function of values, here; the loop's collaborators (`deciding`, `moves`) call them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace

from federator.core.decisions import Decision, DecisionKind, Round
from federator.core.models import Offer, Spend
from federator.federation import planning
from federator.federation.blocks import Pool, PoolBlock
from federator.federation.ports import CloudView, OnPremView
from federator.federation.records import Phase


@dataclass(frozen=True, slots=True)
class Usage:
    total: dict[tuple[str, str], int]  # GPUs of every live placement, per pool
    unscheduled: dict[tuple[str, str], int]  # of which not yet running (invisible in node usage)


def gpus_by_pool(onprem: OnPremView, clouds: Mapping[str, CloudView]) -> Usage:
    index = planning.copies_by_source(clouds)
    total: dict[tuple[str, str], int] = {}
    unscheduled: dict[tuple[str, str], int] = {}
    for job in onprem.jobs:
        record = job.record
        if record is None or record.phase not in (Phase.PLACING, Phase.PLACED):
            continue
        key = (record.cluster, record.pool)
        total[key] = total.get(key, 0) + record.gpus
        copy = index.get((record.cluster, job.uid, record.attempt))
        if copy is None or not copy.state.started:
            unscheduled[key] = unscheduled.get(key, 0) + record.gpus
    return Usage(total, unscheduled)


def after(round_: Round, offers: Sequence[Offer], spend: Spend) -> tuple[list[Offer], Spend]:
    """Offers and spend as they stand once `round_`'s bursts are placed (for a second round)."""
    taken: dict[tuple[str, str], int] = {}
    cost = 0.0
    jobs = dict(spend.cluster_bursted_jobs)
    gpus = dict(spend.cluster_bursted_gpus)
    for decision in round_.bursts:
        if decision.cluster is None or decision.pool is None:
            continue
        key = (decision.cluster, decision.pool)
        taken[key] = taken.get(key, 0) + decision.gpus
        cost += decision.expected_cost_usd
        jobs[decision.cluster] = jobs.get(decision.cluster, 0) + 1
        gpus[decision.cluster] = gpus.get(decision.cluster, 0) + decision.gpus
    left = [
        replace(o, free_gpus=max(0, o.free_gpus - taken.get((o.cluster, o.pool), 0)))
        for o in offers
    ]
    after = replace(
        spend,
        today_usd=spend.today_usd + cost,
        bursted_jobs=spend.bursted_jobs + len(round_.bursts),
        bursted_gpus=spend.bursted_gpus + sum(d.gpus for d in round_.bursts),
        cluster_bursted_jobs=jobs,
        cluster_bursted_gpus=gpus,
    )
    return left, after


def blocks_explained(
    round_: Round, blocked: Mapping[Pool, tuple[PoolBlock, int]], may_burst: AbstractSet[str]
) -> Round:
    """The round with each stay told which blocked pools had room for the job (see
    `closed_explained`)."""
    notes = {pool: (block.explained(pool), free) for pool, (block, free) in blocked.items()}
    return closed_explained(round_, notes, may_burst)


def closed_explained(
    round_: Round, closed: Mapping[Pool, tuple[str, int]], may_burst: AbstractSet[str]
) -> Round:
    """The round with each decision that does not burst told which closed pools (pool -> its
    note, the GPUs it would have had) had room for the job: the model saw them with 0 free
    GPUs, and its reason ("no cloud pool fits 8 GPUs") would not say why. Only jobs in
    `may_burst` (keys): a job that opted out, or a round a gate kept on-prem, stayed for its
    own reason, whatever the pools had."""
    if not closed:
        return round_
    decisions = []
    for decision in round_.decisions:
        why = [note for _, (note, free) in sorted(closed.items()) if free >= decision.gpus]
        if decision.job_key in may_burst and decision.kind is not DecisionKind.BURST and why:
            decision = decision._replace(reason=f"{decision.reason}; {'; '.join(why)}")
        decisions.append(decision)
    return replace(round_, decisions=tuple(decisions))


def explained(round_: Round, reason: str) -> Round:
    """The round with every decision's reason replaced (when a gate, not the model, decided)."""
    if not reason:
        return round_
    return replace(round_, decisions=tuple(d._replace(reason=reason) for d in round_.decisions))


def explained_per_job(round_: Round, why: Mapping[str, str]) -> Round:
    """The round with the reason of each job in `why` (by key) that does not burst replaced by
    its own (when the loop, not the model, knows why the job may not burst)."""
    if not why:
        return round_
    decisions = tuple(
        d._replace(reason=why[d.job_key])
        if d.job_key in why and d.kind is not DecisionKind.BURST
        else d
        for d in round_.decisions
    )
    return replace(round_, decisions=decisions)


def waits_for_data(decision: Decision) -> bool:
    """A hold for a pool until the job's data is copied there. Such a hold comes with the
    time the copy takes (`revisit_at`); one at a budget or a cap has none, and copying data
    for a burst the budget does not allow yet would spend on transfers for nothing."""
    return (
        decision.kind is DecisionKind.HOLD
        and decision.cluster is not None
        and decision.revisit_at is not None
    )


def finite_or_zero(value: float) -> float:
    return value if math.isfinite(value) else 0.0


def price(decision: Decision, gpus: int) -> float:
    """Price per GPU-hour of a burst decision, from its priced terms when the model gave them."""
    for name in ("cloud_price_usd_per_gpu_hour", "price_per_gpu_hour_usd"):
        if name in decision.terms:
            return float(decision.terms[name])
    hours = decision.expected_completion_s / 3600.0 if decision.expected_completion_s else 0.0
    if hours > 0 and gpus > 0 and decision.expected_completion_s != float("inf"):
        return decision.expected_cost_usd / (hours * gpus)
    return 0.0
