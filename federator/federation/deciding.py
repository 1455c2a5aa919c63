"""Deciding: the cost model asked about a pass's waiting jobs, on the offers as they stand.

The offers provider prices each cloud pool; before the cost model sees them they are limited
to what each cluster says is free and what the live placements leave (`rounds.gpus_by_pool`),
rated with this process's preemption evidence, zeroed where a pool is blocked or its cluster
is draining (`clusters[].draining`: no new placement there), and told what
is known of each dataset's replica there. Each job's datasets without a size get the policy's
`size_hint`, and the policy is "never burst" while fewer GPUs wait than `min_pending_gpus`.
Queued jobs are decided first; plain suspended Jobs then, on what the first round left.

The federation loop creates one `Decider` and hands it the pass's candidates: which jobs
those are (waiting, or requeued and allowed another placement) is the loop's to say.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import replace

from federator.core.decisions import Round
from federator.core.models import DatasetNeed, Offer, OnPremState, PendingJob, Spend
from federator.core.policy import DecisionPolicy, Strategy
from federator.federation import rounds
from federator.federation.blocks import Pool
from federator.federation.pool_blocking import PoolBlocking
from federator.federation.ports import CloudView, DataSizes, OffersProvider, OnPremJob, OnPremView
from federator.federation.preemption_evidence import PreemptionEvidence

Decide = Callable[
    [Sequence[PendingJob], OnPremState, Sequence[Offer], Spend, DecisionPolicy, float], Round
]


class Decider:
    """One decision round: the offers prepared, the jobs sized, the cost model asked."""

    def __init__(
        self,
        *,
        offers: OffersProvider,
        decide: Decide | None,
        policy: Callable[[], DecisionPolicy],
        min_pending_gpus: Callable[[], int],
        sizes: DataSizes | None,
        size_hint: Callable[[str], int | None],
        pool_blocking: PoolBlocking,
        preemption_evidence: PreemptionEvidence,
        draining: Callable[[], frozenset[str]] = frozenset,
    ) -> None:
        self._offers_provider = offers
        self._decide = decide if decide is not None else _core_decide()
        self._policy = policy  # the federation's current policy (reloadable)
        self._min_pending_gpus = min_pending_gpus  # the settings' (reloadable)
        self._sizes = sizes
        # The policy's `datasets[].size_hint`: a dataset's size before the replicator listed it.
        self._size_hint = size_hint
        self._pool_blocking = pool_blocking
        self._preemption_evidence = preemption_evidence
        # The settings' `draining_clusters` (reloadable): their pools take no new job.
        self.draining: Callable[[], frozenset[str]] = draining

    async def decide(
        self,
        onprem: OnPremView,
        clouds: Mapping[str, CloudView],
        candidates: Sequence[OnPremJob],
        spend: Spend,
        now: float,
    ) -> Round:
        """The cost model's decisions for `candidates` (queued jobs first, then plain Jobs)."""
        datasets = frozenset(d.name for job in candidates for d in job.spec.datasets)
        available = await self._offers(onprem, clouds, now)
        blocked = self._pool_blocking.blocked_room(available, now)
        draining = _draining_room(available, self.draining())
        closed = blocked.keys() | draining.keys()  # these pools offer 0 GPUs this round
        offers = [
            self._with_data(
                o if (o.cluster, o.pool) not in closed else replace(o, free_gpus=0), datasets
            )
            for o in available
        ]
        queued = [self._sized(job.spec) for job in candidates if job.workload is not None]
        plain = [self._sized(job.spec) for job in candidates if job.workload is None]
        policy, gated = self._gate(candidates)
        # Whose stays a closed pool explains: not a job that opted out, nor a gated round.
        may_burst = set() if gated else {job.key for job in candidates if job.spec.burst_allowed}
        first = rounds.explained(
            self._decide(queued, onprem.state, offers, spend, policy, now), gated
        )
        first = rounds.blocks_explained(first, blocked, may_burst)
        first = _draining_explained(first, draining, may_burst)
        if not plain:
            return first  # the composition root logs and counts the decisions
        # A plain suspended Job has no on-prem queue: nothing but federator will ever start it,
        # so it is decided against an on-prem cluster with no room, after the queued jobs took
        # their share of the pools and of the budget.
        offers, spend = rounds.after(first, offers, spend)
        second = self._decide(plain, OnPremState(0, 0), offers, spend, policy, now)
        second = rounds.blocks_explained(rounds.explained(second, gated), blocked, may_burst)
        second = _draining_explained(second, draining, may_burst)
        return Round(decisions=first.decisions + second.decisions, now=now)

    async def _offers(
        self, onprem: OnPremView, clouds: Mapping[str, CloudView], now: float
    ) -> list[Offer]:
        """Priced offers, limited to what the clusters say is free and what we may still use."""
        used = rounds.gpus_by_pool(onprem, clouds)
        result: list[Offer] = []
        for offer in await self._offers_provider():
            view = clouds.get(offer.cluster)
            if view is None or not (view.up and view.synced):
                continue
            key = (offer.cluster, offer.pool)
            pool = view.pools.get(offer.pool)
            observed_free = (pool.free_gpus if pool else 0) - used.unscheduled.get(key, 0)
            cap_left = offer.free_gpus - used.total.get(key, 0)
            free = max(0, min(observed_free, cap_left))  # a blocked pool's is 0: `decide`
            result.append(self._preemption_evidence.rated(replace(offer, free_gpus=free)))
        return result

    def _with_data(self, offer: Offer, datasets: frozenset[str]) -> Offer:
        """The offer with what the sync layer knows about each dataset's replica there."""
        if self._sizes is None or not datasets:
            return offer
        pending = dict(offer.pending_dataset_bytes)
        replicated = set(offer.replicated_datasets)
        for name in datasets:
            remaining = self._sizes.bytes_remaining(name, offer.cluster)
            if remaining == 0:
                replicated.add(name)
            elif remaining is not None:
                pending[name] = remaining
        return replace(
            offer, pending_dataset_bytes=pending, replicated_datasets=frozenset(replicated)
        )

    def _sized(self, spec: PendingJob) -> PendingJob:
        """The job with each dataset its annotation gave no size (0) at the policy's
        `size_hint`. The cost model takes the replicator's figure for a replica it listed
        and the job's own otherwise: at 0 bytes, a dataset nobody listed yet looked free to
        copy, and a job that should wait for its data burst at once."""
        if all(need.size_bytes > 0 for need in spec.datasets):
            return spec
        needs = tuple(
            need if need.size_bytes > 0 else DatasetNeed(need.name, self._size_hint(need.name) or 0)
            for need in spec.datasets
        )
        return replace(spec, datasets=needs)

    def _gate(self, candidates: Sequence[OnPremJob]) -> tuple[DecisionPolicy, str]:
        """The policy, or "never burst" (and why) while fewer GPUs wait than the minimum."""
        pending, minimum = sum(job.gpus for job in candidates), self._min_pending_gpus()
        policy = self._policy()
        if pending >= minimum:
            return policy, ""
        why = f"stays on-prem: {pending} GPUs wait, bursting starts at {minimum} (min_pending_gpus)"
        return replace(policy, strategy=Strategy.NEVER), why


def _draining_room(offers: Sequence[Offer], draining: frozenset[str]) -> dict[Pool, int]:
    """The offered pools of draining clusters, with the GPUs each would offer otherwise."""
    return {(o.cluster, o.pool): o.free_gpus for o in offers if o.cluster in draining}


def _draining_explained(
    round_: Round, room: Mapping[Pool, int], may_burst: AbstractSet[str]
) -> Round:
    """The round with each stay told which draining pools had room for the job, as
    `rounds.blocks_explained` does for blocked pools."""
    notes = {
        (cluster, pool): (f"{cluster}/{pool} takes no new job: {cluster} is draining", free)
        for (cluster, pool), free in room.items()
    }
    return rounds.closed_explained(round_, notes, may_burst)


def _core_decide() -> Decide:
    from federator.core import placements

    return placements.decide
