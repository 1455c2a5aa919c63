"""The clairvoyant reference: bursting decided in hindsight, with every future known.

**It is a heuristic, not a lower bound.** Choosing which jobs to burst so as to minimise cloud
cost plus the value of waiting is a combinatorial scheduling problem; no exact solver runs on
21,000 jobs here. What the oracle knows that no real policy can: every job's true run time
and every future arrival, and, because it replays the simulation itself, each job's real
on-prem wait under its plan and whatever the world replays from files (a price history, an
availability trace). What it does not know is the luck of the spot market's random draws:
with a preemption *rate*, it prices a spot run by its mean over draws the simulation never
uses (`MARKET_DRAWS`). The issue's oracle "knows durations and future arrivals"; which spot
runs a random draw will preempt is knowledge no policy can act on, so the oracle does not
have it either (it did before d5f8610; docs/simulator.md has what that changed).

The search is a continuation in the value of waiting v (the same DecisionPolicy figure the
`federator` strategy uses, so both curves share a knob):
1. Each job's best cloud option is priced from its cloud run on every pool (cost, and the
   delay startup and rework add; a spot run with a preemption rate as the mean of
   `MARKET_DRAWS` runs); the best by cost + value of that delay is kept.
2. Starting from "burst nothing" at v/256, v doubles step by step (factor 2, last step = v).
   At each step the current plan is simulated and every job that stayed reads its real
   on-prem wait; the plan then also bursts, at submission, every job whose wait priced at the
   step's v is worth more than its cloud option: v x (wait - cloud delay) > cloud cost.
3. Plans only grow along the path, so small steps keep the overshoot of deciding many jobs on
   one simulation small; plans along the path are cached, so a sweep over v costs about one
   simulation per grid point. A job's options are priced only once it has waited longer than
   the quickest pool's startup (no option can shorten a shorter wait), and then kept.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from federator.core.models import CapacityType
from federator.core.policy import DecisionPolicy
from federator.sim.cloud import CloudPool, run_in_cloud
from federator.sim.engine import Order, Scenario, Simulation, World
from federator.sim.traces import TraceJob

_STEPS = 8  # the path starts at v / 2**8
MARKET_DRAWS = 4  # spot runs priced as the mean of this many draws (see the module docstring)
HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class CloudOption:
    pool: CloudPool
    cost_usd: float
    delay_s: float  # cloud completion - submission - run time: startup, rework, transfer


class PlannedBursts:
    """Bursts exactly the planned jobs as soon as they are due; leaves every other job alone."""

    knob: float | None = None

    def __init__(self, name: str, plan: dict[int, CloudPool]) -> None:
        self.name = name
        self.plan = plan

    def prepare(self, world: World) -> None:
        return None

    def decide(self, world: World, now: float, due: Sequence[int]) -> list[Order]:
        return play(self.plan, world, due)


class HindsightPlanner:
    """Plans for increasing values of waiting, cached along the continuation path."""

    def __init__(
        self,
        trace: Sequence[TraceJob],
        scenario: Scenario,
        policy_at: Callable[[float], DecisionPolicy],
    ) -> None:
        self.trace = trace
        self.scenario = scenario
        self.policy_at = policy_at
        self.simulations = 0
        self._path: list[tuple[float, dict[int, CloudPool]]] = []
        # Each job's cloud options, independent of v, priced the first time a job waited long
        # enough for one to pay (a spot option is a mean of MARKET_DRAWS runs).
        self._runs: list[list[CloudOption] | None] = [None] * len(trace)
        # No option adds less delay than the quickest pool's startup.
        self._least_delay_s = min((pool.startup_latency_s for pool in scenario.pools), default=0.0)

    def plan_for(self, value: float) -> dict[int, CloudPool]:
        for known, plan in self._path:
            if known == value:
                return plan
        start_value, plan = self._closest_below(value)
        step = max(start_value * 2, value / 2**_STEPS) if start_value > 0 else value / 2**_STEPS
        while True:
            step = min(step, value)
            plan = self._extend(plan, step)
            if step >= value:
                return plan
            step *= 2

    def _closest_below(self, value: float) -> tuple[float, dict[int, CloudPool]]:
        below = [(known, plan) for known, plan in self._path if known < value]
        if not below or max(below, key=lambda item: item[0])[0] < value / 2**_STEPS:
            return 0.0, {}
        return max(below, key=lambda item: item[0])

    def _extend(self, plan: dict[int, CloudPool], value: float) -> dict[int, CloudPool]:
        policy = self.policy_at(value)
        result = Simulation(self.trace, self.scenario, PlannedBursts("oracle-search", plan)).run()
        self.simulations += 1
        # Plain lists: reading 21,000 numpy scalars one by one costs more than converting once.
        waits = (result.outcomes.start_s - result.outcomes.submit_s).tolist()
        bursted = result.outcomes.bursted.tolist()
        values: dict[tuple[int, str], float] = {}  # a job's value depends on (gpus, queue) only
        grown = dict(plan)
        least_delay = self._least_delay_s
        for job, spec in enumerate(self.trace):
            if waits[job] <= least_delay or job in grown or bursted[job]:
                continue  # a wait no cloud option can shorten
            job_value = values.get((spec.gpus, spec.queue))
            if job_value is None:
                job_value = values[spec.gpus, spec.queue] = _value_per_hour(spec, policy)
            runs = self._runs[job]
            if runs is None:
                runs = self._runs[job] = _cloud_runs(spec, self.scenario)
            option = _best(runs, job_value)
            if option is None:
                continue
            if job_value * (waits[job] - option.delay_s) / HOUR > option.cost_usd:
                grown[job] = option.pool
        self._path.append((value, grown))
        self._path.sort(key=lambda item: item[0])
        return grown


class OracleController:
    """Plays the planner's bursts for one value of waiting."""

    name = "oracle"

    def __init__(self, planner: HindsightPlanner, *, knob: float, knob_name: str) -> None:
        self.planner = planner
        self.knob: float | None = knob
        self.knob_name = knob_name
        self._plan: dict[int, CloudPool] = {}

    def prepare(self, world: World) -> None:
        self._plan = self.planner.plan_for(self.knob or 0.0)

    def decide(self, world: World, now: float, due: Sequence[int]) -> list[Order]:
        return play(self._plan, world, due)


