"""Which cloud options a job has in this round, and the best of them, found without pricing all.

`RoundOptions` holds the offers sorted once by a job-independent key (price per unit of speed),
the round's ledger, and the rules (opt-out, tenant, residency, GPU type, gang shape). Searching
for a job's best pool walks the offers the job may use in that order and stops as soon as even
the cheapest possible remaining offer — its bare compute cost, which every other term only adds
to — cannot beat the best found or the bar the option has to clear, or cannot fit the money
left. That bound is what keeps a 10,000-job round against 50 offers fast: most jobs price one or
two offers, not fifty. Which offers a job may use depends only on (tenant, GPU types, pod size),
so it is worked out once per such combination.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import NamedTuple

from federator.core import starburst
from federator.core.costs import HOUR_S, CloudEstimate, price_cloud
from federator.core.ledger import RoundLedger
from federator.core.models import CapacityType, Offer, PendingJob, Spend
from federator.core.policy import DecisionPolicy

_Shape = tuple[str, frozenset[str], int | None]
# Relative slack under the early stop of a class walk: far above float rounding (~1e-16), far
# below any difference between offers that matters.
_STOP_SLACK = 1e-9


class Search(NamedTuple):
    """The outcome of looking for a job's best cloud option under a bar."""

    best: CloudEstimate | None  # the best option that fits every budget and cap
    best_index: int  # its offer index, -1 without one
    blocked: CloudEstimate | None  # a better option that a budget or cap rules out
    blocked_by: str | None
    lower_bound_usd: float  # what no unexamined option could go below


_NO_ROOM = Search(None, -1, None, None, math.inf)  # no pool has the job's GPUs free


class _SpeedClass(NamedTuple):
    """Offers whose GPUs run at one speed, cheapest per unit of speed first.

    Within a class the value of the runtime a faster GPU saves is the same for every offer, so
    a lower bound on an option's total grows with price and the walk can stop at the first offer
    whose lower bound is too high. Across classes it cannot; each class is walked on its own.
    """

    saving_per_runtime: float  # 1 - 1/speed: the fraction of the runtime the class saves
    min_startup_h: float  # every option of the class waits at least this long to start
    indices: tuple[int, ...]
    min_startup_usd_per_gpu: float = 0.0  # every option of the class bills at least this


def _speed_classes(offers: Sequence[Offer], policy: DecisionPolicy) -> tuple[_SpeedClass, ...]:
    by_speed: dict[float, list[int]] = {}
    for index, offer in enumerate(offers):
        by_speed.setdefault(policy.speed_of(offer.gpu_type), []).append(index)
    bill = 1.0 if policy.bill_startup else 0.0
    return tuple(
        _SpeedClass(
            saving_per_runtime=1.0 - 1.0 / speed,
            min_startup_h=min(offers[i].startup_latency_s for i in indices) / HOUR_S,
            indices=tuple(indices),
            min_startup_usd_per_gpu=min(
                offers[i].price_per_gpu_hour_usd * bill * offers[i].startup_latency_s / HOUR_S
                for i in indices
            ),
        )
        for speed, indices in sorted(by_speed.items())
    )


