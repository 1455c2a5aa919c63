"""Simulated cloud pools: what a bursted job really costs and when it really finishes.

A pool has a price (fixed, or a replayed spot price history), a preemption process (a Poisson
rate, or a replayed spot availability trace), a startup latency, a data path (transfer time and
per-GB charges) and a GPU cap. When a job bursts, its whole cloud life is computed at once from
the pool's processes and a per-job random stream: wait for capacity, start up, run, and after
each preemption lose the work since the last checkpoint, start up again and resume. One
completion event per bursted job keeps the event loop small.

Billing model (stated here because every figure depends on it): GPUs are billed per second
from the start of each launch (startup latency included, as cloud VMs are) to its preemption or
the job's end; data moved in is charged per GB at the pool's ingress price before the job
starts. A job restarts in the same pool after a preemption; after `max_restarts` preemptions it
finishes on the pool's on-demand price without further preemptions (a stand-in for the daemon's
fallback to on-demand), so a job never loops forever on an unusable spot pool.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass, field

from federator import errors
from federator.core.models import CapacityType
from federator.prices import replay
from federator.prices.replay import SpotPriceSeries

HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class PriceHistory:
    """A step function of USD per GPU-hour over the trace clock (seconds)."""

    times_s: tuple[float, ...]  # ascending; times_s[0] == 0
    usd_per_gpu_hour: tuple[float, ...]

    def price_at(self, t: float) -> float:
        return self.usd_per_gpu_hour[max(0, bisect.bisect_right(self.times_s, t) - 1)]

    def cost_usd(self, gpus: int, start_s: float, end_s: float) -> float:
        """Integral of the price over [start, end) for `gpus` GPUs."""
        total = 0.0
        index = max(0, bisect.bisect_right(self.times_s, start_s) - 1)
        t = start_s
        while t < end_s:
            step_end = self.times_s[index + 1] if index + 1 < len(self.times_s) else math.inf
            until = min(end_s, step_end)
            total += self.usd_per_gpu_hour[index] * (until - t)
            t = until
            index += 1
        return gpus * total / HOUR

    def mean_price(self) -> float:
        return sum(self.usd_per_gpu_hour) / len(self.usd_per_gpu_hour)


def price_history_from_series(series: SpotPriceSeries, gpus_per_instance: int) -> PriceHistory:
    """A recorded spot market replayed from trace time 0 = its first price change."""
    origin = series.times_s[0]
    return PriceHistory(
        times_s=tuple(t - origin for t in series.times_s),
        usd_per_gpu_hour=tuple(p / gpus_per_instance for p in series.prices_usd_per_hour),
    )


@dataclass(frozen=True, slots=True)
class AvailabilityTrace:
    """Spot instances alive per tick (Can't Be Late traces), replayed cyclically from time 0."""

    tick_s: float
    alive: tuple[int, ...]
    _next_change: dict[int, tuple[list[int], list[int]]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def _marks(self, needed: int) -> tuple[list[int], list[int]]:
        """Tick indexes where availability for `needed` instances goes down / comes back."""
        if needed not in self._next_change:
            ok = [count >= needed for count in self.alive]
            downs = [i for i in range(len(ok)) if not ok[i] and (i == 0 or ok[i - 1])]
            ups = [i for i in range(len(ok)) if ok[i] and (i == 0 or not ok[i - 1])]
            self._next_change[needed] = (downs, ups)
        return self._next_change[needed]

    def needed_instances(self, nodes: int) -> int:
        """A job holds one instance per node; more than the trace ever has is never available."""
        return max(1, nodes)

    def next_available(self, t: float, nodes: int) -> float:
        """The first time >= t at which `nodes` instances can be launched."""
        index = int(t // self.tick_s)
        if self.alive[index % len(self.alive)] >= self.needed_instances(nodes):
            return t
        _, ups = self._marks(self.needed_instances(nodes))
        return self._next_mark(ups, index, t)

    def next_preemption(self, t: float, nodes: int) -> float:
        """The first time > t at which availability drops below what the job holds (from its
        launch: an instance lost while starting up is lost too)."""
        downs, _ = self._marks(self.needed_instances(nodes))
        return self._next_mark(downs, int(t // self.tick_s), t)

    def _next_mark(self, marks: list[int], index: int, t: float) -> float:
        if not marks:
            return math.inf
        cycle, offset = divmod(index, len(self.alive))
        position = bisect.bisect_right(marks, offset)
        if position == len(marks):
            cycle, position = cycle + 1, 0
        return max(t, (cycle * len(self.alive) + marks[position]) * self.tick_s)

    def mean_availability(self) -> float:
        return sum(1 for count in self.alive if count > 0) / len(self.alive)

    def preemptions_per_hour(self) -> float:
        """Drops 1 -> 0 per available hour: the empirical hazard a running job sees."""
        downs, _ = self._marks(1)
        up_hours = self.mean_availability() * len(self.alive) * self.tick_s / HOUR
        return len(downs) / up_hours if up_hours else math.inf


def availability_from_trace(trace: replay.AvailabilityTrace) -> AvailabilityTrace:
    """The prices package's recorded trace, indexed for fast launch/preemption queries."""
    if not trace.counts or max(trace.counts) <= 0:
        raise errors.UserError(f"spot trace {trace.name}: no instance is ever available")
    return AvailabilityTrace(tick_s=trace.tick_s, alive=trace.counts)


@dataclass(frozen=True, slots=True)
class CloudPool:
    """One simulated cloud pool; the decision core sees it as an `Offer`."""

    cluster: str
    pool: str
    gpu_type: str
    capacity_type: CapacityType
    price_per_gpu_hour_usd: float  # the list price; a price history overrides it over time
    on_demand_price_per_gpu_hour_usd: float  # for the fallback after `max_restarts`
    max_gpus: int = 1_000_000
    preemption_rate_per_hour: float = 0.0
    startup_latency_s: float = 120.0
    gpus_per_node: int = 8
    ingress_usd_per_gb: float = 0.0
    egress_usd_per_gb: float = 0.0
    transfer_bytes_per_s: float = 100e6
    price_history: PriceHistory | None = None
    availability: AvailabilityTrace | None = None
    max_restarts: int = 20
    region: str = ""  # as the daemon's offers say it: for tenants' `allowed_regions`
    # "cluster/pool", set once: the simulator reads it millions of times per oracle run.
    name: str = field(init=False, repr=False, compare=False)
    # The most GPUs one job can ever hold here: the pool's cap and, under a replayed
    # availability trace, the most instances the trace ever has alive (set once, like `name`:
    # read at every room check, and a trace can be long).
    largest_launch_gpus: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", f"{self.cluster}/{self.pool}")
        largest = self.max_gpus
        if self.availability is not None:
            largest = min(largest, max(self.availability.alive) * self.gpus_per_node)
        object.__setattr__(self, "largest_launch_gpus", largest)

    def price_at(self, t: float) -> float:
        return self.price_history.price_at(t) if self.price_history else self.price_per_gpu_hour_usd

    def compute_cost_usd(self, gpus: int, start_s: float, end_s: float) -> float:
        if self.price_history is not None:
            return self.price_history.cost_usd(gpus, start_s, end_s)
        return gpus * self.price_per_gpu_hour_usd * (end_s - start_s) / HOUR


@dataclass(frozen=True, slots=True)
class CloudRun:
    """The realised cloud life of one bursted job."""

    pool: str
    start_s: float  # first launch begins (after data transfer)
    end_s: float  # the job's work is done
    compute_usd: float
    data_usd: float
    gpu_seconds: float  # billed GPU-seconds (startups and lost work included)
    # Work redone after preemptions: the GPU-seconds of computation since the last completed
    # checkpoint (not the startup or checkpoint writes of the preempted launch, billed anyway).
    lost_gpu_seconds: float
    preemptions: int

    @property
    def cost_usd(self) -> float:
        return self.compute_usd + self.data_usd


@dataclass(frozen=True, slots=True)
class JobPhysics:
    """How a job behaves in the cloud: its checkpoints and what a restart costs."""

    checkpoint_interval_s: float | None  # None: no checkpoints, a preemption loses everything
    checkpoint_write_s: float = 0.0  # each checkpoint stalls the job this long
    restart_overhead_s: float = 0.0  # restore and warm-up after a preemption, on top of startup


def run_in_cloud(
    pool: CloudPool,
    gpus: int,
    work_s: float,
    burst_at: float,
    physics: JobPhysics,
    data_bytes: int,
    rng: random.Random | None,
    output_bytes: int = 0,
) -> CloudRun:
    """Play one job's cloud life: launch, data copy, preemptions, rework, completion.

    The GPUs are launched at once and billed from launch; the data copy runs meanwhile, so the
    job starts after max(startup, transfer) (what the decision core assumes for "burst now").
    `rng`: the job's random stream, read only where `draws_at_random(pool)` (None elsewhere:
    seeding one costs more than the rest of a short run).
    """
    transfer = data_bytes / pool.transfer_bytes_per_s if data_bytes else 0.0
    # Data in is charged at the pool's ingress price, results out at its cluster's egress
    # price; the copy back after the job ends is not counted in its completion time.
    data_usd = (
        data_bytes / 1e9 * pool.ingress_usd_per_gb + output_bytes / 1e9 * pool.egress_usd_per_gb
    )
    nodes = max(1, math.ceil(gpus / pool.gpus_per_node))
    if gpus > pool.largest_launch_gpus:
        raise ValueError(f"{pool.name} can never launch {gpus} GPUs (see largest_launch_gpus)")
    t, remaining, ready_delay = burst_at, work_s, max(pool.startup_latency_s, transfer)
    first_start = math.nan
    compute_usd = billed = lost = 0.0
    preemptions = 0
    while True:
        risky = _preemptible(pool) and preemptions < pool.max_restarts
        if risky and pool.availability is not None:
            t = pool.availability.next_available(t, nodes)
        launch, t = t, t + ready_delay
        preempt_at = _next_preemption(pool, launch, t, nodes, rng) if risky else math.inf
        wall = _wall_time(remaining, physics)
        end = min(t + wall, preempt_at)
        compute_usd += _charge(pool, gpus, launch, end, risky)
        billed += gpus * (end - launch)
        if preempt_at > t and math.isnan(first_start):
            first_start = t  # the job ran (a launch lost while starting up never did)
        if end >= t + wall:
            return CloudRun(
                pool=pool.name,
                start_s=first_start,
                end_s=end,
                compute_usd=compute_usd,
                data_usd=data_usd,
                gpu_seconds=billed,
                lost_gpu_seconds=lost,
                preemptions=preemptions,
            )
        ran = max(0.0, end - t)
        kept = _work_kept(ran, physics)
        remaining -= kept
        lost += gpus * (_work_done(ran, physics) - kept)
        preemptions += 1
        t = end
        ready_delay = pool.startup_latency_s + physics.restart_overhead_s


def draws_at_random(pool: CloudPool) -> bool:
    """Whether a run on the pool reads its random stream: preemptions drawn from a rate (a
    replayed availability trace, or no rate, decides everything without one)."""
    return pool.availability is None and pool.preemption_rate_per_hour > 0 and pool.max_restarts > 0


def _preemptible(pool: CloudPool) -> bool:
    """Spot pools are; an on-demand pool only when the policy file gives it a preemption rate
    (as the daemon's prior then expects preemptions there too)."""
    return pool.capacity_type is CapacityType.SPOT or pool.preemption_rate_per_hour > 0


def _wall_time(work_s: float, physics: JobPhysics) -> float:
    interval = physics.checkpoint_interval_s
    if not interval or interval >= work_s:
        return work_s
    return work_s + physics.checkpoint_write_s * (math.ceil(work_s / interval) - 1)


def _work_kept(ran_s: float, physics: JobPhysics) -> float:
    """Work saved by the checkpoints completed in `ran_s` seconds of running."""
    interval = physics.checkpoint_interval_s
    if not interval:
        return 0.0
    return math.floor(ran_s / (interval + physics.checkpoint_write_s)) * interval


def _work_done(ran_s: float, physics: JobPhysics) -> float:
    """Work computed in `ran_s` seconds of running (checkpoint writes are not work)."""
    interval = physics.checkpoint_interval_s
    if not interval:
        return ran_s
    cycles, into_cycle = divmod(ran_s, interval + physics.checkpoint_write_s)
    return cycles * interval + min(into_cycle, interval)


def _next_preemption(
    pool: CloudPool, launch: float, running_from: float, nodes: int, rng: random.Random | None
) -> float:
    """A replayed trace preempts from the launch on (instances can vanish while starting up);
    a preemption rate is a hazard of running, drawn from when the job runs."""
    if pool.availability is not None:
        return pool.availability.next_preemption(launch, nodes)
    if pool.preemption_rate_per_hour <= 0:
        return math.inf
    if rng is None:
        raise ValueError(f"{pool.name} draws preemptions at random: its run needs a random stream")
    return running_from + rng.expovariate(pool.preemption_rate_per_hour / HOUR)


def _charge(pool: CloudPool, gpus: int, start: float, end: float, risky: bool) -> float:
    if risky or pool.capacity_type is CapacityType.ON_DEMAND:
        return pool.compute_cost_usd(gpus, start, end)
    return gpus * pool.on_demand_price_per_gpu_hour_usd * (end - start) / HOUR
