"""Driving federator's own decision core from the simulation, fast enough for big traces.

Every policy except the oracle is a `Strategy` of `federator.core.placements.decide`, the same
function the daemon calls. This module only shapes its inputs:

* **Which jobs.** `decide` prices every job it is given, so it is given only the jobs that
  matter: the jobs due for a decision (new arrivals that did not start, revisits that came)
  and, for the `federator` strategy, the queue ahead of them, because their expected wait is
  the replay of that queue. Baselines whose rule does not depend on the queue ahead (never,
  always, greedy-spot, starburst) get only the due jobs. The prefix is capped (`window`);
  a due job beyond it is decided with the part of the queue that fits and asked again later.
* **When again.** A job that stays is asked again at the decision's own `revisit_at` (e.g.
  Starburst's timeout) or, without one, after as long again as it has already waited
  (doubling), so a job is decided O(log wait) times, not once per event.
* **Running jobs.** The replay needs when GPUs come back, and to which nodes (it follows GPUs
  node by node, `core.node_replay`: a gang's wait is the wait for whole nodes to drain). Running
  jobs are sorted by expected end once per change of the running set; the `running_groups`
  soonest releases are passed as they are and the later ones merged into that many groups of
  neighbours (each giving its members' GPUs back to their own nodes at its median member's
  expected end), which bounds the cost of a round independently of the cluster size while
  keeping exact the releases that decide short waits.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from itertools import chain
from operator import itemgetter
from typing import Protocol

from federator.core import placements
from federator.core.decisions import DecisionKind, Round
from federator.core.models import (
    Offer,
    OnPremState,
    PendingJob,
    Placement,
    RunningJob,
    Spend,
    expected_remaining_s,
)
from federator.core.policy import DecisionPolicy, Strategy
from federator.sim.cloud import CloudPool
from federator.sim.controllers import Order
from federator.sim.world import World


class Decide(Protocol):
    """`federator.core.placements.decide`'s signature (tests and benchmarks wrap it)."""

    def __call__(
        self,
        jobs: Sequence[PendingJob],
        onprem: OnPremState,
        offers: Sequence[Offer],
        spend: Spend,
        policy: DecisionPolicy,
        now: float,
        *,
        only: Collection[str] | None = None,
        plain_stays_when_full: bool = False,
    ) -> Round: ...


_GPUS = itemgetter(2)
_JOB = itemgetter(3)
DEFAULT_WINDOW = 256
# Hint-less revisits share rounds on this grid. A minute: far below any cloud startup
# latency, so a stay whose expected wait was wrong is asked again before the error costs much
# (the daemon asks every pass). docs/benchmarks.md has the sweeps with a 10-minute grid.
REVISIT_GRID_S = 60.0
DEFAULT_RUNNING_GROUPS = 64


class CoreController:
    """A simulated policy that is a strategy of the decision core."""

    def __init__(
        self,
        name: str,
        policy: DecisionPolicy,
        *,
        knob: float | None = None,
        knob_name: str = "",
        decide: Decide = placements.decide,
        window: int = DEFAULT_WINDOW,
        running_groups: int = DEFAULT_RUNNING_GROUPS,
    ) -> None:
        self.name = name
        self.policy = policy
        self.knob = knob
        self.knob_name = knob_name
        self._decide = decide
        self._window = window
        self._running_groups = running_groups
        self._pools: dict[str, CloudPool] = {}
        self._job_index: dict[str, int] = {}
        self._context_jobs: dict[int, PendingJob] = {}
        self._running_entries: list[tuple[str, int, float, float, Placement]] = []
        self._running_version = -1
        self._offers = PoolOffers()

    def prepare(self, world: World) -> None:
        self._pools = {pool.name: pool for pool in world.scenario.pools}
        self._job_index = {job.job_id: index for index, job in enumerate(world.trace)}

    def decide(self, world: World, now: float, due: Sequence[int]) -> list[Order]:
        due_set = set(due)
        pending: list[PendingJob] = []
        asked: set[str] = set()
        context = self._context_jobs
        for job in self._jobs_to_decide(world, due):
            if job in due_set:
                decided = world.pending_job(job)
                asked.add(decided.key)
                pending.append(decided)
            else:
                pending.append(context.get(job) or self._context(world, job))
        needs_replay = self.policy.strategy is Strategy.FEDERATOR
        onprem = OnPremState(
            total_gpus=world.nodes.total_gpus,
            free_gpus=world.nodes.free_gpus,
            running=self._running(world, now) if needs_replay else (),
            queue_order=tuple(job.key for job in pending),
            node_free_gpus=tuple(world.nodes.free),
            gpus_per_node=world.scenario.gpus_per_node,
            queued_behind=self._queued_behind(world, due),
        )
        offers = tuple(self._offers.offer(pool, world, now) for pool in world.scenario.pools)
        result = self._decide(
            pending,
            onprem,
            offers,
            world.spend(now),
            self.policy,
            now,
            only=asked,
            plain_stays_when_full=True,
        )
        orders: list[Order] = []
        for decision in result.decisions:
            job = self._job_index[decision.job_key]
            if decision.kind is DecisionKind.BURST and decision.pool_name is not None:
                orders.append(Order(job, pool=self._pools[decision.pool_name]))
                continue
            revisit = _revisit(decision.revisit_at, world, job, now)
            # Only the federator strategy is given the running jobs, so only its waits are
            # forecasts of the start; a hold's wait is the cloud's, not the queue's.
            forecast = needs_replay and decision.kind is DecisionKind.STAY
            expected = now + decision.expected_wait_s if forecast else None
            orders.append(Order(job, revisit_at=revisit, expected_start=expected))
        return orders

    def _context(self, world: World, job: int) -> PendingJob:
        """A queued job that is not up for a decision this round: it only holds its place."""
        cached = self._context_jobs.get(job)
        if cached is None:
            cached = replace(world.pending_job(job), burst_allowed=False)
            self._context_jobs[job] = cached
        return cached

    def _queued_behind(self, world: World, due: Sequence[int]) -> int:
        """The queued jobs behind the last due one: not passed, but a stay delays them too."""
        if not self.policy.prices_queue_behind:
            return 0
        return world.queue.count_after(max(due))

    def _jobs_to_decide(self, world: World, due: Sequence[int]) -> list[int]:
        if self.policy.strategy is not Strategy.FEDERATOR:
            return list(due)
        ahead = world.queue.prefix(through=max(due), limit=self._window)
        included = set(ahead)
        return ahead + [job for job in due if job not in included]

    def _running(self, world: World, now: float) -> tuple[RunningJob, ...]:
        if self._running_version != world.running_version:
            self._running_entries = _group_running(
                world.running_by_end, world.placements, self._running_groups
            )
            self._running_version = world.running_version
        # Expected run time left, by the daemon's rule (`expected_remaining_s`).
        return tuple(
            RunningJob(key, gpus, expected_remaining_s(start, end, now), "", nodes)
            for key, gpus, end, start, nodes in self._running_entries
        )