class RoundOptions:
    """The offers, rules and ledger of one round."""

    def __init__(
        self, offers: Sequence[Offer], spend: Spend, policy: DecisionPolicy, now: float
    ) -> None:
        self.policy = policy
        self.now = now
        self.offers = tuple(
            sorted(
                offers,
                key=lambda o: (o.price_per_gpu_hour_usd / policy.speed_of(o.gpu_type), o.name),
            )
        )
        self.ledger = RoundLedger(self.offers, spend, policy)
        self._per_unit = [
            o.price_per_gpu_hour_usd / policy.speed_of(o.gpu_type) for o in self.offers
        ]
        self._classes = _speed_classes(self.offers, policy)
        # Per offer, what the lower bound of an option's total needs (see _bounded_candidates).
        bill = 1.0 if policy.bill_startup else 0.0
        self._price_of = [o.price_per_gpu_hour_usd for o in self.offers]
        self._bound_terms = [
            (
                1.0 / policy.speed_of(o.gpu_type),
                o.preemption_rate_per_hour,
                (o.startup_latency_s + policy.restart_overhead_s) / HOUR_S,
                o.price_per_gpu_hour_usd * bill * o.startup_latency_s / HOUR_S,
                o.startup_latency_s / HOUR_S,
                max(1, o.gpus_per_node),
            )
            for o in self.offers
        ]
        # The walk of a speed class stops early (see _bounded_candidates) only while the bound
        # it stops on is a true lower bound: no negative price, rate, restart or speed.
        self._walks_stop = all(
            price >= 0 and terms[0] > 0 and terms[1] >= 0 and terms[2] >= 0
            for price, terms in zip(self._price_of, self._bound_terms, strict=True)
        )
        # A hair under the price per speed, so that rounding can never stop a walk too early.
        self._per_unit_low = [per_unit * (1.0 - _STOP_SLACK) for per_unit in self._per_unit]
        self._allowed_split: dict[_Shape, tuple[tuple[int, ...], ...]] = {}
        self._floors: dict[_Shape, tuple[tuple[float, float, float], ...]] = {}
        self._list_price_order: dict[
            tuple[str, frozenset[str], int | None, CapacityType], tuple[int, ...]
        ] = {}
        self._allowed: dict[_Shape, tuple[int, ...]] = {}
        self._values: dict[tuple[int, str, int], float] = {}
        self._queue: Sequence[PendingJob] = ()
        self._decided: set[str] = set()
        self._trimmed: frozenset[str] | None = None
        # Only Starburst's queue cap reads which jobs are decided; nobody else pays for it.
        self.tracks_decided = policy.starburst_max_queue_length is not None
        self._blockers: dict[tuple[bool, str], str | None] = {}

    def value_per_hour(self, job: PendingJob) -> float:
        """The job's value of time in $ per hour of delay (cached per gpus, queue, priority)."""
        key = (job.gpus, job.queue, job.priority)
        value = self._values.get(key)
        if value is None:
            value = self.policy.value_of_time_usd_per_hour(
                gpus=job.gpus, queue=job.queue, priority=job.priority
            )
            self._values[key] = value
        return value

    def burst_blocker(self, job: PendingJob) -> str | None:
        """Why this job may not leave on-prem at all, or None."""
        if not job.datasets:  # then only the opt-out and the tenant matter: cached
            key = (job.burst_allowed, job.tenant)
            try:
                return self._blockers[key]
            except KeyError:
                blocker = self._blockers[key] = self._blocker(job)
                return blocker
        return self._blocker(job)

    def _blocker(self, job: PendingJob) -> str | None:
        if not job.burst_allowed:
            return "it opted out of bursting"
        rule = self.policy.tenant_rule(job.tenant)
        if not rule.burst_allowed:
            return f"tenant {job.tenant} never bursts"
        for need in job.datasets:
            for pattern in self.policy.resident_datasets:
                if fnmatchcase(need.name, pattern):
                    return f"dataset {need.name} must stay on-prem"
        return None

    def allowed(self, job: PendingJob) -> tuple[int, ...]:
        """Indices of the offers this job may ever run on (rules and shape, not capacity)."""
        shape = (job.tenant, job.gpu_types, job.gpus_per_pod)
        indices = self._allowed.get(shape)
        if indices is None:
            indices = tuple(i for i, o in enumerate(self.offers) if self._allows(shape, o))
            self._allowed[shape] = indices
        return indices

    def search(self, job: PendingJob, *, value_per_hour: float, bar_usd: float) -> Search:
        """The cheapest option by expected total that fits, stopping once none can beat the bar.

        First a check per speed class against its cheapest offer (most jobs stop here), then the
        offers that pass are priced in the order of their own lower bounds until the next bound
        is above the best total found.
        """
        ledger = self.ledger
        if job.gpus > ledger.most_free:
            return _NO_ROOM
        runtime_h = job.runtime_estimate_s / HOUR_S
        class_floor = self._class_floor(job, runtime_h, value_per_hour)
        if class_floor > bar_usd:
            return Search(None, -1, None, None, class_floor)
        capped = ledger.global_cap_blocker(job)
        if capped is not None:
            return self._all_capped(job, value_per_hour, capped)
        candidates, above_bar = self._bounded_candidates(job, runtime_h, value_per_hour, bar_usd)
        return self._price_in_order(job, candidates, value_per_hour, bar_usd, above_bar)

    def _class_floor(self, job: PendingJob, runtime_h: float, value_per_hour: float) -> float:
        """No option of any class can cost less than this (bare compute, best-case delay)."""
        floor = math.inf
        compute_hours = job.gpus * runtime_h
        terms = self._floors.get((job.tenant, job.gpu_types, job.gpus_per_pod))
        if terms is None:
            terms = self._floor_terms(job)
        for per_unit, saving_per_runtime, min_startup_h in terms:
            bound = compute_hours * per_unit - value_per_hour * (
                runtime_h * saving_per_runtime - min_startup_h
            )
            if bound < floor:
                floor = bound
        return floor

    def _floor_terms(self, job: PendingJob) -> tuple[tuple[float, float, float], ...]:
        """Per speed class the job may use: its cheapest price per speed, saving, startup."""
        shape = (job.tenant, job.gpu_types, job.gpus_per_pod)
        terms = self._floors.get(shape)
        if terms is None:
            terms = tuple(
                (
                    self._per_unit[indices[0]],
                    speed_class.saving_per_runtime,
                    speed_class.min_startup_h,
                )
                for speed_class, indices in zip(
                    self._classes, self._allowed_by_class(job), strict=True
                )
                if indices
            )
            self._floors[shape] = terms
        return terms

    def _bounded_candidates(
        self, job: PendingJob, runtime_h: float, value_per_hour: float, bar_usd: float
    ) -> tuple[list[tuple[float, int, float]], float]:
        """(bound on the total, offer index, bound on the cost) per offer that could beat the bar.

        The bound keeps every term but data, idle GPUs and deadlines (all ≥ 0): compute at
        the run-time factor (1 + λR)(1 + λw/2)/speed for segments of w (the exact expectation
        (1/λ + R)(e^{λw} − 1) per segment is never below it), billed startup, the congestion
        price of that compute, and the value of startup plus the runtime change. Offers whose
        bound is above the bar are never priced, so they are not kept or sorted; only the
        lowest of their bounds is, as the lower bound once the kept ones are exhausted.
        Each speed class is walked cheapest per speed first and left as soon as even the
        bare compute of the next offer (plus the class's cheapest startup, at its speed's
        best-case delay) reaches that lowest bound: no offer after it could be kept or lower it.
        """
        free = self.ledger.free
        gpus = job.gpus
        compute_hours = gpus * runtime_h
        weight = max(0.0, self.policy.congestion_weight)
        per_node = self.policy.preemption_rate_per_node
        declared = job.checkpoint_interval_s or self.policy.default_checkpoint_interval_s
        interval_h = math.inf if not declared or declared <= 0 else declared / HOUR_S
        bound_terms = self._bound_terms
        price_of = self._price_of
        per_unit_low = self._per_unit_low
        bounded = []
        above_bar = math.inf
        walks = zip(self._classes, self._allowed_by_class(job), strict=True)
        for speed_class, indices in walks:
            stop_offset = self._stop_offset(speed_class, gpus, runtime_h, value_per_hour)
            for index in indices:
                if compute_hours * per_unit_low[index] + stop_offset >= above_bar:
                    break
                left = free[index]
                if gpus > left:
                    continue
                inverse_speed, rate_h, restart_h, startup_usd_per_gpu, startup_h, node_gpus = (
                    bound_terms[index]
                )
                if per_node:
                    rate_h *= -(-gpus // node_gpus)
                segment_h = min(interval_h, runtime_h * inverse_speed)
                run_factor = (
                    inverse_speed * (1.0 + rate_h * restart_h) * (1.0 + rate_h * segment_h / 2)
                )
                compute = compute_hours * run_factor * price_of[index]
                cost = compute + gpus * startup_usd_per_gpu
                delay = value_per_hour * (startup_h + runtime_h * (run_factor - 1.0))
                congestion = weight * compute * (gpus / left if gpus < left else 1.0)
                bound = cost + congestion + delay
                if bound > bar_usd:
                    if bound < above_bar:
                        above_bar = bound
                else:
                    bounded.append((bound, index, cost))
        bounded.sort()
        return bounded, above_bar

    def _stop_offset(
        self, speed_class: _SpeedClass, gpus: int, runtime_h: float, value_per_hour: float
    ) -> float:
        """What every bound of the class adds to its bare compute at least, a hair under.

        With a run-time factor of at least 1/speed, an offer's bound is at least its bare
        compute plus the class's cheapest billed startup plus the value of the class's shortest
        startup minus the runtime the speed saves. The slack (relative, 1e-9 of the terms'
        sizes) covers float rounding, which must never stop a walk that should go on. -inf
        (never stop) where that reasoning does not hold.
        """
        if not (self._walks_stop and runtime_h >= 0 and value_per_hour >= 0):
            return -math.inf
        startup_usd = gpus * speed_class.min_startup_usd_per_gpu
        startup_h = speed_class.min_startup_h
        saved_h = runtime_h * speed_class.saving_per_runtime
        size = abs(startup_usd) + value_per_hour * (abs(startup_h) + abs(saved_h))
        return startup_usd + value_per_hour * (startup_h - saved_h) - _STOP_SLACK * size

    def _price_in_order(
        self,
        job: PendingJob,
        candidates: list[tuple[float, int, float]],
        value_per_hour: float,
        bar_usd: float,
        lower_bound_usd: float,
    ) -> Search:
        """Price the candidates in bound order; `lower_bound_usd`: the lowest bound left out
        (see `_bounded_candidates`)."""
        ledger = self.ledger
        money = ledger.money_room_usd(job)
        burn_room = ledger.burn_room_usd_per_hour()
        best: CloudEstimate | None = None
        best_index = -1
        blocked: CloudEstimate | None = None
        blocked_by: str | None = None
        ceiling = bar_usd
        lower = lower_bound_usd
        for bound, index, cost_bound in candidates:
            if bound > ceiling:
                lower = bound
                break
            offer = self.offers[index]
            over_money = cost_bound > money
            over_burn = offer.price_per_gpu_hour_usd * job.gpus > burn_room
            if (over_money or over_burn) and blocked is not None:
                continue  # ruled out by a budget, and a blocked option is already known
            option = self._cheaper_variant(job, index, value_per_hour)
            reason = ledger.blocker(job, index, option.cost_usd)
            if reason is None:
                if best is None or option.total_usd < best.total_usd:
                    best, best_index = option, index
                    ceiling = min(ceiling, option.total_usd)
            elif blocked is None or option.total_usd < blocked.total_usd:
                blocked, blocked_by = option, reason
        return Search(best, best_index, blocked, blocked_by, lower)

    def _all_capped(self, job: PendingJob, value_per_hour: float, capped: str) -> Search:
        """A global cap rules every offer out: report the cheapest that fits as the blocked one."""
        for index in self.allowed(job):
            if job.gpus <= self.ledger.free[index]:
                option = self._cheaper_variant(job, index, value_per_hour)
                return Search(None, -1, option, capped, option.total_usd)
        return Search(None, -1, None, None, math.inf)

    def _allowed_by_class(self, job: PendingJob) -> tuple[tuple[int, ...], ...]:
        shape = (job.tenant, job.gpu_types, job.gpus_per_pod)
        split = self._allowed_split.get(shape)
        if split is None:
            allowed = set(self.allowed(job))
            split = tuple(
                tuple(i for i in speed_class.indices if i in allowed)
                for speed_class in self._classes
            )
            self._allowed_split[shape] = split
        return split

    def cheapest(
        self, job: PendingJob, capacity: CapacityType
    ) -> tuple[CloudEstimate | None, int, str | None]:
        """The baselines' rule: lowest list price of one capacity type that fits, else why not."""
        blocked_by: str | None = None
        if job.gpus > self.ledger.most_free:
            return None, -1, f"no {capacity} pool has {job.gpus} free GPUs"
        for index in self._by_list_price(job, capacity):
            if job.gpus > self.ledger.free[index]:
                continue
            offer = self.offers[index]
            option = price_cloud(job, offer, now=self.now, policy=self.policy, value_per_hour=0.0)
            reason = self.ledger.blocker(job, index, option.cost_usd)
            if reason is None:
                return option, index, None
            blocked_by = blocked_by or reason
        return None, -1, blocked_by or f"no {capacity} pool has {job.gpus} free GPUs"

    def _by_list_price(self, job: PendingJob, capacity: CapacityType) -> tuple[int, ...]:
        key = (job.tenant, job.gpu_types, job.gpus_per_pod, capacity)
        indices = self._list_price_order.get(key)
        if indices is None:
            offers = self.offers
            indices = tuple(
                sorted(
                    (i for i in self.allowed(job) if offers[i].capacity_type is capacity),
                    key=lambda i: (offers[i].price_per_gpu_hour_usd, offers[i].name),
                )
            )
            self._list_price_order[key] = indices
        return indices

    def follow(self, queue: Sequence[PendingJob]) -> None:
        """The round's jobs in admission order, for rules that look at the whole queue."""
        self._queue = queue

    def decided(self, job: PendingJob) -> None:
        self._decided.add(job.key)

    def starburst_trimmed(self, job: PendingJob) -> bool:
        """Starburst's `max_queue_length`: is the job in the tail beyond the cap?

        Asked first for the first job that cannot start now, when every job that can has been
        decided, which is the queue Starburst trims (after placing, before the next event).
        """
        cap = self.policy.starburst_max_queue_length
        if cap is None:
            return False
        if self._trimmed is None:
            queued = [
                other
                for other in self._queue
                if other.key not in self._decided
                and self.now < starburst.timeout_at(other, self.policy)
            ]
            self._trimmed = frozenset(other.key for other in queued[cap:])
        return job.key in self._trimmed

    def _allows(self, shape: _Shape, offer: Offer) -> bool:
        tenant, gpu_types, gpus_per_pod = shape
        if gpu_types and offer.gpu_type not in gpu_types:
            return False
        if gpus_per_pod is not None and gpus_per_pod > offer.gpus_per_node:
            return False
        rule = self.policy.tenant_rule(tenant)
        if rule.allowed_clusters and offer.cluster not in rule.allowed_clusters:
            return False
        return not (rule.allowed_regions and offer.region not in rule.allowed_regions)

    def _cheaper_variant(self, job: PendingJob, index: int, value_per_hour: float) -> CloudEstimate:
        offer, free = self.offers[index], self.ledger.free[index]
        now = price_cloud(
            job,
            offer,
            now=self.now,
            policy=self.policy,
            value_per_hour=value_per_hour,
            free_gpus=free,
        )
        if now.transfer_s <= 0:
            return now
        held = price_cloud(
            job,
            offer,
            now=self.now,
            policy=self.policy,
            value_per_hour=value_per_hour,
            held=True,
            free_gpus=free,
        )
        return held if held.total_usd < now.total_usd else now
