"""The simulated world's state during a run: what a controller may look at.

`World` holds the jobs' runtime estimates and their `PendingJob`s as the decision core sees
them, the on-prem nodes and queue, the jobs running on-prem (by expected end), the cloud jobs
and the room each cloud pool has under its own cap, a replayed availability trace and the
policy's caps, and the cloud spend by day, by pool and per tenant by calendar month, as the
daemon's budgets count it. The event loop (`federator.sim.engine.Simulation`) changes it;
controllers read it.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType

from federator.core.models import DatasetNeed, PendingJob, Placement, Spend
from federator.core.policy import Caps
from federator.sim.cloud import CloudPool
from federator.sim.estimates import RuntimeEstimator
from federator.sim.onprem import BestEffortFifo, GpuNodes
from federator.sim.scenarios import Scenario
from federator.sim.traces import TraceJob

_NO_SPEND: Mapping[str, float] = MappingProxyType({})


def _check_submission_order(trace: Sequence[TraceJob]) -> None:
    """The engine admits jobs in trace order and numbers them so (on-prem FIFO goes by index):
    a trace out of submission order would admit a job before it arrived, or after one that
    arrived later. `read_trace`, `synthetic_trace` and `jittered` return sorted traces."""
    for index in range(1, len(trace)):
        if trace[index].submit_s < trace[index - 1].submit_s:
            raise ValueError(
                f"trace out of submission order: job {trace[index].job_id!r} "
                f"({trace[index].submit_s!r} s) after {trace[index - 1].job_id!r} "
                f"({trace[index - 1].submit_s!r} s)"
            )


class World:
    """The simulation state a controller may look at (read-only by convention)."""

    def __init__(self, trace: Sequence[TraceJob], scenario: Scenario) -> None:
        _check_submission_order(trace)
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
        # Where each on-prem job runs (the engine keeps it): (node, GPUs) per node it uses.
        self.placements: dict[int, Placement] = {}
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


def calendar_month(now: float) -> int:
    """The UTC calendar month (months since January 1970) of a time on the trace clock.

    The trace clock is read as seconds since 1970-01-01 00:00 UTC, the convention the day
    budget's `now // 86400` already follows: time 0 starts a day and a month, and months have
    their calendar lengths, as the daemon's tenant budgets count them."""
    moment = datetime.fromtimestamp(now, UTC)
    return (moment.year - 1970) * 12 + moment.month - 1


def _cap_room(jobs_cap: int | None, gpus_cap: int | None, jobs: int, gpus: int) -> float:
    """The GPUs one more job may take under a (jobs, GPUs) cap pair already holding jobs/GPUs
    (inf: no cap)."""
    if jobs_cap is not None and jobs + 1 > jobs_cap:
        return 0
    return math.inf if gpus_cap is None else gpus_cap - gpus
