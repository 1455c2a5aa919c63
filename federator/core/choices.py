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
from collections.abc import Iterator, Sequence
from fnmatch import fnmatchcase
from heapq import heappop, heappush
from typing import NamedTuple

from federator.core import starburst
from federator.core.costs import HOUR_S, CloudEstimate, QueueBehind, price_cloud
from federator.core.ledger import RoundLedger
from federator.core.models import CapacityType, Offer, PendingJob, Spend
from federator.core.policy import DecisionPolicy

_Shape = tuple[str, frozenset[str], int | None]
# Relative slack under an offer's floor (see _lines_under_bounds): far above float rounding
# (~1e-16), far below any difference between offers that matters.
_FLOOR_SLACK = 1e-9


class Search(NamedTuple):
    """The outcome of looking for a job's best cloud option under a bar."""

    best: CloudEstimate | None  # the best option that fits every budget and cap
    best_index: int  # its offer index, -1 without one
    blocked: CloudEstimate | None  # a better option that a budget or cap rules out
    blocked_by: str | None
    lower_bound_usd: float  # what no unexamined option could go below


_NO_ROOM = Search(None, -1, None, None, math.inf)  # no pool has the job's GPUs free
_new_search = tuple.__new__  # NamedTuple's own __new__ is a Python function doing only this


class _FloorLines(NamedTuple):
    """Floors under the bounds of one kind of job's offers, as lines in the runtime (hours)."""

    slopes: tuple[float, ...]
    intercepts: tuple[float, ...]
    indices: tuple[int, ...]  # the offers, in the order of the lines


class _SpeedClass(NamedTuple):
    """Offers whose GPUs run at one speed, cheapest per unit of speed first.

    Within a class the value of the runtime a faster GPU saves is the same for every offer, so
    the bound on an option's total grows with price: the cheapest offer of each class the job
    may use bounds every option of that class from below (`_class_floor`).
    """

    saving_per_runtime: float  # 1 - 1/speed: the fraction of the runtime the class saves
    min_startup_h: float  # every option of the class waits at least this long to start
    indices: tuple[int, ...]


