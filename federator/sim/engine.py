"""The discrete-event loop: arrivals, on-prem admission, decision rounds, completions.

At each event time the order is fixed (and matches the daemon's view of the world):
1. finished jobs give back their GPUs (on-prem) or their cloud capacity;
2. jobs submitted now join the on-prem queue;
3. on-prem admission runs (BestEffortFIFO, `federator.sim.onprem`);
4. if a decision round is due, the controller (the decision core, or the oracle's plan) is
   asked about the queued jobs that need a decision, and bursts are carried out.

A job that was not admitted on arrival needs a decision. Decision rounds happen on a grid of
`decision_period_s` (the daemon's reconcile period), so bursty arrivals share one round. After
a `stay`, the controller names the time it wants to look at the job again; in between the job
costs nothing. Each bursted job's cloud life is computed when it bursts (`federator.sim.cloud`),
so the heap only ever holds completions, revisits and rounds.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Protocol

from federator import errors
from federator.core.models import CapacityType, DatasetNeed, PendingJob, Spend
from federator.core.policy import Caps, TenantRule
from federator.sim.cloud import CloudPool, CloudRun, JobPhysics, draws_at_random, run_in_cloud
from federator.sim.estimates import EstimateMode, RuntimeEstimator
from federator.sim.metrics import JobOutcomes, Summary, summarize
from federator.sim.onprem import BestEffortFifo, GpuNodes, Placement
from federator.sim.traces import TraceJob

_DONE = 0  # a running job finished (on-prem or cloud)
_REVISIT = 1  # a queued job's revisit time came
_ROUND = 2  # a decision round is due
_PROGRESS_STEP = 500  # arrivals per progress report
# A job still queued this long after the trace's last submission, with nothing running on-prem
# or in the cloud, can never run: every budget window, cap and replayed input has long since
# reset or ended, so nothing it waits for will change. (Its revisits double, so without this
# the run would spin until the clock overflowed.)
_GIVE_UP_AFTER_S = 400 * 86_400.0
_NO_SPEND: Mapping[str, float] = MappingProxyType({})
_DEFAULT_TENANT = "default"  # `PendingJob.tenant`'s, for a queue no tenant was worked out for


@dataclass(frozen=True, slots=True)
class Scenario:
    """The simulated world: the on-prem cluster, the cloud pools, what the policy is told."""

    onprem_gpus: int
    gpus_per_node: int = 8
    pools: tuple[CloudPool, ...] = ()
    estimate: EstimateMode = field(default_factory=lambda: EstimateMode("exact"))
    seed: int = 0
    physics: JobPhysics = field(default_factory=lambda: JobPhysics(checkpoint_interval_s=1800.0))
    dataset_bytes_per_job: int = 0  # traces carry no data sizes; 0 unless configured
    output_bytes_per_job: int = 0  # results each bursted job copies back (egress)
    decision_period_s: float = 30.0
    # The policy file's caps on what runs in the clouds at once (the decision policy's own,
    # copied here by `setup`): the world needs them to tell a job that waits for room from
    # one that waits for a price, and a job that can never run from one that can.
    caps: Caps = field(default_factory=Caps)
    # Trace queues whose jobs may not burst, each with the policy file's reason (its queue's
    # `burst` mode or a `burst_rules` entry, as `federator.policy.may_burst` reads them).
    burst_refused: Mapping[str, str] = field(default_factory=dict)
    # The tenant of each trace queue's jobs, as the daemon names it (`setup.trace_tenants`); a
    # queue not listed keeps the core's default tenant.
    tenants: Mapping[str, str] = field(default_factory=dict)
    # Where each tenant's jobs may go (the decision policy's rules, copied here by `setup`): the
    # pre-run checks need them to tell which pools a job's tenant can ever use.
    tenant_rules: Mapping[str, TenantRule] = field(default_factory=dict)

    def may_burst(self, job: TraceJob) -> bool:
        """Whether the policy file lets this job leave on-prem at all (its queue's rules)."""
        return job.queue not in self.burst_refused

    def tenant_of(self, job: TraceJob) -> str:
        return self.tenants.get(job.queue, _DEFAULT_TENANT)

    def tenant_allows(self, job: TraceJob, pool: CloudPool) -> bool:
        """Whether the job's tenant may use this pool: its allowed clusters and regions, as the
        core reads them (an empty set: no restriction)."""
        rule = self.tenant_rules.get(self.tenant_of(job))
        return rule is None or rule.allows(pool.cluster, pool.region)

    def tenant_scope(self, job: TraceJob) -> str | None:
        """Where the job's tenant may burst, as a person reads it ("tenant t may use only
        cloud-a in region us-east-1"); None when its tenant restricts neither."""
        tenant = self.tenant_of(job)
        rule = self.tenant_rules.get(tenant)
        if rule is None or not (rule.allowed_clusters or rule.allowed_regions):
            return None
        where = ", ".join(sorted(rule.allowed_clusters))
        if rule.allowed_regions:
            regions = sorted(rule.allowed_regions)
            listed = f"region{'s' if len(regions) > 1 else ''} {', '.join(regions)}"
            where = f"{where} in {listed}" if where else listed
        return f"tenant {tenant} may use only {where}"

    def why_tenant_has_no_pool(self, job: TraceJob) -> str | None:
        """Why the job's tenant can burst to no pool at all (its allowed clusters and regions
        hold none of the pools), or None if one is allowed."""
        scope = self.tenant_scope(job)
        if scope is None or not self.pools:  # no pools: no tenant's rule is why nothing bursts
            return None
        if any(self.tenant_allows(job, pool) for pool in self.pools):
            return None
        where = sorted({f"{pool.cluster} ({pool.region or 'no region'})" for pool in self.pools})
        return f"{scope}, where no cloud pool is (the pools are in {', '.join(where)})"

    def pools_of_its_type(self, job: TraceJob) -> list[CloudPool]:
        """The pools whose GPU type the job accepts (any, when it names none)."""
        return [pool for pool in self.pools if not job.gpu_type or pool.gpu_type == job.gpu_type]


# Not frozen, read-only by convention: an oracle run builds over a million, and a frozen
# dataclass's __init__ costs three times as much.
@dataclass(slots=True)
class Order:
    """What a controller wants done with one queued job."""

    job: int
    pool: CloudPool | None = None  # burst there now; None: leave it in the queue
    revisit_at: float | None = None  # when to ask about it again (None: never by itself)
    # When the policy expects the job to start on-prem if it stays (None: it makes no forecast);
    # the first one per job is kept in the outcomes, to be held against the real start.
    expected_start: float | None = None
    # Whether freed cloud room may change the answer, so a job that stayed for want of room is
    # asked again when a cloud job finishes. False: the controller knows its answer stays the
    # same whatever room frees (the oracle's unplanned jobs), and each such ask is wasted work.
    wake_on_room: bool = True


class Controller(Protocol):
    """Decides about queued jobs; the decision core's adapter and the oracle implement it.

    `decide` answers each due job at most once. It may leave out a job that freed cloud room
    woke (`World.woken_by_room`): that job stays as it was before the wake, waiting for room
    with the revisit it had, and is not counted as decided. (At a full cloud each cloud finish
    wakes every job short of room; the oracle leaves out the planned bursts it cannot place.)
    """

    name: str
    knob: float | None

    def prepare(self, world: World) -> None: ...

    def decide(self, world: World, now: float, due: Sequence[int]) -> Sequence[Order]: ...


@dataclass(frozen=True, slots=True)
class RunResult:
    """One finished run: its identity, per-job outcomes and summary figures."""

    policy: str
    knob: float | None
    knob_name: str
    onprem_gpus: int
    estimate: str
    seed: int
    outcomes: JobOutcomes
    summary: Summary
    decision_rounds: int
    decided_jobs: int
    max_onprem_gpus_used: int
    cloud_usd_by_pool: dict[str, float]  # the pools' own bills, kept apart from per-job charges


class World:
    """The simulation state a controller may look at (read-only by convention)."""

    def __init__(self, trace: Sequence[TraceJob], scenario: Scenario) -> None:
        self.trace = trace
        self.scenario = scenario
        self.nodes = GpuNodes(scenario.onprem_gpus, scenario.gpus_per_node)
        self.queue = BestEffortFifo()
        self.estimator = RuntimeEstimator(scenario.estimate, scenario.seed)
        self.estimates: list[float] = [math.nan] * len(trace)
        self.pending: list[PendingJob | None] = [None] * len(trace)
        # Running on-prem: job -> (gpus, start, expected end by the estimate); `running_version`
        # changes whenever the set changes, so controllers can cache derived views.
        self.running: dict[int, tuple[int, float, float]] = {}
        self.running_by_end: list[tuple[float, float, int, int]] = []  # (end, start, gpus, job)
        self.running_version = 0
        self.pool_used_gpus: dict[str, int] = {pool.name: 0 for pool in scenario.pools}
        self.pool_jobs: dict[str, int] = {pool.name: 0 for pool in scenario.pools}
        self.cloud_running: dict[int, tuple[CloudPool, int]] = {}
        self.cloud_usd_by_day: dict[int, float] = {}
        # Calendar month (`calendar_month`) -> tenant -> cloud spend booked in it.
        self.cloud_usd_by_tenant_month: dict[int, dict[str, float]] = {}
        self.cloud_usd_by_pool: dict[str, float] = {pool.name: 0.0 for pool in scenario.pools}
        # The due jobs of the current round that freed cloud room woke (see `Controller`).
        self.woken_by_room: set[int] = set()
        # Whether a pool replays an availability trace (else cloud room does not change by time).
        self.replays_availability = any(pool.availability is not None for pool in scenario.pools)
        # (caps, (now, GPUs and jobs per pool), rooms): the last `cloud_room_gpus` answer.
        self._last_rooms: tuple[Caps | None, tuple[object, ...], Mapping[str, int]] = (
            None,
            (),
            {},
        )

    def pending_job(self, job: int) -> PendingJob:
        """The job as the decision core sees it; built when first asked for (a run that never
        asks, like the oracle's, builds none)."""
        cached = self.pending[job]
        if cached is None:
            if math.isnan(self.estimates[job]):
                raise AssertionError("only submitted jobs have a PendingJob")
            cached = self.pending[job] = self._new_pending(job)
        return cached

    def estimate_at_submission(self, job: int) -> None:
        """The job is submitted: its runtime estimate is drawn now, in submission order, so a
        seeded noisy estimate does not depend on which jobs a controller looks at."""
        self.estimates[job] = self.estimator.estimate(self.trace[job])

    def _new_pending(self, job: int) -> PendingJob:
        spec = self.trace[job]
        datasets: tuple[DatasetNeed, ...] = ()
        if self.scenario.dataset_bytes_per_job:
            datasets = (DatasetNeed(f"data-{spec.job_id}", self.scenario.dataset_bytes_per_job),)
        return PendingJob(
            key=spec.job_id,
            gpus=spec.gpus,
            submitted_at=spec.submit_s,
            runtime_estimate_s=self.estimates[job],
            queue=spec.queue,
            tenant=self.scenario.tenant_of(spec),
            runtime_source=self.scenario.estimate.source,
            datasets=datasets,
            checkpoint_interval_s=self.scenario.physics.checkpoint_interval_s,
            deadline_at=spec.deadline_s,
            output_bytes=self.scenario.output_bytes_per_job,
            gpu_types=frozenset({spec.gpu_type}) if spec.gpu_type else frozenset(),
            burst_allowed=self.scenario.may_burst(spec),
        )

    def start_running(self, job: int, now: float) -> None:
        gpus, end = self.trace[job].gpus, now + self.estimates[job]
        self.running[job] = (gpus, now, end)
        bisect.insort(self.running_by_end, (end, now, gpus, job))
        self.running_version += 1

    def stop_running(self, job: int) -> None:
        gpus, start, end = self.running.pop(job)
        entry = (end, start, gpus, job)
        index = bisect.bisect_left(self.running_by_end, entry)
        if self.running_by_end[index] != entry:
            raise AssertionError(f"running job {job} is missing from the end-time index")
        del self.running_by_end[index]
        self.running_version += 1

    def cluster_usage(self) -> tuple[dict[str, int], dict[str, int]]:
        """(running cloud jobs, their GPUs) per cloud cluster, as the daemon counts them."""
        jobs: dict[str, int] = {}
        gpus: dict[str, int] = {}
        for pool in self.scenario.pools:
            jobs[pool.cluster] = jobs.get(pool.cluster, 0) + self.pool_jobs[pool.name]
            gpus[pool.cluster] = gpus.get(pool.cluster, 0) + self.pool_used_gpus[pool.name]
        return jobs, gpus

    def cloud_room_gpus(self, now: float, caps: Caps | None = None) -> Mapping[str, int]:
        """Per pool, the most GPUs one more job could launch there now under the pool's cap,
        its replayed availability and the policy's caps (room only; prices and budgets aside).
        `caps`: these instead of the scenario's copy of the policy's."""
        caps = self.scenario.caps if caps is None else caps
        # Asked before and after each decision round, mostly about an unchanged cloud: the last
        # answer is kept with what it was worked out from.
        when = now if self.replays_availability else None  # room changes by time only then
        state = (when, tuple(self.pool_used_gpus.values()), tuple(self.pool_jobs.values()))
        last_caps, last_state, last_rooms = self._last_rooms
        if state == last_state and (caps is last_caps or caps == last_caps):
            return last_rooms
        rooms = self._rooms_under(caps, now)
        self._last_rooms = (caps, state, rooms)
        return rooms

    def _rooms_under(self, caps: Caps, now: float) -> Mapping[str, int]:
        cluster_jobs, cluster_gpus = self.cluster_usage()
        in_total = _cap_room(
            caps.max_bursted_jobs,
            caps.max_bursted_gpus,
            len(self.cloud_running),
            sum(self.pool_used_gpus.values()),
        )
        in_cluster = {
            cluster: _cap_room(
                caps.cluster_max_bursted_jobs.get(cluster),
                caps.cluster_max_bursted_gpus.get(cluster),
                jobs,
                cluster_gpus[cluster],
            )
            for cluster, jobs in cluster_jobs.items()
        }
        rooms: dict[str, int] = {}
        for pool in self.scenario.pools:
            room = min(
                pool.max_gpus - self.pool_used_gpus[pool.name],
                pool.largest_launch_gpus,
                in_total,
                in_cluster[pool.cluster],
            )
            if pool.availability is not None and pool.availability.next_available(now, 1) > now:
                room = 0
            rooms[pool.name] = max(0, int(room))
        return MappingProxyType(rooms)

    def spend(self, now: float) -> Spend:
        """What runs in the clouds now, as the core's budgets and caps count it: in total and per
        cluster (the daemon counts its placed jobs the same way), so caps hold across rounds."""
        cluster_jobs, cluster_gpus = self.cluster_usage()
        return Spend(
            last_hour_usd=self.burn_usd_per_hour(now),
            today_usd=self.cloud_usd_by_day.get(int(now // 86400), 0.0),
            tenant_month_usd=self.tenant_month_usd(now),
            bursted_jobs=len(self.cloud_running),
            bursted_gpus=sum(self.pool_used_gpus.values()),
            cluster_bursted_jobs=cluster_jobs,
            cluster_bursted_gpus=cluster_gpus,
        )

    def tenant_month_usd(self, now: float) -> Mapping[str, float]:
        """Each tenant's cloud spend in the calendar month of `now` (a copy: a Spend is what
        was spent when it was made)."""
        month = self.cloud_usd_by_tenant_month.get(calendar_month(now))
        return dict(month) if month else _NO_SPEND

    def book_cloud_cost(self, job: int, cost_usd: float, now: float) -> None:
        """Count a burst's whole cost in the day and, for its tenant, the calendar month it
        bursts in, as the daemon's budgets count a new burst (docs/cost-model.md §2)."""
        day = int(now // 86400)
        self.cloud_usd_by_day[day] = self.cloud_usd_by_day.get(day, 0.0) + cost_usd
        tenant = self.scenario.tenant_of(self.trace[job])
        month = self.cloud_usd_by_tenant_month.setdefault(calendar_month(now), {})
        month[tenant] = month.get(tenant, 0.0) + cost_usd

    def burn_usd_per_hour(self, now: float) -> float:
        """What the running cloud jobs cost per hour at current prices."""
        return sum(
            pool.price_at(now) * self.pool_used_gpus[pool.name] for pool in self.scenario.pools
        )


class Simulation:
    """One run of one controller over one trace."""

    def __init__(
        self,
        trace: Sequence[TraceJob],
        scenario: Scenario,
        controller: Controller,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        check_fits(trace, scenario, controller.name)
        self.world = World(trace, scenario)
        self.controller = controller
        self.progress = progress
        self.outcomes = JobOutcomes.empty(len(trace))
        self.placements: dict[int, Placement] = {}
        self._heap: list[tuple[float, int, int, int]] = []
        self._seq = 0
        self._round_times: set[float] = set()
        self._due: set[int] = set()
        self._next_revisit: dict[int, float] = {}
        # Per queued job, the time of the heap entry that will bring its `_next_revisit` (at or
        # before it): a job asked again and again at a full cloud moves its revisit later each
        # time, and one entry, pushed on again when it comes early, does for all of them.
        self._revisit_entry: dict[int, float] = {}
        # Queued jobs that stayed while no cloud pool had room for them: asked again as soon as
        # cloud room frees (the daemon asks every pass), not at their doubling revisit.
        self._short_of_room: set[int] = set()
        # Each job's (GPUs, GPU type, queue): what freed cloud room means to it (`_room_returns`).
        self._shapes = [(spec.gpus, spec.gpu_type, spec.queue) for spec in trace]
        # Per job, the pools whose room matters to it (`_pools_for_room`) and, when that is not
        # every pool, their names: a job short of room is woken only by room freed in one of
        # those (`_wake_short_of_room`); None for the jobs any freed room may help.
        self._room_pools = _pools_for_room(trace, scenario, controller.name)
        everywhere = len(scenario.pools)
        self._room_pool_names: list[frozenset[str] | None] = [
            None if len(pools) == everywhere else frozenset(pool.name for pool in pools)
            for pools in self._room_pools
        ]
        self._some_jobs_use_some_pools = any(names is not None for names in self._room_pool_names)
        self._max_onprem_used = 0
        self._admission_may_change = False  # see `_admit`
        self._queued = self.world.queue.jobs  # live: membership and set operations in C
        self.decision_rounds = 0
        self.decided_jobs = 0

    def run(self) -> RunResult:
        self.controller.prepare(self.world)
        trace, arrivals, heap, queued = self.world.trace, 0, self._heap, self._queued
        # Submission times, then inf once all have arrived (the loop runs ~50,000 times).
        submits = [spec.submit_s for spec in trace] + [math.inf]
        every_event = self.world.scenario.decision_period_s <= 0
        unreported = 0  # arrivals not yet told to `progress` (a bar needs no per-event update)
        self._record_submissions()
        while arrivals < len(trace) or heap:
            now = min(submits[arrivals], heap[0][0] if heap else math.inf)
            round_due = self._pop_events(now)
            first = arrivals
            while submits[arrivals] <= now:
                self._submit(arrivals)
                arrivals += 1
            unreported += arrivals - first
            if self.progress is not None and unreported >= _PROGRESS_STEP:
                self.progress(unreported)
                unreported = 0
            self._admit(now)
            for job in range(first, arrivals):
                if job in queued:
                    self._make_due(job, now)
            if round_due or (every_event and self._due):
                self._decision_round(now)
        if self.progress is not None and unreported:
            self.progress(unreported)
        return self._result()

    # --- events --------------------------------------------------------------------------

    def _push(self, when: float, kind: int, job: int) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (when, kind, self._seq, job))

    def _pop_events(self, now: float) -> bool:
        round_due = False
        while self._heap and self._heap[0][0] <= now:
            _, kind, _, job = heapq.heappop(self._heap)
            if kind == _DONE:
                self._finish(job, now)
            elif kind == _REVISIT:
                self._revisit_came(job, now)
            else:
                self._round_times.discard(now)
                round_due = True
        return round_due

    def _revisit_came(self, job: int, now: float) -> None:
        if self._revisit_entry.get(job) == now:
            del self._revisit_entry[job]
        if job not in self._queued:
            return
        wanted = self._next_revisit.get(job)
        if wanted == now:
            self._make_due(job, now)
        elif wanted is not None and wanted > now and job not in self._revisit_entry:
            self._revisit_entry[job] = wanted  # moved later since this entry was pushed
            self._push(wanted, _REVISIT, job)

    def _revisit_at(self, job: int, at: float) -> None:
        self._next_revisit[job] = at
        entry = self._revisit_entry.get(job)
        if entry is None or at < entry:
            self._revisit_entry[job] = at
            self._push(at, _REVISIT, job)

    def _make_due(self, job: int, now: float) -> None:
        self._due.add(job)
        self._round_for(now)

    def _round_for(self, now: float) -> None:
        """Schedule the decision round that takes the jobs due at `now` (the next on the grid)."""
        period = self.world.scenario.decision_period_s
        if period <= 0:
            return
        at = math.ceil(now / period) * period
        if at not in self._round_times:
            self._round_times.add(at)
            self._push(at, _ROUND, -1)

    # --- on-prem -------------------------------------------------------------------------

    def _submit(self, job: int) -> None:
        self.world.estimate_at_submission(job)
        self.world.queue.push(job, job, self.world.trace[job].gpus)
        self._admission_may_change = True

    def _admit(self, now: float) -> None:
        # A scan admits until nothing queued fits; only an arrival or GPUs given back can change
        # that (a burst only takes a job out of the queue), so other events skip the scan.
        if not self._admission_may_change:
            return
        self._admission_may_change = False
        world = self.world
        for job, placement in world.queue.admit(world.nodes):
            self.placements[job] = placement
            spec = world.trace[job]
            self.outcomes.start_s[job] = now
            world.start_running(job, now)
            self._due.discard(job)
            self._push(now + spec.duration_s, _DONE, job)
        used = world.nodes.total_gpus - world.nodes.free_gpus
        self._max_onprem_used = max(self._max_onprem_used, used)

    def _finish(self, job: int, now: float) -> None:
        world = self.world
        self.outcomes.end_s[job] = now
        self.outcomes.finished_count[job] += 1
        world.estimator.observe_finished(world.trace[job])
        if job in self.placements:
            world.nodes.release(self.placements.pop(job))
            world.stop_running(job)
            self._admission_may_change = True
        else:
            pool, gpus = world.cloud_running.pop(job)
            rooms_before = self._rooms_if_some_jobs_use_some_pools(now)
            world.pool_used_gpus[pool.name] -= gpus
            world.pool_jobs[pool.name] -= 1
            self._wake_short_of_room(now, self._freed_pools(pool, rooms_before, now))

    def _rooms_if_some_jobs_use_some_pools(self, now: float) -> Mapping[str, int] | None:
        """The room before a cloud finish, when some job short of room may use only some pools
        (so which pools the finish frees room in decides whether it is woken)."""
        if not self._some_jobs_use_some_pools or not self._short_of_room:
            return None
        return self.world.cloud_room_gpus(now)

    def _freed_pools(
        self, pool: CloudPool, rooms_before: Mapping[str, int] | None, now: float
    ) -> frozenset[str]:
        """The pools a cloud finish in `pool` frees room in: its own, and any whose room a cap
        the finish was counted under (all clouds', its cluster's) now lets grow."""
        if rooms_before is None:
            return frozenset((pool.name,))
        rooms = self.world.cloud_room_gpus(now)
        grown = {name for name, room in rooms.items() if room > rooms_before[name]}
        return frozenset(grown | {pool.name})

    def _wake_short_of_room(self, now: float, freed: frozenset[str]) -> None:
        """Ask again the jobs short of room that may use a pool `freed` has room in again; the
        others keep waiting for room (and their timed retry)."""
        woken = self._short_of_room & self._queued
        still_short: set[int] = set()
        if self._some_jobs_use_some_pools:
            names = self._room_pool_names
            still_short = {
                job for job in woken if (mine := names[job]) is not None and mine.isdisjoint(freed)
            }
            woken -= still_short
        self._short_of_room.clear()
        self._short_of_room.update(still_short)
        self.world.woken_by_room.update(woken)
        if woken:  # they share one round
            self._due.update(woken)
            self._round_for(now)

    # --- decisions -----------------------------------------------------------------------

    def _decision_round(self, now: float) -> None:
        queued = self._queued
        due_jobs = self._due & queued
        self._due.clear()
        if not due_jobs:
            self.world.woken_by_room.clear()
            return
        self.decision_rounds += 1
        due = sorted(due_jobs)  # queue order: jobs are numbered in submission order
        orders = self.controller.decide(self.world, now, due)
        left_out = self._keep_left_out(due_jobs, orders) if len(orders) < len(due) else 0
        self.world.woken_by_room.clear()
        self.decided_jobs += len(due) - left_out
        stayed: list[Order] = []
        for order in orders:
            if order.job not in queued:
                continue
            if order.pool is not None:
                self._burst(order.job, order.pool, now)
            else:
                stayed.append(order)
        # After the round's bursts: what room is left is what the jobs that stayed saw.
        wakeable = any(order.wake_on_room for order in stayed)
        rooms = self.world.cloud_room_gpus(now) if wakeable and self.world.scenario.pools else {}
        shapes: dict[tuple[int, str, str], float | None] = {}  # see `_room_returns`
        short_of_room, shape_of = self._short_of_room, self._shapes
        for order in stayed:  # at a full cloud, a round can hold the whole queue: kept lean
            job = order.job
            if order.expected_start is not None:
                self._note_forecast(order, now)
            revisit = order.revisit_at
            if not order.wake_on_room:
                short_of_room.discard(job)
            elif rooms:
                shape = shape_of[job]
                if shape in shapes:
                    returns = shapes[shape]
                else:
                    returns = shapes[shape] = self._room_returns(job, rooms, now)
                if returns is not None:  # short of room: woken when room frees
                    short_of_room.add(job)
                    revisit = returns if revisit is None else min(revisit, returns)
            if revisit is not None and revisit < math.inf:
                self._revisit_at(job, revisit if revisit > now else now)
        if stayed:
            self._give_up_if_stuck(stayed, now)

    def _keep_left_out(self, due: set[int], orders: Sequence[Order]) -> int:
        """Due jobs `decide` left out wait for room again, as before their wake (their revisits
        stand); only jobs freed room woke may be left out. Returns how many were."""
        left_out = due.difference([order.job for order in orders])
        if not self.world.woken_by_room.issuperset(left_out):
            raise AssertionError(f"{self.controller.name} left out a job freed room did not wake")
        self._short_of_room.update(left_out)
        return len(left_out)

    def _give_up_if_stuck(self, stayed: Sequence[Order], now: float) -> None:
        """A clear error for jobs that can never run (see _GIVE_UP_AFTER_S)."""
        world = self.world
        if world.running or world.cloud_running:
            return
        if now - world.trace[-1].submit_s < _GIVE_UP_AFTER_S:
            return
        names = ", ".join(world.trace[order.job].job_id for order in stayed[:5])
        more = f" and {len(stayed) - 5} more" if len(stayed) > 5 else ""
        raise errors.UserError(
            f"job(s) {names}{more} can never run: they do not fit the simulated on-prem "
            f"cluster and the {self.controller.name} policy refuses every cloud option, "
            f"{(now - world.trace[-1].submit_s) / 86_400:.0f} simulated days after the last "
            f"submission with nothing else running (is a budget or cap below what one such job "
            f"needs?)"
        )

    def _room_returns(self, job: int, rooms: Mapping[str, int], now: float) -> float | None:
        """None when a pool the job may use has room for it; else when a replayed trace next
        lets one launch it (inf: not by itself). Jobs of one size, GPU type and queue get the
        same answer in a round (`_decision_round` keeps it: at a full cloud the whole queue
        asks)."""
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

    def _note_forecast(self, order: Order, now: float) -> None:
        outcomes, expected = self.outcomes, order.expected_start
        if expected is None or not math.isfinite(expected):
            return
        if math.isnan(outcomes.forecast_start_s[order.job]):  # the first forecast is the one
            outcomes.forecast_at_s[order.job] = now
            outcomes.forecast_start_s[order.job] = expected

    def _burst(self, job: int, pool: CloudPool, now: float) -> None:
        world, spec = self.world, self.world.trace[job]
        if world.pool_used_gpus[pool.name] + spec.gpus > pool.max_gpus:
            raise AssertionError(f"controller over-filled {pool.name}")
        if spec.gpus > pool.largest_launch_gpus:
            raise AssertionError(f"controller bursted {spec.job_id} to {pool.name}, too small ever")
        world.queue.remove(job)
        self._next_revisit.pop(job, None)
        rng = None
        if draws_at_random(pool):
            rng = random.Random(f"{world.scenario.seed}:cloud:{spec.job_id}:{pool.name}")
        run = run_in_cloud(
            pool,
            spec.gpus,
            spec.duration_s,
            now,
            world.scenario.physics,
            world.scenario.dataset_bytes_per_job,
            rng,
            world.scenario.output_bytes_per_job,
        )
        self._record_cloud(job, run, now)
        self.outcomes.pool[job] = world.scenario.pools.index(pool)
        world.pool_used_gpus[pool.name] += spec.gpus
        world.pool_jobs[pool.name] += 1
        world.cloud_running[job] = (pool, spec.gpus)
        self._push(run.end_s, _DONE, job)

    def _record_cloud(self, job: int, run: CloudRun, now: float) -> None:
        outcomes = self.outcomes
        outcomes.bursted[job] = True
        outcomes.start_s[job] = run.start_s
        outcomes.cost_usd[job] = run.cost_usd
        outcomes.data_usd[job] = run.data_usd
        outcomes.cloud_gpu_s[job] = run.gpu_seconds
        outcomes.lost_gpu_s[job] = run.lost_gpu_seconds
        outcomes.preemptions[job] = run.preemptions
        pool_bills = self.world.cloud_usd_by_pool
        pool_bills[run.pool] = pool_bills.get(run.pool, 0.0) + run.cost_usd
        self.world.book_cloud_cost(job, run.cost_usd, now)

    # --- results -------------------------------------------------------------------------

    def _record_submissions(self) -> None:
        for index, spec in enumerate(self.world.trace):
            self.outcomes.submit_s[index] = spec.submit_s
            self.outcomes.duration_s[index] = spec.duration_s
            self.outcomes.gpus[index] = spec.gpus
            if spec.deadline_s is not None:
                self.outcomes.deadline_s[index] = spec.deadline_s

    def _result(self) -> RunResult:
        check_invariants(self.outcomes, self._max_onprem_used, self.world.scenario.onprem_gpus)
        billed = sum(self.world.cloud_usd_by_pool.values())
        if not math.isclose(
            billed, float(self.outcomes.cost_usd.sum()), rel_tol=1e-9, abs_tol=1e-6
        ):
            raise AssertionError(f"pools billed ${billed:.6f}, jobs were charged a different sum")
        controller = self.controller
        return RunResult(
            policy=controller.name,
            knob=controller.knob,
            knob_name=getattr(controller, "knob_name", ""),
            onprem_gpus=self.world.scenario.onprem_gpus,
            estimate=self.world.scenario.estimate.label(),
            seed=self.world.scenario.seed,
            outcomes=self.outcomes,
            summary=summarize(self.outcomes, self.world.scenario.onprem_gpus),
            decision_rounds=self.decision_rounds,
            decided_jobs=self.decided_jobs,
            max_onprem_gpus_used=self._max_onprem_used,
            cloud_usd_by_pool=dict(self.world.cloud_usd_by_pool),
        )


def calendar_month(now: float) -> int:
    """The UTC calendar month (months since January 1970) of a time on the trace clock.

    The trace clock is read as seconds since 1970-01-01 00:00 UTC, the convention the day
    budget's `now // 86400` already follows: time 0 starts a day and a month, and months have
    their calendar lengths, as the daemon's tenant budgets count them."""
    moment = datetime.fromtimestamp(now, UTC)
    return (moment.year - 1970) * 12 + moment.month - 1


def _pools_for_room(
    trace: Sequence[TraceJob], scenario: Scenario, policy: str
) -> list[tuple[CloudPool, ...]]:
    """Per job, the pools whose room matters to it: those of its GPU type its tenant may use
    (clusters and regions) and the policy bursts to (a baseline, only one capacity type), as
    the pre-run check counts them. Room in a pool the policy never bursts to neither makes a
    job wait for room nor wakes it. Jobs of one GPU type and queue (so one tenant) share the
    answer."""
    capacity = _BASELINE_CAPACITY.get(policy)
    by_kind: dict[tuple[str, str], tuple[CloudPool, ...]] = {}
    pools: list[tuple[CloudPool, ...]] = []
    for spec in trace:
        kind = (spec.gpu_type, spec.queue)
        if kind not in by_kind:
            by_kind[kind] = tuple(
                pool
                for pool in scenario.pools_of_its_type(spec)
                if scenario.tenant_allows(spec, pool)
                and (capacity is None or pool.capacity_type is capacity)
            )
        pools.append(by_kind[kind])
    return pools


def check_invariants(outcomes: JobOutcomes, max_onprem_used: int, onprem_gpus: int) -> None:
    """Each job finished exactly once; on-prem never over capacity; cost = sum of charges."""
    unfinished = [int(i) for i in (outcomes.finished_count != 1).nonzero()[0][:5]]
    if unfinished:
        raise AssertionError(f"jobs did not finish exactly once (first indexes: {unfinished})")
    if max_onprem_used > onprem_gpus:
        raise AssertionError(f"on-prem used {max_onprem_used} of {onprem_gpus} GPUs")
    if (outcomes.cost_usd[~outcomes.bursted] != 0).any():
        raise AssertionError("a job that never bursted was charged for the cloud")
    if (outcomes.start_s < outcomes.submit_s).any() or (outcomes.end_s < outcomes.start_s).any():
        raise AssertionError("a job started before its submission or ended before its start")


def _cap_room(jobs_cap: int | None, gpus_cap: int | None, jobs: int, gpus: int) -> float:
    """The GPUs one more job may take under a (jobs, GPUs) cap pair already holding jobs/GPUs
    (inf: no cap)."""
    if jobs_cap is not None and jobs + 1 > jobs_cap:
        return 0
    return math.inf if gpus_cap is None else gpus_cap - gpus


# The pools a baseline strategy bursts to (the core's `cheapest(job, capacity)`); the others
# may use every pool.
_BASELINE_CAPACITY = {
    "always": CapacityType.ON_DEMAND,
    "starburst": CapacityType.ON_DEMAND,
    "greedy-spot": CapacityType.SPOT,
}


def never_fit_on_prem(trace: Sequence[TraceJob], scenario: Scenario) -> list[int]:
    """The jobs no on-prem placement can ever hold, even on an empty cluster."""
    never_fit = {
        size
        for size in {job.gpus for job in trace}
        if GpuNodes(scenario.onprem_gpus, scenario.gpus_per_node).place(size) is None
    }
    return [index for index, job in enumerate(trace) if job.gpus in never_fit]


def check_fits(trace: Sequence[TraceJob], scenario: Scenario, policy: str) -> None:
    """Every job must be able to run somewhere, or the run can never finish: on-prem, or in a
    cloud pool the policy bursts to that takes its GPU type and size under every cap."""
    too_big = [trace[job] for job in never_fit_on_prem(trace, scenario)]
    if not too_big:
        return
    onprem = (
        f"more than the simulated on-prem cluster ({scenario.onprem_gpus} GPUs in nodes of "
        f"{scenario.gpus_per_node}) can ever place"
    )
    if policy == "never" or not scenario.pools:
        first = too_big[0]
        raise errors.UserError(
            f"job {first.job_id} needs {first.gpus} GPUs, {onprem} ({len(too_big)} such "
            f"job(s)); raise --onprem-gpus or allow bursting"
        )
    stranded = [(job, why) for job in too_big if (why := _why_no_pool(job, scenario, policy))]
    if stranded:
        first, why = stranded[0]
        raise errors.UserError(
            f"job {first.job_id} needs {first.gpus} GPUs, {onprem}, and {why} "
            f"({len(stranded)} such job(s)); it could never run: raise --onprem-gpus, or "
            f"change the trace or the policy file"
        )


def _why_no_pool(job: TraceJob, scenario: Scenario, policy: str) -> str | None:
    """Why no cloud pool can ever take this job under this policy, or None if one can."""
    if not scenario.may_burst(job):
        return f"its queue {job.queue!r} may not burst ({scenario.burst_refused[job.queue]})"
    offered = {pool.gpu_type for pool in scenario.pools}
    if job.gpu_type and job.gpu_type not in offered:
        return (
            f"asks for gpu_type {job.gpu_type!r}, which no cloud pool offers (pools' GPU "
            f"types: {', '.join(sorted(offered))}; matching is case-sensitive)"
        )
    allowed, why = _pools_its_tenant_allows(job, scenario)
    if why is not None:
        return why
    scope = scenario.tenant_scope(job)
    capacity = _BASELINE_CAPACITY.get(policy)
    pools = [pool for pool in allowed if capacity is None or pool.capacity_type is capacity]
    if not pools:
        where = f" ({scope})" if scope else ""
        return (
            f"the {policy} policy bursts only to {capacity} pools, and none{where} offers its "
            f"GPU type"
        )
    limits = [_pool_limit(pool, scenario.caps) for pool in pools]
    if any(room >= job.gpus for room, _ in limits):
        return None
    each = "; ".join(f"{pool.name} {why}" for pool, (_, why) in zip(pools, limits, strict=True))
    if scope is None:
        return "no cloud pool can ever take it: " + each
    most = max(room for room, _ in limits)
    return f"{scope}, whose pools have at most {most} GPUs per job: {each}"


def _pools_its_tenant_allows(
    job: TraceJob, scenario: Scenario
) -> tuple[list[CloudPool], str | None]:
    """The pools of the job's GPU type its tenant may use, or why there are none."""
    if (nowhere := scenario.why_tenant_has_no_pool(job)) is not None:
        return [], nowhere
    mine = [pool for pool in scenario.pools if scenario.tenant_allows(job, pool)]
    allowed = [pool for pool in mine if not job.gpu_type or pool.gpu_type == job.gpu_type]
    if allowed:
        return allowed, None
    types = ", ".join(sorted({pool.gpu_type for pool in mine}))
    return [], (
        f"{scenario.tenant_scope(job)}, whose pools do not offer gpu_type {job.gpu_type!r} "
        f"(their GPU types: {types})"
    )


def _pool_limit(pool: CloudPool, caps: Caps) -> tuple[int, str]:
    """The most GPUs one job can ever get in this pool, and what sets that limit."""
    limits = [(pool.max_gpus, f"has max_gpus {pool.max_gpus}")]
    if pool.availability is not None:
        most = max(pool.availability.alive)
        limits.append(
            (pool.largest_launch_gpus, f"never has more than {most} instance(s) of "
             f"{pool.gpus_per_node} GPUs in its --spot-trace")
        )  # fmt: skip
    cluster_jobs = caps.cluster_max_bursted_jobs.get(pool.cluster)
    if cluster_jobs is not None and cluster_jobs < 1:
        limits.append((0, f"is in cluster {pool.cluster} with max_bursted_jobs {cluster_jobs}"))
    cluster_gpus = caps.cluster_max_bursted_gpus.get(pool.cluster)
    if cluster_gpus is not None:
        limits.append(
            (cluster_gpus, f"is in cluster {pool.cluster} with max_bursted_gpus {cluster_gpus}")
        )
    if caps.max_bursted_jobs is not None and caps.max_bursted_jobs < 1:
        limits.append((0, f"is under burst.max_bursted_jobs {caps.max_bursted_jobs}"))
    if caps.max_bursted_gpus is not None:
        gpus = caps.max_bursted_gpus
        limits.append((gpus, f"is under burst.max_bursted_gpus {gpus}"))
    return min(limits, key=lambda limit: limit[0])
