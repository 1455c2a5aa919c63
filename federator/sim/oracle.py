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

It obeys the rules every other policy obeys, as the decision core applies them
(`federator.core.choices`): a job goes only to a pool of a GPU type it accepts, never when its
queue, its tenant or its data keep it on-prem (`PendingJob.burst_allowed` and the tenant and
residency rules), and never past a pool's free GPUs, a budget or a cap on bursted jobs or GPUs.

The search is a continuation in the value of waiting (the same DecisionPolicy figures the
`federator` strategy uses, so both curves share a knob). `policy_at(k)` is the run's decision
policy at knob k; only its value of time changes with k (a sweep's $ per job-hour, or a scale
on the policy file's own values, 1 = as written):
1. Each job's best cloud option is priced from its cloud run on every pool the rules let it
   use (cost, and the delay startup and rework add; a spot run with a preemption rate as the
   mean of `MARKET_DRAWS` runs); the best by cost + value of that delay is kept. Pools and
   budgets the job could not use even alone in the clouds are left out.
2. Starting from "burst nothing" at k/256, k doubles step by step (factor 2, last step = k).
   At each step the current plan is simulated and every job that stayed reads its real
   on-prem wait; the plan then also bursts, at submission, every job whose wait priced at the
   step's value of time is worth more than its cloud option: value x (wait - cloud delay) >
   cloud cost. A job that can never start on-prem (bigger than the cluster) is in every plan,
   at its best option, from the first step.
3. Plans only grow along the path, so small steps keep the overshoot of deciding many jobs on
   one simulation small; plans along the path are cached, so a sweep over v costs about one
   simulation per grid point. A job's options are priced only once it has waited longer than
   the quickest pool's startup and `burst.min_wait` (no option can shorten a shorter wait)
   and its wait, priced, is worth more than its GPU-hours at the lowest price any pool asks
   (no option costs less), and then kept. Like every policy, it bursts no job pending less
   than `burst.min_wait`.
4. A planned burst that a pool's free GPUs, a budget or a cap holds back when the job is due
   is tried again for as long as it would still pay, by the wait the plan's simulation showed
   (a job that cannot start on-prem: until it goes): when cloud room frees (the engine asks
   again about jobs that stayed for want of room) and after as long again as it has waited,
   as the other policies' revisits go (`MIN_RETRY_S` at least; budgets free up with time).
   When cloud room frees, the held planned bursts are asked in queue order, and those that
   still cannot go (the room is gone or too small for them, or a budget) are left out
   (`World.woken_by_room`): they keep their place, waiting for room, and their timed retry;
   only a timed retry that comes moves the next one later. (At a full cloud each finish
   wakes every held job for one freed slot; answering them all was most of the run's work.)
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from federator import errors
from federator.core.choices import RoundOptions
from federator.core.ledger import RoundLedger
from federator.core.models import CapacityType, PendingJob, Spend
from federator.core.policy import DecisionPolicy
from federator.sim.cloud import CloudPool, draws_at_random, run_in_cloud
from federator.sim.controllers import Order
from federator.sim.engine import Simulation
from federator.sim.fits import never_fit_on_prem
from federator.sim.policies import PoolOffers, pool_offer
from federator.sim.scenarios import Scenario
from federator.sim.traces import TraceJob
from federator.sim.world import World

_STEPS = 8  # the path starts at k / 2**8
MARKET_DRAWS = 4  # spot runs priced as the mean of this many draws (see the module docstring)
HOUR = 3600.0
# A held-back planned burst is tried again no sooner than this (nor than the decision period).
MIN_RETRY_S = 60.0


@dataclass(frozen=True, slots=True)
class CloudOption:
    pool: CloudPool
    cost_usd: float
    delay_s: float  # cloud completion - submission - run time: startup, rework, transfer


@dataclass(frozen=True, slots=True)
class PlannedBurst:
    """A job the plan bursts, where, and when it would start on-prem instead."""

    option: CloudOption
    # Its on-prem start in the simulation that planned it (inf: it can never start on-prem).
    onprem_start_s: float

    def pays_until_s(self, value_per_hour: float) -> float:
        """The last time a burst still beats that start, at this value of waiting (a job that
        can never start on-prem: always)."""
        if self.onprem_start_s == math.inf:
            return math.inf
        if value_per_hour <= 0:
            return -math.inf
        spare_s = self.onprem_start_s - self.option.delay_s
        return spare_s - self.option.cost_usd * HOUR / value_per_hour


Plan = dict[int, PlannedBurst]


class BurstRules:
    """The rules a burst must obey, as the decision core applies them to every policy.

    `pools_for` answers once per job which pools it could ever use (GPU type, burst rules,
    tenant, a pool's and the caps' size, budgets against the job alone); `BurstRound` answers
    in a round whether a planned burst fits what is left now.
    """

    def __init__(
        self, trace: Sequence[TraceJob], scenario: Scenario, policy: DecisionPolicy
    ) -> None:
        self.policy = policy
        self.scenario = scenario
        # A world no simulation runs in: it only builds each job as the core sees it
        # (`World.pending_job`), with whatever the engine derives from the scenario.
        self._jobs = World(trace, scenario)
        empty = [
            replace(pool_offer(pool, self._jobs, 0.0), free_gpus=pool.largest_launch_gpus)
            for pool in scenario.pools
        ]
        self._alone = RoundOptions(empty, Spend(), policy, 0.0)
        self._index = {offer.name: index for index, offer in enumerate(self._alone.offers)}

    def pending(self, job: int) -> PendingJob:
        jobs = self._jobs
        if math.isnan(jobs.estimates[job]):
            jobs.estimate_at_submission(job)
        return jobs.pending_job(job)

    def pools_for(self, job: int) -> list[CloudPool]:
        """The pools the job may ever burst to, in the scenario's order (budgets aside)."""
        pending = self.pending(job)
        if self._alone.burst_blocker(pending) is not None:
            return []
        allowed = set(self._alone.allowed(pending))
        return [
            pool
            for pool in self.scenario.pools
            if self._index[pool.name] in allowed and pending.gpus <= pool.largest_launch_gpus
        ]

    def fits_alone(self, job: int, option: CloudOption) -> bool:
        """Whether the option fits every budget and cap with nothing else in the clouds."""
        index = self._index[option.pool.name]
        return self._alone.ledger.blocker(self.pending(job), index, option.cost_usd) is None


class PoolRules:
    """Whether a job may use a pool at all, as the decision core rules it (its queue's and
    tenant's burst rules, its data, its GPU type and pod size): the same in every round, as
    it reads no price, room or spend."""

    def __init__(self, world: World, policy: DecisionPolicy) -> None:
        offers = [pool_offer(pool, world, 0.0) for pool in world.scenario.pools]
        self._options = RoundOptions(offers, Spend(), policy, 0.0)

    def allows(self, job: PendingJob, pool: str) -> bool:
        options = self._options
        if options.burst_blocker(job) is not None:
            return False
        return any(options.offers[index].name == pool for index in options.allowed(job))


class BurstRound:
    """One round's room: the pools' free GPUs, the budgets and caps left (the core's ledger).

    Only the ledger is built each round (the rules are `PoolRules`, built once): a round with
    a planned burst comes after most cloud finishes, and building the core's whole RoundOptions
    was about half its cost. The ledger answers alike whatever the order of its offers."""

    def __init__(
        self, world: World, policy: DecisionPolicy, now: float, rules: PoolRules, pools: PoolOffers
    ) -> None:
        offers = [pools.offer(pool, world, now) for pool in world.scenario.pools]
        self._ledger = RoundLedger(offers, world.spend(now), policy)
        self._index = {offer.name: index for index, offer in enumerate(offers)}
        self._rules = rules
        # No job of any size fits anywhere for the rest of the round (changes only by a booking).
        self.full = self._ledger.exhausted()

    def take(self, job: PendingJob, option: CloudOption) -> bool:
        """Book the burst and say True when it fits now; False (nothing booked) otherwise."""
        if self.full:  # nothing to check
            return False
        if not self._rules.allows(job, option.pool.name):
            return False
        ledger, index = self._ledger, self._index[option.pool.name]
        if ledger.blocker(job, index, option.cost_usd) is not None:
            return False
        ledger.charge(job, index, option.cost_usd)
        self.full = ledger.exhausted()
        return True


class PlannedBursts:
    """Bursts exactly the planned jobs as soon as they are due and fit the pools, budgets and
    caps, in queue order; leaves every other job alone.

    A planned job held back is asked again while its burst still pays (`PlannedBurst`); once
    it no longer does, it stays, and like every job the plan leaves alone it tells the engine
    not to ask again when room frees (`Order.wake_on_room`).
    """

    knob: float | None = None

    def __init__(self, name: str, plan: Plan, policy: DecisionPolicy) -> None:
        self.name = name
        self.plan = plan
        self.policy = policy
        self._values = _values_of_time(policy)
        # Planned jobs held back once, and until when each still pays (worked out once).
        self._held: dict[int, float] = {}
        # Each held job's timed retry (inf: none, it is asked again only when room frees).
        self._retry_at: dict[int, float] = {}
        self._rules: PoolRules | None = None  # built in the first round with a planned burst
        self._pools = PoolOffers()  # what each round's ledger is told about the pools

    def prepare(self, world: World) -> None:
        return None

    def decide(self, world: World, now: float, due: Sequence[int]) -> list[Order]:
        room: BurstRound | None = None  # built only in rounds with a planned job
        # Per pool, the most GPUs one more job could launch there under its max_gpus, its
        # replayed instances and the caps, as the world stands before this round's bursts: a
        # planned job bigger than that cannot go, whatever the round's ledger would add (at a
        # full cloud each cloud finish wakes every held job, and most need only this answer).
        launchable: Mapping[str, int] | None = None
        least_retry_s = max(world.scenario.decision_period_s, MIN_RETRY_S)
        min_wait_s = self.policy.min_pending_before_burst_s
        orders = []
        plan, held, retry_at_of, trace = self.plan, self._held, self._retry_at, world.trace
        woken = world.woken_by_room
        # False once the round's ledger is exhausted: no job of any size can go for the rest of
        # it (only a booking changes that), so the room is not asked again.
        round_open = True
        for job in due:
            planned = plan.get(job)
            pays_until = held.get(job, math.inf)
            if planned is None or now > pays_until:
                # Left alone for the rest of the run (the plan is fixed, a burst that stopped
                # paying never pays again): freed cloud room cannot change that.
                orders.append(Order(job, wake_on_room=False))
                continue
            if not round_open and job in woken and now < retry_at_of.get(job, -math.inf):
                # Held (only held jobs have a retry, and they were past `burst.min_wait` then),
                # woken before its retry, and the round can take nothing more: left out as
                # below, without the checks between (at a full cloud, most of a wake's jobs).
                continue
            spec = trace[job]
            earliest = spec.submit_s + min_wait_s
            if now < earliest:  # `burst.min_wait`, which every policy keeps
                orders.append(Order(job, revisit_at=earliest))
                continue
            if round_open:
                if launchable is None:
                    launchable = world.cloud_room_gpus(now, self.policy.caps)
                option = planned.option
                if spec.gpus <= launchable[option.pool.name]:
                    if self._rules is None:
                        self._rules = PoolRules(world, self.policy)
                    room = room or BurstRound(world, self.policy, now, self._rules, self._pools)
                    took = room.take(world.pending_job(job), option)
                    round_open = not room.full
                    if took:
                        orders.append(Order(job, pool=option.pool))
                        continue
            if job not in held:
                value = self._values.value_per_hour(world.pending_job(job))
                pays_until = held[job] = planned.pays_until_s(value)
            elif job in woken and now < retry_at_of[job]:
                # Woken before its retry by freed cloud room that it cannot take: left out, it
                # keeps its place, waiting for room, and its retry (see the module doc).
                continue
            # After as long again as the job has waited (at least MIN_RETRY_S and a period).
            retry_at = now + max(least_retry_s, now - spec.submit_s)
            if retry_at > pays_until:
                retry_at = math.inf
            retry_at_of[job] = retry_at
            orders.append(Order(job, revisit_at=retry_at if retry_at < math.inf else None))
        return orders


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
        # Budgets, caps and burst rules do not depend on the value of time.
        self.rules = BurstRules(trace, scenario, policy_at(1.0))
        self.simulations = 0
        self._path: list[tuple[float, Plan]] = []
        # Each job's cloud options, independent of v, priced the first time a job waited long
        # enough for one to pay (a spot option is a mean of MARKET_DRAWS runs).
        self._runs: list[list[CloudOption] | None] = [None] * len(trace)
        # No option adds less delay than the quickest pool's startup after `burst.min_wait`.
        self._min_wait_s = max(0.0, self.rules.policy.min_pending_before_burst_s)
        quickest = min((pool.startup_latency_s for pool in scenario.pools), default=0.0)
        self._least_delay_s = self._min_wait_s + quickest
        # Nor costs less than its GPU-hours of work at the lowest price any pool ever asks.
        self._least_usd_per_gpu_hour = _least_price(scenario.pools)
        self._stranded = never_fit_on_prem(trace, scenario)

    def plan_for(self, value: float) -> Plan:
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

    def _closest_below(self, value: float) -> tuple[float, Plan]:
        below = [(known, plan) for known, plan in self._path if known < value]
        if not below or max(below, key=lambda item: item[0])[0] < value / 2**_STEPS:
            return 0.0, {}
        return max(below, key=lambda item: item[0])

    def _extend(self, plan: Plan, value: float) -> Plan:
        policy = self.policy_at(value)
        grown = self._with_stranded(plan, policy)
        planned = PlannedBursts("oracle-search", grown, policy)
        result = Simulation(self.trace, self.scenario, planned).run()
        self.simulations += 1
        grown = dict(grown)
        # Plain lists: reading 21,000 numpy scalars one by one costs more than converting once.
        waits = (result.outcomes.start_s - result.outcomes.submit_s).tolist()
        bursted = result.outcomes.bursted.tolist()
        values = _values_of_time(policy)
        least_delay, least_price = self._least_delay_s, self._least_usd_per_gpu_hour
        for job, spec in enumerate(self.trace):
            if waits[job] <= least_delay or job in grown or bursted[job]:
                continue  # a wait no cloud option can shorten
            job_value = values.value_per_hour(self.rules.pending(job))
            lowest_cost = spec.gpus * spec.duration_s * least_price  # x 1 h, like the wait
            if job_value >= 0 and job_value * (waits[job] - least_delay) < lowest_cost:
                continue  # worth less than any option can cost: no need to price them (yet)
            option = _best(self._options(job), job_value)
            if option is None:
                continue
            if job_value * (waits[job] - option.delay_s) / HOUR > option.cost_usd:
                grown[job] = PlannedBurst(option, spec.submit_s + waits[job])
        self._path.append((value, grown))
        self._path.sort(key=lambda item: item[0])
        return grown

    def _with_stranded(self, plan: Plan, policy: DecisionPolicy) -> Plan:
        """The plan with every job that can never start on-prem, at its best option."""
        missing = [job for job in self._stranded if job not in plan]
        if not missing:
            return plan
        grown = dict(plan)
        values = _values_of_time(policy)
        for job in missing:
            value = values.value_per_hour(self.rules.pending(job))
            option = _best(self._options(job), value)
            if option is None:
                spec = self.trace[job]
                raise errors.UserError(
                    f"oracle: job {spec.job_id} needs {spec.gpus} GPUs, more than the simulated "
                    f"on-prem cluster can ever place, and no cloud pool is open to it under the "
                    f"policy file's rules (GPU type, burst rules, pool max_gpus, caps, budgets)"
                )
            grown[job] = PlannedBurst(option, math.inf)
        return grown

    def _options(self, job: int) -> list[CloudOption]:
        runs = self._runs[job]
        if runs is None:
            spec, rules = self.trace[job], self.rules
            burst_at = spec.submit_s + self._min_wait_s
            priced = _cloud_runs(spec, self.scenario, rules.pools_for(job), burst_at)
            runs = self._runs[job] = [option for option in priced if rules.fits_alone(job, option)]
        return runs


class OracleController:
    """Plays the planner's bursts for one value of waiting."""

    name = "oracle"

    def __init__(
        self,
        planner: HindsightPlanner,
        *,
        at: float,
        knob: float | None,
        knob_name: str,
    ) -> None:
        self.planner = planner
        self.at = at  # the planner's knob: a sweep's value, or 1 for the policy file's values
        self.knob = knob
        self.knob_name = knob_name
        self._player = PlannedBursts(self.name, {}, planner.policy_at(at))

    def prepare(self, world: World) -> None:
        self._player = PlannedBursts(self.name, self.planner.plan_for(self.at), self._player.policy)

    def decide(self, world: World, now: float, due: Sequence[int]) -> list[Order]:
        return self._player.decide(world, now, due)


def _values_of_time(policy: DecisionPolicy) -> RoundOptions:
    """The core's own values of time under `policy` (`RoundOptions.value_per_hour`, cached per
    kind of job); no offers, as only the values are read."""
    return RoundOptions((), Spend(), policy, 0.0)


def _cloud_runs(
    job: TraceJob, scenario: Scenario, pools: Sequence[CloudPool], burst_at: float
) -> list[CloudOption]:
    """The job's cloud run on each of `pools`, if it burst at `burst_at` (its submission, or
    once `burst.min_wait` is over): the real one where nothing is random, the mean over
    `MARKET_DRAWS` unused draws where preemptions are."""
    found = []
    for pool in pools:
        draws = MARKET_DRAWS if _random_preemptions(pool) else 1
        cost = delay = 0.0
        for draw in range(draws):
            rng = None
            if draws_at_random(pool):
                # Not the simulation's own stream ("{seed}:cloud:{job}:{pool}", engine.py).
                seed = f"{scenario.seed}:oracle-market:{draw}:{job.job_id}:{pool.name}"
                rng = random.Random(seed)
            run = run_in_cloud(
                pool,
                job.gpus,
                job.duration_s,
                burst_at,
                scenario.physics,
                scenario.dataset_bytes_per_job,
                rng,
                scenario.output_bytes_per_job,
            )
            cost += run.cost_usd
            delay += run.end_s - job.submit_s - job.duration_s
        found.append(CloudOption(pool, cost / draws, delay / draws))
    return found


def _least_price(pools: Sequence[CloudPool]) -> float:
    """Just under the lowest USD per GPU-hour any of the pools ever bills (list, on-demand
    fallback or a replayed history): a run of g GPUs and w seconds of work costs at least
    g x w x this / 1 h (it is billed for its work at least; data is charged on top). -inf when
    a negative price or data charge would break that bound."""
    prices: list[float] = []
    for pool in pools:
        if min(pool.ingress_usd_per_gb, pool.egress_usd_per_gb) < 0:
            return -math.inf
        prices += [pool.price_per_gpu_hour_usd, pool.on_demand_price_per_gpu_hour_usd]
        if pool.price_history is not None:
            prices += pool.price_history.usd_per_gpu_hour
    least = min(prices, default=0.0)
    # 0.1% under: the bound must stay below every run's float-summed cost.
    return 0.999 * least if least >= 0 else -math.inf


def _random_preemptions(pool: CloudPool) -> bool:
    """Whether a run on the pool depends on random preemption draws (spot with a rate, not a
    replayed availability trace)."""
    return pool.capacity_type is CapacityType.SPOT and draws_at_random(pool)


def _best(options: list[CloudOption], value: float) -> CloudOption | None:
    """The option with the lowest cost + value of the delay it adds."""
    return min(
        options, key=lambda option: option.cost_usd + value * option.delay_s / HOUR, default=None
    )