def _speed_classes(offers: Sequence[Offer], policy: DecisionPolicy) -> tuple[_SpeedClass, ...]:
    by_speed: dict[float, list[int]] = {}
    for index, offer in enumerate(offers):
        by_speed.setdefault(policy.speed_of(offer.gpu_type), []).append(index)
    return tuple(
        _SpeedClass(
            saving_per_runtime=1.0 - 1.0 / speed,
            min_startup_h=min(offers[i].startup_latency_s for i in indices) / HOUR_S,
            indices=tuple(indices),
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
        # Offers are taken in the order of a floor under their bound (see _floors_in_order),
        # which is one only with finite figures and no negative price, rate, restart or speed.
        self._first_free = list(self.ledger.free)
        self._floors_hold = math.isfinite(policy.congestion_weight) and all(
            0 <= price < math.inf
            and all(math.isfinite(term) for term in terms)
            and terms[0] > 0
            and terms[1] >= 0
            and terms[2] >= 0
            for price, terms in zip(self._price_of, self._bound_terms, strict=True)
        )
        self._floor_lines: dict[
            tuple[str, frozenset[str], int | None, int, float], _FloorLines
        ] = {}
        self._allowed_split: dict[_Shape, tuple[tuple[int, ...], ...]] = {}
        self._floors: dict[_Shape, tuple[tuple[float, float, float], ...]] = {}
        self._list_price_order: dict[
            tuple[str, frozenset[str], int | None, CapacityType], tuple[int, ...]
        ] = {}
        self._allowed: dict[_Shape, tuple[int, ...]] = {}
        self._values: dict[tuple[int, str, int, float | None], float] = {}
        self._queue: Sequence[PendingJob] = ()
        self._decided: set[str] = set()
        self._trimmed: frozenset[str] | None = None
        # Only Starburst's queue cap reads which jobs are decided; nobody else pays for it.
        self.tracks_decided = policy.starburst_max_queue_length is not None
        self._blockers: dict[tuple[bool, str], str | None] = {}
        # Set by the round before each job is decided, for the price of the delay a stay
        # causes (`queue_usd`): the pending jobs that would start after it (0 when the policy
        # does not price them, see `DecisionPolicy.prices_queue_behind`), and the on-prem GPUs
        # they queue for.
        self.jobs_behind = 0
        self.onprem_gpus = 0
        self._behind: QueueBehind | None = None
        self._min_startup_h = min((o.startup_latency_s for o in self.offers), default=0.0) / HOUR_S

    def value_per_hour(self, job: PendingJob) -> float:
        """The job's value of time in $ per hour of delay (cached per gpus, queue, priority and
        the queue's own value)."""
        key = (job.gpus, job.queue, job.priority, job.value_usd_per_gpu_hour)
        value = self._values.get(key)
        if value is None:
            value = self.policy.value_of_time_usd_per_hour(
                gpus=job.gpus,
                queue=job.queue,
                priority=job.priority,
                per_gpu_usd=job.value_usd_per_gpu_hour,
            )
            self._values[key] = value
        return value

    def queue_usd(self, job: PendingJob, wait_s: float) -> float:
        """What staying's delay of the `jobs_behind` is worth (`costs.QueueBehind`), weighted."""
        if not self.jobs_behind or self.onprem_gpus <= 0:
            return 0.0
        if self._behind is None:
            self._behind = QueueBehind([self._value_and_tolerance(k) for k in self._queue])
        delay_h = job.gpus * job.runtime_estimate_s / HOUR_S / self.onprem_gpus
        price = self._behind.delay_usd(
            behind=self.jobs_behind, delay_h=delay_h, wait_h=wait_s / HOUR_S
        )
        return self.policy.queue_externality_weight * price

    def _value_and_tolerance(self, job: PendingJob) -> tuple[float, float]:
        """A job's value of time and how long it waits before the cheapest offer beats waiting
        (∞ without offers): its compute at the lowest price per unit of speed, plus startup."""
        value = self.value_per_hour(job)
        if not self._per_unit or value <= 0:
            return value, math.inf
        cost = min(self._per_unit) * job.gpus * job.runtime_estimate_s / HOUR_S
        return value, cost / value + self._min_startup_h

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
                    why = self.policy.residency_reasons.get(pattern)
                    return f"dataset {need.name} must stay on-prem" + (f" ({why})" if why else "")
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
            return _new_search(Search, (None, -1, None, None, class_floor))
        bounds = self._bounds_in_order(job, runtime_h, value_per_hour)
        found = self._price_in_order(job, bounds, value_per_hour, bar_usd)
        capped = ledger.global_cap_blocker(job)
        if capped is None or found.best is None:
            return found
        # A global cap rules every pool out alike, so the option it blocks is the one that
        # would have won without it: the search's best (docs/cost-model.md §5.2).
        return _new_search(Search, (None, -1, found.best, capped, found.lower_bound_usd))

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

    def _bounds_in_order(
        self, job: PendingJob, runtime_h: float, value_per_hour: float
    ) -> Iterator[tuple[float, int, float]]:
        """(bound on the total, offer index, bound on the cost) of each offer the job may use and
        that has its GPUs free, lowest bound first (then index), each worked out when needed.

        The bound keeps every term but data, idle GPUs and deadlines (all ≥ 0): compute at
        the run-time factor (1 + λR)(1 + λw/2)/speed for segments of w (the exact expectation
        (1/λ + R)(e^{λw} − 1) per segment is never below it), billed startup, the congestion
        price of that compute, and the value of startup plus the runtime change. The search
        stops at the first bound above the best total, mostly after two or three offers, so
        offers are taken in the order of a cheaper floor under their bound, and a bound is
        handed out once no floor left is below it: no offer not yet bounded can come first.
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
        bounded: list[tuple[float, int, float]] = []  # a heap
        floors, indices = self._floors_under_bounds(job, runtime_h, value_per_hour)
        for position in sorted(range(len(floors)), key=floors.__getitem__):
            floor = floors[position]
            while bounded and bounded[0][0] < floor:
                yield heappop(bounded)
            index = indices[position]
            left = free[index]
            if gpus > left:
                continue
            inverse_speed, rate_h, restart_h, startup_usd_per_gpu, startup_h, node_gpus = (
                bound_terms[index]
            )
            if per_node:
                rate_h *= -(-gpus // node_gpus)
            segment_h = min(interval_h, runtime_h * inverse_speed)
            run_factor = inverse_speed * (1.0 + rate_h * restart_h) * (1.0 + rate_h * segment_h / 2)
            compute = compute_hours * run_factor * price_of[index]
            cost = compute + gpus * startup_usd_per_gpu
            delay = value_per_hour * (startup_h + runtime_h * (run_factor - 1.0))
            congestion = weight * compute * (gpus / left if gpus < left else 1.0)
            heappush(bounded, (cost + congestion + delay, index, cost))
        while bounded:
            yield heappop(bounded)

    def _floors_under_bounds(
        self, job: PendingJob, runtime_h: float, value_per_hour: float
    ) -> tuple[list[float], tuple[int, ...]]:
        """A floor under the bound of each offer the job may use, and those offers' indices.

        With a run-time factor of at least (1 + λR)/speed, a bound is at least that compute
        with its congestion price, plus the billed startup, plus the value of the startup and
        of the runtime change: runtime_h × slope + intercept, where slope and intercept depend
        only on the job's GPUs, its value of time and the offer, so they are worked out once
        per such job (`_lines_under_bounds`). -inf floors (every bound is worked out)
        where that does not hold. Plain floats, not tuples: a search makes one per offer.
        """
        if not (self._floors_hold and 0 <= runtime_h < math.inf and 0 <= value_per_hour < math.inf):
            indices = self.allowed(job)
            return [-math.inf] * len(indices), indices
        key = (job.tenant, job.gpu_types, job.gpus_per_pod, job.gpus, value_per_hour)
        lines = self._floor_lines.get(key)
        if lines is None:
            lines = self._floor_lines[key] = self._lines_under_bounds(job, value_per_hour)
        slopes, intercepts, indices = lines
        return [
            runtime_h * slope + cut for slope, cut in zip(slopes, intercepts, strict=True)
        ], indices

    def _lines_under_bounds(self, job: PendingJob, value_per_hour: float) -> _FloorLines:
        """Per offer the job may use: the slope and intercept of its floor (see above).

        The floor keeps what does not depend on the runtime's checkpoint segments: the
        restart part of the run-time factor, and the congestion share the job would take of
        the pool's GPUs at the start of the round (a pool only fills up within a round). Each
        is lowered by a relative 1e-9 of its terms' sizes, far above float rounding (~1e-16),
        because a floor above its bound would hand out a bound too early.
        """
        gpus = job.gpus
        value = value_per_hour
        weight = max(0.0, self.policy.congestion_weight)
        per_node = self.policy.preemption_rate_per_node
        slopes = []
        intercepts = []
        indices = self.allowed(job)
        for index in indices:
            inverse_speed, rate_h, restart_h, startup_usd_per_gpu, startup_h, node_gpus = (
                self._bound_terms[index]
            )
            if per_node:
                rate_h *= -(-gpus // node_gpus)
            factor = inverse_speed * (1.0 + rate_h * restart_h)
            first_free = self._first_free[index]
            share = gpus / first_free if gpus < first_free else 1.0
            compute_per_h = gpus * self._price_of[index] * factor * (1.0 + weight * share)
            startup_usd = gpus * startup_usd_per_gpu
            slope = compute_per_h + value * (factor - 1.0)
            intercept = startup_usd + value * startup_h
            slopes.append(slope - _FLOOR_SLACK * (compute_per_h + value * abs(factor - 1.0)))
            intercepts.append(
                intercept - _FLOOR_SLACK * (abs(startup_usd) + value * abs(startup_h))
            )
        return _FloorLines(tuple(slopes), tuple(intercepts), indices)

    def _price_in_order(
        self,
        job: PendingJob,
        bounds: Iterator[tuple[float, int, float]],
        value_per_hour: float,
        bar_usd: float,
    ) -> Search:
        """Price the offers in bound order until the next bound is above the best total found
        (or the bar); that bound is the lower bound of every option not priced."""
        ledger = self.ledger
        money = ledger.money_room_usd(job)
        burn_room = ledger.burn_room_usd_per_hour()
        best: CloudEstimate | None = None
        best_index = -1
        blocked: CloudEstimate | None = None
        blocked_by: str | None = None
        ceiling = bar_usd
        lower = math.inf
        for bound, index, cost_bound in bounds:
            if bound > ceiling:
                lower = bound
                break
            offer = self.offers[index]
            over_money = cost_bound > money
            over_burn = offer.price_per_gpu_hour_usd * job.gpus > burn_room
            if (over_money or over_burn) and blocked is not None:
                continue  # ruled out by a budget, and a blocked option is already known
            preferred = self._cheaper_variant(job, index, value_per_hour)
            option: CloudEstimate | None = preferred
            reason = ledger.blocker(job, index, preferred.cost_usd, global_caps=False)
            if reason is not None:
                if blocked is None or preferred.total_usd < blocked.total_usd:
                    blocked, blocked_by = preferred, reason
                option = self._variant_within(job, index, value_per_hour, preferred)
            if option is not None and (best is None or option.total_usd < best.total_usd):
                best, best_index = option, index
                ceiling = min(ceiling, option.total_usd)
        return _new_search(Search, (best, best_index, blocked, blocked_by, lower))

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
        return self.policy.tenant_rule(tenant).allows(offer.cluster, offer.region)

    def _variant_within(
        self, job: PendingJob, index: int, value_per_hour: float, refused: CloudEstimate
    ) -> CloudEstimate | None:
        """The pool's other variant when a budget or cap refuses the better one (`refused`),
        if it bills less and nothing refuses it; else None.

        Copying the data first and starting after (held) bills no idle GPUs, so it may fit a
        budget that starting now (GPUs idle on the meter while the copy runs) would exceed.
        Without this, a higher value of time, which favours starting now, could turn an
        affordable burst into a stay (a case the property tests found).
        """
        if refused.transfer_s <= 0:
            return None
        other = price_cloud(
            job,
            self.offers[index],
            now=self.now,
            policy=self.policy,
            value_per_hour=value_per_hour,
            held=not refused.held,
            free_gpus=self.ledger.free[index],
        )
        if other.cost_usd >= refused.cost_usd:
            return None
        if self.ledger.blocker(job, index, other.cost_usd, global_caps=False) is not None:
            return None
        return other

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