RunningEntry = tuple[str, int, float, float, Placement]  # key, GPUs, expected end, start, nodes


def _group_running(
    entries: Sequence[tuple[float, float, int, int]],
    placements: Mapping[int, Placement],
    groups: int,
) -> list[RunningEntry]:
    """The `groups` soonest releases one by one, then groups of neighbours in expected-end
    order, at most `groups` of them, each giving back all its members' GPUs, to their own
    nodes, at its median member's expected end.

    The soonest releases are exact because they decide the waits that are minutes long, where
    a burst is won or lost against the cloud's startup latency. Far releases only shift long
    waits a little, and merging them bounds a round's cost on a big cluster.
    """
    if groups <= 0 or len(entries) <= 2 * groups:
        return _one_by_one(entries, placements)
    later = entries[groups:]
    size = math.ceil(len(later) / groups)
    merged = []
    for index in range(0, len(later), size):
        chunk = later[index : index + size]
        end, start, _, _ = chunk[len(chunk) // 2]
        gpus = sum(map(_GPUS, chunk))
        # The members' placements end to end (chain and map: this runs per running change).
        nodes = tuple(chain.from_iterable(map(placements.__getitem__, map(_JOB, chunk))))
        merged.append((f"running-group-{index}", gpus, end, start, nodes))
    return _one_by_one(entries[:groups], placements) + merged


def _one_by_one(
    entries: Sequence[tuple[float, float, int, int]], placements: Mapping[int, Placement]
) -> list[RunningEntry]:
    return [
        (f"running-{job}", gpus, end, start, placements[job]) for end, start, gpus, job in entries
    ]


def _revisit(hint: float | None, world: World, job: int, now: float) -> float:
    if hint is not None and hint > now:
        return hint
    waited = now - world.trace[job].submit_s
    at = now + max(world.scenario.decision_period_s, waited, 1.0)
    return math.ceil(at / REVISIT_GRID_S) * REVISIT_GRID_S


class PoolOffers:
    """`pool_offer` per pool, reused while the pool's room, risk and price stay the same: an
    offer reads nothing else, and is immutable, so a reused one is what a new one would be."""

    def __init__(self) -> None:
        self._offers: dict[str, tuple[tuple[int, float, float], Offer]] = {}

    def offer(self, pool: CloudPool, world: World, now: float) -> Offer:
        key = (*_room_and_rate(pool, world, now), pool.price_at(now))
        cached = self._offers.get(pool.name)
        if cached is not None and cached[0] == key:
            return cached[1]
        offer = pool_offer(pool, world, now)
        self._offers[pool.name] = (key, offer)
        return offer


def pool_offer(pool: CloudPool, world: World, now: float) -> Offer:
    """What the decision core is told about a pool now (never the future)."""
    free, rate = _room_and_rate(pool, world, now)
    return Offer(
        cluster=pool.cluster,
        pool=pool.pool,
        gpu_type=pool.gpu_type,
        capacity_type=pool.capacity_type,
        price_per_gpu_hour_usd=pool.price_at(now),
        free_gpus=free,
        preemption_rate_per_hour=rate,
        startup_latency_s=pool.startup_latency_s,
        region=pool.region,
        gpus_per_node=pool.gpus_per_node,
        egress_usd_per_gb=pool.egress_usd_per_gb,
        ingress_usd_per_gb=pool.ingress_usd_per_gb,
        transfer_bytes_per_s=pool.transfer_bytes_per_s,
        price_source="history" if pool.price_history is not None else "fixed",
    )


def _room_and_rate(pool: CloudPool, world: World, now: float) -> tuple[int, float]:
    """The GPUs a pool has free for a launch now, and its preemption rate per hour."""
    free = max(0, pool.max_gpus - world.pool_used_gpus[pool.name])
    rate = pool.preemption_rate_per_hour
    if pool.availability is not None:
        rate = pool.availability.preemptions_per_hour()
        # What the replayed trace can provision: never more than its most instances (a bigger
        # job would wait forever), nothing while none is alive (a launch would fail).
        free = min(free, pool.largest_launch_gpus)
        if pool.availability.next_available(now, 1) > now:
            free = 0
    return free, rate


def with_strategy(policy: DecisionPolicy, strategy: Strategy) -> DecisionPolicy:
    return replace(policy, strategy=strategy)
