"""The queued jobs that wait for cloud room, and which of them a cloud finish wakes.

A job that stayed in a round while no cloud pool it may use had room for it waits for room:
the daemon asks every pass, so the simulation asks it again as soon as a cloud job finishes
and frees room in a pool it may use, not at its doubling revisit. Which pools a job may use
is the scenario's rule (`federator.sim.scenarios.pools_for_room`). The event loop
(`federator.sim.engine.Simulation`) creates one `RoomWaits` per run, tells it who stayed
short of room and which cloud job finished, and schedules the round for the jobs it wakes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from federator.sim.cloud import CloudPool
from federator.sim.scenarios import pools_for_room
from federator.sim.world import World


class RoomWaits:
    """Which queued jobs wait for cloud room, and when room (or a replayed trace) returns."""

    def __init__(self, world: World, policy: str) -> None:
        self.world = world
        trace, scenario = world.trace, world.scenario
        self._queued = world.queue.jobs  # live: membership and set operations in C
        # Queued jobs that stayed while no cloud pool had room for them: asked again as soon as
        # cloud room frees (the daemon asks every pass), not at their doubling revisit.
        self.jobs: set[int] = set()
        # Each job's (GPUs, GPU type, queue): what freed cloud room means to it (`returns`).
        self.shapes = [(spec.gpus, spec.gpu_type, spec.queue) for spec in trace]
        # Per job, the pools whose room matters to it (`pools_for_room`) and, when that is not
        # every pool, their names: a job short of room is woken only by room freed in one of
        # those (`wake`); None for the jobs any freed room may help.
        self._room_pools = pools_for_room(trace, scenario, policy)
        everywhere = len(scenario.pools)
        self._room_pool_names: list[frozenset[str] | None] = [
            None if len(pools) == everywhere else frozenset(pool.name for pool in pools)
            for pools in self._room_pools
        ]
        self._some_jobs_use_some_pools = any(names is not None for names in self._room_pool_names)

    def rooms_before_a_finish(self, now: float) -> Mapping[str, int] | None:
        """The room before a cloud finish, when some job short of room may use only some pools
        (so which pools the finish frees room in decides whether it is woken)."""
        if not self._some_jobs_use_some_pools or not self.jobs:
            return None
        return self.world.cloud_room_gpus(now)

    def pools_freed_by(
        self, pool: CloudPool, rooms_before: Mapping[str, int] | None, now: float
    ) -> frozenset[str]:
        """The pools a cloud finish in `pool` frees room in: its own, and any whose room a cap
        the finish was counted under (all clouds', its cluster's) now lets grow."""
        if rooms_before is None:
            return frozenset((pool.name,))
        rooms = self.world.cloud_room_gpus(now)
        grown = {name for name, room in rooms.items() if room > rooms_before[name]}
        return frozenset(grown | {pool.name})

    def wake(self, freed: frozenset[str]) -> set[int]:
        """The queued jobs short of room that may use a pool `freed` has room in again; the
        others keep waiting for room (and their timed retry)."""
        woken = self.jobs & self._queued
        still_short: set[int] = set()
        if self._some_jobs_use_some_pools:
            names = self._room_pool_names
            still_short = {
                job for job in woken if (mine := names[job]) is not None and mine.isdisjoint(freed)
            }
            woken -= still_short
        self.jobs.clear()
        self.jobs.update(still_short)
        return woken

    def returns(self, job: int, rooms: Mapping[str, int], now: float) -> float | None:
        """None when a pool the job may use has room for it; else when a replayed trace next
        lets one launch it (inf: not by itself). Jobs of one size, GPU type and queue get the
        same answer in a round (`Simulation._decision_round` keeps it: at a full cloud the
        whole queue asks)."""
        if self._lacks_room(job, rooms):
            return self._availability_returns(job, now)
        return None

    def _lacks_room(self, job: int, rooms: Mapping[str, int]) -> bool:
        """No pool the job may use has room for it now (so freed room, not time, changes it)."""
        spec = self.world.trace[job]
        if not self.world.scenario.may_burst(spec):
            return False
        return all(rooms[pool.name] < spec.gpus for pool in self._room_pools[job])

    def _availability_returns(self, job: int, now: float) -> float:
        """When a replayed availability trace next lets one of the job's pools launch it."""
        spec, returns = self.world.trace[job], math.inf
        if not self.world.replays_availability:
            return returns
        for pool in self._room_pools[job]:
            if pool.availability is None or pool.largest_launch_gpus < spec.gpus:
                continue
            nodes = math.ceil(spec.gpus / pool.gpus_per_node)
            returns = min(returns, pool.availability.next_available(now + 1e-9, nodes))
        return returns
