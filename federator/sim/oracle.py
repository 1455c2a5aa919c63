"""The clairvoyant reference: bursting decided in hindsight, with every future known.

**It is a heuristic, not a lower bound.** Choosing which jobs to burst so as to minimise cloud
cost plus the value of waiting is a combinatorial scheduling problem; no exact solver runs on
21,000 jobs here. What the oracle does know that no real policy can: every job's true run time,
every future arrival, and what each cloud pool will really do to each job (its preemptions and
rework, its price over the run), because it replays the simulation itself.

The search (iterated hindsight):
1. Price each job's best cloud option from its realised cloud run (cost, and the delay that
   startup and rework add), for every pool; keep the best by cost + value of that delay.
2. Simulate with a plan (first: burst nothing) and read every job's real on-prem wait. For a
   job the plan bursts, the wait it would have had is read from the nearest job of the same
   size submitted at or after it that stayed.
3. The next plan bursts, at submission, every job whose waiting is worth more than its cloud
   option: value x (wait - cloud delay) > cloud cost.
4. Repeat a few times; keep the plan whose simulated objective (cloud cost + value of every
   job's completion time) is lowest.
The value of waiting is the same DecisionPolicy figure the `federator` strategy uses, so the
two curves are drawn over the same knob.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from federator.core.policy import DecisionPolicy
from federator.sim.cloud import CloudPool, run_in_cloud
from federator.sim.engine import Order, RunResult, Scenario, Simulation, World
from federator.sim.traces import TraceJob

ITERATIONS = 4
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
        return [Order(job, pool=self.plan.get(job)) for job in due]


class OracleController:
    """Plans its bursts in hindsight in `prepare`, then plays them."""

    name = "oracle"

    def __init__(self, policy: DecisionPolicy, *, knob: float | None, knob_name: str) -> None:
        self.policy = policy
        self.knob = knob
        self.knob_name = knob_name
        self._plan: dict[int, CloudPool] = {}
        self.iterations: list[tuple[int, float]] = []  # (planned bursts, objective)

    def prepare(self, world: World) -> None:
        self._plan = plan_in_hindsight(world.trace, world.scenario, self.policy, self.iterations)

    def decide(self, world: World, now: float, due: Sequence[int]) -> list[Order]:
        return [Order(job, pool=self._plan.get(job)) for job in due]


def plan_in_hindsight(
    trace: Sequence[TraceJob],
    scenario: Scenario,
    policy: DecisionPolicy,
    log: list[tuple[int, float]] | None = None,
) -> dict[int, CloudPool]:
    values = np.array([_value_per_hour(job, policy) for job in trace])
    options = [
        _best_cloud_option(job, scenario, value) for job, value in zip(trace, values, strict=True)
    ]
    plan: dict[int, CloudPool] = {}
    best_plan, best_objective = plan, math.inf
    for _ in range(ITERATIONS):
        result = Simulation(trace, scenario, PlannedBursts("oracle-search", plan)).run()
        objective = _objective(result, values)
        if log is not None:
            log.append((len(plan), objective))
        if objective < best_objective:
            best_plan, best_objective = plan, objective
        waits = _would_be_waits(result)
        plan = {
            job: option.pool
            for job, option in enumerate(options)
            if option is not None
            and values[job] * (waits[job] - option.delay_s) / HOUR > option.cost_usd
        }
        if plan == best_plan:
            break
    return best_plan


def _value_per_hour(job: TraceJob, policy: DecisionPolicy) -> float:
    return policy.value_of_time_usd_per_hour(gpus=job.gpus, queue=job.queue, priority=0)


def _best_cloud_option(job: TraceJob, scenario: Scenario, value: float) -> CloudOption | None:
    best: CloudOption | None = None
    for pool in scenario.pools:
        if job.gpus > pool.max_gpus:
            continue
        rng = random.Random(f"{scenario.seed}:cloud:{job.job_id}:{pool.name}")
        run = run_in_cloud(
            pool,
            job.gpus,
            job.duration_s,
            job.submit_s,
            scenario.physics,
            scenario.dataset_bytes_per_job,
            rng,
        )
        option = CloudOption(pool, run.cost_usd, run.end_s - job.submit_s - job.duration_s)
        score = option.cost_usd + value * option.delay_s / HOUR
        if best is None or score < best.cost_usd + value * best.delay_s / HOUR:
            best = option
    return best


def _objective(result: RunResult, values: np.ndarray) -> float:
    outcomes = result.outcomes
    jct_h = (outcomes.end_s - outcomes.submit_s) / HOUR
    return float(outcomes.cost_usd.sum() + (values * jct_h).sum())


def _would_be_waits(result: RunResult) -> np.ndarray:
    """Each job's on-prem wait; for bursted jobs, that of the next same-size job that stayed."""
    outcomes = result.outcomes
    waits = outcomes.start_s - outcomes.submit_s
    stayed = ~outcomes.bursted
    estimate = np.where(stayed, waits, 0.0)
    for size in np.unique(outcomes.gpus):
        same = outcomes.gpus == size
        stayed_here = np.flatnonzero(same & stayed)  # submission order = index order
        bursted_here = np.flatnonzero(same & ~stayed)
        after = np.searchsorted(outcomes.submit_s[stayed_here], outcomes.submit_s[bursted_here])
        found = after < len(stayed_here)
        estimate[bursted_here[found]] = waits[stayed_here[after[found]]]
    return estimate