def play(plan: dict[int, CloudPool], world: World, due: Sequence[int]) -> list[Order]:
    """Burst the planned due jobs that still fit their pool's cap; the others stay."""
    used = dict(world.pool_used_gpus)
    orders = []
    for job in due:
        pool = plan.get(job)
        gpus = world.trace[job].gpus
        if pool is not None and used[pool.name] + gpus <= pool.max_gpus:
            used[pool.name] += gpus
            orders.append(Order(job, pool=pool))
        else:
            orders.append(Order(job))
    return orders


def _value_per_hour(job: TraceJob, policy: DecisionPolicy) -> float:
    return policy.value_of_time_usd_per_hour(gpus=job.gpus, queue=job.queue, priority=0)


def _cloud_runs(job: TraceJob, scenario: Scenario) -> list[CloudOption]:
    """The job's cloud run on every pool it fits, if it burst at submission: the real one where
    nothing is random, the mean over `MARKET_DRAWS` unused draws where preemptions are."""
    found = []
    for pool in scenario.pools:
        if job.gpus > pool.max_gpus:
            continue
        draws = MARKET_DRAWS if _random_preemptions(pool) else 1
        cost = delay = 0.0
        for draw in range(draws):
            # Not the simulation's own stream ("{seed}:cloud:{job}:{pool}", engine.py).
            rng = random.Random(f"{scenario.seed}:oracle-market:{draw}:{job.job_id}:{pool.name}")
            run = run_in_cloud(
                pool,
                job.gpus,
                job.duration_s,
                job.submit_s,
                scenario.physics,
                scenario.dataset_bytes_per_job,
                rng,
                scenario.output_bytes_per_job,
            )
            cost += run.cost_usd
            delay += run.end_s - job.submit_s - job.duration_s
        found.append(CloudOption(pool, cost / draws, delay / draws))
    return found


def _random_preemptions(pool: CloudPool) -> bool:
    """Whether a run on the pool depends on random preemption draws (spot with a rate, not a
    replayed availability trace)."""
    return (
        pool.capacity_type is CapacityType.SPOT
        and pool.availability is None
        and pool.preemption_rate_per_hour > 0
        and pool.max_restarts > 0
    )


def _best(options: list[CloudOption], value: float) -> CloudOption | None:
    """The option with the lowest cost + value of the delay it adds."""
    return min(
        options, key=lambda option: option.cost_usd + value * option.delay_s / HOUR, default=None
    )
