"""The federation loop: observe every cluster, converge what was placed, decide, act, collect.

One pass (`Federation.run_once(now)`) reads the on-prem and cloud snapshots (from caches, so a
dead cloud never blocks it), carries out one convergence step per placement record
(`planning.converge`: mirror, finish, re-place after a preemption or a lost cluster, finish a
placement a crash interrupted), asks the cost model (`federator.core.placements.decide`) about
every waiting job, bursts the ones it sends to the cloud, pulls back copies that have not
started when on-prem has room, and deletes the copies no record vouches for.

Each pass is idempotent: it re-reads the world and only ever moves it towards the records, so
running it after a crash, twice, or in two processes at once does the same thing (see
docs/design.md §11). A failure on one job is logged and that job retried next pass; it never
stops the pass for the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from federator import errors, metrics
from federator.core.decisions import Decision, DecisionKind, Round
from federator.core.models import Spend
from federator.core.policy import DecisionPolicy
from federator.federation import fencing, planning, rounds
from federator.federation.blocks import BlockCause, Pool, PoolBlocks
from federator.federation.cluster_gauges import ClusterGauges
from federator.federation.collection import Collection
from federator.federation.data_problems import DataProblems, ToldOnJobs
from federator.federation.deciding import Decide, Decider
from federator.federation.forecasts import WaitForecasts
from federator.federation.planning import Step, StepKind
from federator.federation.pool_blocking import PoolBlocking
from federator.federation.ports import (
    CloudPort,
    CloudView,
    CopyRequest,
    CopyState,
    CopyView,
    DataGate,
    DataReadiness,
    DataSizes,
    OffersProvider,
    OnPremJob,
    OnPremPort,
    OnPremView,
    PoolBlockStore,
    SpendStore,
    Terminal,
)
from federator.federation.preemption_evidence import PreemptionEvidence
from federator.federation.records import Phase, PlacementRecord, copy_name
from federator.federation.reports import PassReport
from federator.federation.spend_ledger import SpendLedger

log = structlog.get_logger(__name__)

__all__ = ["Federation", "FederationSettings", "PassReport"]


@dataclass(frozen=True, slots=True)
class FederationSettings:
    """The loop's knobs; the daemon fills them from the policy file (`burst`, `clusters`)."""

    instance: str = "federator"
    interval_s: float = 10.0
    lost_cluster_timeout_s: Mapping[str, float] = field(default_factory=dict)
    default_lost_cluster_timeout_s: float = 300.0
    max_replacements: int = 3
    replace_backoff_s: float = 30.0
    replace_max_backoff_s: float = 600.0
    block_pool_for_s: float = 1800.0  # after a preemption, the pool offers 0 GPUs this long
    # A copy whose pods have not started this long after it could is re-placed (None: never).
    start_timeout_s: float | None = 900.0
    pull_back: bool = True
    pull_back_after_s: float = 0.0  # a copy younger than this is not pulled back (hysteresis)
    gc_grace_s: float = 60.0
    burst_enabled: bool = True
    min_pending_gpus: int = 0  # below this many waiting GPUs, every job stays (policy file)
    # How many hours of observation a pool's prior preemption rate is worth (policy file:
    # `prices.prior_weight`, 24 h by default), as the offers builder weighs it.
    preemption_prior_strength_h: float = 24.0


class Federation:
    """The federation loop over one on-prem cluster and any number of cloud clusters."""

    def __init__(
        self,
        *,
        onprem: OnPremPort,
        clouds: Mapping[str, CloudPort],
        policy: DecisionPolicy | Callable[[], DecisionPolicy],
        offers: OffersProvider,
        settings: FederationSettings,
        data: DataGate | None = None,
        sizes: DataSizes | None = None,
        decide: Decide | None = None,
        may_write: Callable[[], bool] = lambda: True,
        spend_store: SpendStore | None = None,
        size_hint: Callable[[str], int | None] = lambda dataset: None,
        stored_preemption_exposure_h: Callable[[tuple[str, str]], float] = lambda pool: 0.0,
        pool_block_store: PoolBlockStore | None = None,
    ) -> None:
        self.may_write = may_write
        # Every write goes through the fence, checked right before it (see `fencing`).
        fence = fencing.Fence(lambda: self.may_write())
        self.onprem: OnPremPort = fencing.FencedOnPrem(onprem, fence)
        self.clouds: dict[str, CloudPort] = {
            name: fencing.FencedCloud(cloud, fence) for name, cloud in clouds.items()
        }
        self._policy = policy
        self.settings = settings
        self.data: DataGate | None = None if data is None else fencing.FencedData(data, fence)
        # The budgets' spend, with what gone jobs spent (the spend book in `spend_store`).
        self.spend_ledger = SpendLedger(
            None if spend_store is None else fencing.FencedSpendStore(spend_store, fence),
            may_write=lambda: self.may_write(),
        )
        # The job's data on its cluster, and the replica failures told to it.
        self.data_problems = DataProblems(
            self.onprem, ToldOnJobs(onprem, fence), data=lambda: self.data, sizes=sizes
        )
        # Pools that get no new job for a while after a preemption or a start timeout.
        self.pool_blocking = PoolBlocking(
            None
            if pool_block_store is None
            else fencing.FencedPoolBlockStore(pool_block_store, fence),
            may_write=lambda: self.may_write(),
            block_for_s=lambda: self.settings.block_pool_for_s,
        )
        # This process's preemptions and copy-hours per pool, in the offers' preemption rates.
        self.preemption_evidence = PreemptionEvidence(
            prior_strength_h=lambda: self.settings.preemption_prior_strength_h,
            stored_exposure_h=stored_preemption_exposure_h,
        )
        # Asks the cost model about the waiting jobs, on the offers as they stand.
        self.decider = Decider(
            offers=offers,
            decide=decide,
            policy=lambda: self.policy,
            min_pending_gpus=lambda: self.settings.min_pending_gpus,
            sizes=sizes,
            size_hint=size_hint,
            pool_blocking=self.pool_blocking,
            preemption_evidence=self.preemption_evidence,
        )
        self.gauges = ClusterGauges()  # what each pass observed, as metrics
        # uid -> attempt of the placements this process made, only to notice a record that
        # disappears without us removing it (a diagnosis aid, never a source of truth)
        self._placed: dict[str, int] = {}
        # Deletes the copies no record vouches for, at the end of each pass.
        self.collection = Collection(
            self.clouds, data=lambda: self.data, grace_s=lambda: self.settings.gc_grace_s
        )
        self.last_report: PassReport | None = None  # for /debug/decisions and tests
        self.forecasts = WaitForecasts()  # on-prem wait forecasts against real waits (metrics)

    @property
    def policy(self) -> DecisionPolicy:
        return self._policy() if callable(self._policy) else self._policy

    @property
    def preemptions(self) -> dict[Pool, int]:
        """The preemptions this process met, per pool (new evidence for the stored rates)."""
        return self.preemption_evidence.preemptions

    @property
    def exposure_h(self) -> dict[Pool, float]:
        """The copy-hours that ran in each pool while this process watched."""
        return self.preemption_evidence.exposure_h

    @property
    def spend_store(self) -> SpendStore | None:
        """Where the spend book is kept (None: budgets count only the jobs still there)."""
        return self.spend_ledger.store

    @spend_store.setter
    def spend_store(self, store: SpendStore | None) -> None:
        self.spend_ledger.store = store

    @property
    def pool_block_store(self) -> PoolBlockStore | None:
        return self.pool_blocking.store

    @property
    def blocks(self) -> PoolBlocks:
        """The pools that offer 0 GPUs for a while, and why."""
        return self.pool_blocking.blocks

    @property
    def blocked_until(self) -> dict[Pool, float]:
        """Until when each pool offers 0 GPUs (epoch seconds), ended blocks included."""
        return self.pool_blocking.blocked_until

    # ---- the loop ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, clock: Callable[[], float] = time.time) -> None:
        """One pass every `interval_s` until `stop` is set; errors are logged, never fatal."""
        while not stop.is_set():
            one_pass = asyncio.create_task(self.run_once(clock()), name="federation-pass")
            watchdog = asyncio.create_task(self._report_if_stuck(one_pass))
            try:
                await one_pass
            except Exception:  # one place that keeps the loop alive through a bad pass
                log.exception("federation_pass_failed")
            finally:
                watchdog.cancel()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.settings.interval_s)

    async def _report_if_stuck(self, one_pass: asyncio.Task[PassReport]) -> None:
        """Name what a pass waits on once it takes far longer than its interval.

        A pass only reads caches and makes bounded requests, so a long one is a bug or a
        cluster that accepts connections and never answers; the await chain says which.
        """
        stuck_after_s = max(30.0, 6 * self.settings.interval_s)
        await asyncio.sleep(stuck_after_s)
        while not one_pass.done():
            log.warning(
                "federation_pass_stuck", after_s=stuck_after_s, waiting_in=_await_chain(one_pass)
            )
            await asyncio.sleep(stuck_after_s)

    async def run_once(self, now: float) -> PassReport:
        started = time.perf_counter()
        report = PassReport(now=now)
        onprem = await self.onprem.snapshot(now)
        clouds = await self._cloud_views(now)
        self.gauges.publish(onprem, clouds)
        self.preemption_evidence.accrue(clouds, now)
        if not onprem.synced:
            report.skipped = "on-prem cache not synced yet"
            return report
        await self.spend_ledger.load()
        await self.pool_blocking.load()
        try:
            await self._converge_decide_act(onprem, clouds, now, report)
        except fencing.FenceClosed as closed:
            # Another replica may lead by now: not one more write from this pass.
            report.skipped = f"stopped mid-pass: {closed}"
            log.warning("federation_pass_fenced", why=str(closed))
        metrics.RECONCILE_DURATION_SECONDS.observe(time.perf_counter() - started)
        self.last_report = report
        return report

    async def _converge_decide_act(
        self,
        onprem: OnPremView,
        clouds: Mapping[str, CloudView],
        now: float,
        report: PassReport,
    ) -> None:
        """The pass once the caches are synced; writes only while the fence is open (each
        write checks it again, and `FenceClosed` ends the pass)."""
        writes = self.may_write()
        self.data_problems.forget_gone_jobs(onprem)
        requeued: list[OnPremJob] = []
        timeouts = planning.Timeouts(
            self.settings.lost_cluster_timeout_s,
            self.settings.default_lost_cluster_timeout_s,
            self.settings.start_timeout_s,
        )
        for step in planning.converge(onprem, clouds, timeouts, now=now):
            if step.kind is StepKind.REDECIDE:
                requeued.append(step.job)
            elif step.kind is not StepKind.NOTHING and writes:
                await self._guarded(report, step.job, self._converge(step, now, report))
        onprem = await self.onprem.snapshot(now)
        report.spend = spend = self.spend_ledger.spend(onprem, now)
        round_ = await self._decide_round(onprem, clouds, requeued, spend, now)
        report.decisions = round_.decisions
        self.forecasts.settle(onprem, now, counting=self.may_write())  # the leader counts
        self.forecasts.note(round_.decisions, onprem.jobs, now)
        if writes:
            await self._act(round_, onprem, requeued, clouds, now, report)
            await self._pull_back(onprem, clouds, round_, now, report)
            # Collected against the clusters as acting left them: fresh views, not the pass's.
            await self.collection.collect(
                await self.onprem.snapshot(now), await self._cloud_views(now), now, report
            )
            await self.spend_ledger.save(now)
            await self.pool_blocking.save(now)  # one a requeue could not write
            await self.data_problems.write_notes()  # last: its writes change the Jobs' versions

    async def _guarded(
        self, report: PassReport, job: OnPremJob, work: Coroutine[Any, Any, None]
    ) -> None:
        """Run one job's work; a failure is that job's, logged, and retried next pass."""
        try:
            await work
        except fencing.FenceClosed:
            raise  # not this job's failure: the pass ends
        except errors.FederatorError as e:
            report.failures.append(f"{job.key}: {e}")
            log.warning("job_step_failed", job=job.key, error=str(e))
        except Exception as e:  # a bug or an untranslated library error: still only this job's
            report.failures.append(f"{job.key}: unexpected {type(e).__name__}: {e}")
            log.exception("job_step_crashed", job=job.key)

    async def _cloud_views(self, now: float) -> dict[str, CloudView]:
        views = await asyncio.gather(*(c.snapshot(now) for c in self.clouds.values()))
        return {view.cluster: view for view in views}

    # ---- convergence of placed jobs ------------------------------------------------------------

    async def _converge(self, step: Step, now: float, report: PassReport) -> None:
        job, copy = step.job, step.copy
        record = job.record
        assert record is not None
        match step.kind:
            case StepKind.MARK_DONE:
                self._placed.pop(job.uid, None)
                await self.onprem.write_record(
                    job, record.done(finished_at=record.finished_at or now)
                )
            case StepKind.WITHDRAW:
                await self._withdraw(job, copy, report)
            case StepKind.LOST:
                await self._requeue(job, now, step.reason, report, _CLUSTER_LOST)
            case StepKind.PREEMPTED:
                assert copy is not None
                await self._requeue(job, now, step.reason, report, _PREEMPTED, copy=copy)
            case StepKind.NOT_STARTED:
                assert copy is not None
                await self._requeue(job, now, step.reason, report, _START_TIMEOUT, copy=copy)
            case StepKind.CONTINUE_PLACING:
                await self._place(job, record, now, report)
            case StepKind.RECREATE:
                await self._create_copy(
                    job, record, await self.data_problems.ready(job, record.cluster, report)
                )
                report.actions.append(f"recreate {job.key} on {record.placement}")
            case StepKind.RESUME:
                assert copy is not None
                if await self.data_problems.ready(job, record.cluster, report):
                    await self.clouds[record.cluster].resume_copy(copy)
                    report.actions.append(f"resume {job.key}: its data is on {record.cluster}")
                await self.onprem.mirror(job, remote_state=copy.state.value)
            case StepKind.MIRROR:
                assert copy is not None
                await self.onprem.mirror(job, remote_state=copy.state.value)
            case StepKind.FINISH:
                assert copy is not None
                await self._finish(job, record, copy, now, report)

    async def _finish(
        self,
        job: OnPremJob,
        record: PlacementRecord,
        copy: CopyView,
        now: float,
        report: PassReport,
    ) -> None:
        succeeded = copy.state is CopyState.SUCCEEDED
        finished_at = copy.finished_at or now
        terminal = Terminal(
            succeeded=succeeded,
            started_at=copy.started_at or record.placed_at,
            finished_at=finished_at,
            completions=max(1, copy.succeeded),
            message=f"ran on {record.placement} as {copy.namespace}/{copy.name}"
            + ("" if succeeded else f": {copy.message}"),
        )
        job = await self.onprem.finish(job, terminal)
        job = await self.onprem.mirror(job, remote_state=copy.state.value)
        # The event before the preconditioned write: if that write meets a conflict, the next
        # pass closes the record on the mark-done path, which has nothing to say.
        reason = "CompletedInCloud" if succeeded else "FailedInCloud"
        await self.onprem.event(job, reason=reason, message=terminal.message, warning=not succeeded)
        done = replace(record, phase=Phase.DONE, finished_at=finished_at)
        self._placed.pop(job.uid, None)
        job = await self.onprem.write_record(job, done)
        report.actions.append(f"finish {job.key}: {copy.state.value} on {record.placement}")
        log.info("job_finished_in_cloud", job=job.key, placement=record.placement, state=copy.state)

    async def _withdraw(self, job: OnPremJob, copy: CopyView | None, report: PassReport) -> None:
        """The job runs on-prem after all (on-prem wins): the copy goes, then the record."""
        record = job.record
        assert record is not None
        if copy is not None:
            await self.clouds[copy.cluster].delete_copy(copy.namespace, copy.name)
        await self._drop_record(job)
        metrics.PLACEMENTS.labels(cluster=record.cluster, outcome="withdrawn").inc()
        report.actions.append(f"withdraw {job.key}: it started on-prem")
        log.warning("copy_withdrawn", job=job.key, placement=record.placement)

    async def _requeue(
        self,
        job: OnPremJob,
        now: float,
        reason: str,
        report: PassReport,
        loss: _Loss,
        *,
        copy: CopyView | None = None,
    ) -> None:
        record = job.record
        assert record is not None
        # The pool's block is written first, then the record, then the copy deleted. The
        # block before the record: after a crash between them, the lost copy is still under
        # its PLACED record, so the next pass (here or in a new leader) finds it lost again and
        # blocks again (the same block); the other way round, the REQUEUED record would be
        # decided again by a process that never heard of the block, and placed straight back
        # on the pool that just preempted it (or never started it).
        # The record before the copy's delete: after a crash between the two writes, a REQUEUED
        # record lets GC delete the copy, while a PLACED record without its copy would recreate
        # it on the pool that just preempted it (and forget the preemption, its backoff and its
        # cost). A copy whose pods start between the snapshot and the delete is deleted all the
        # same: the record no longer vouches for it, so GC would (docs/design.md §9).
        again = self._lost_attempt(job, record, now, copy.name if copy is not None else None)
        pool = (record.cluster, record.pool)
        if loss.blocks_pool is not None:
            await self.pool_blocking.block(pool, loss.blocks_pool, job, now)
        if loss.preemption:
            again = replace(again, preemptions=record.preemptions + 1)
            self.preemption_evidence.count_preemption(pool)
            metrics.PREEMPTIONS.labels(cluster=record.cluster).inc()
        job = await self.onprem.write_record(job, again)
        if loss is _START_TIMEOUT:  # not "replaced" alone: capacity that never came, no preemption
            metrics.PLACEMENTS.labels(cluster=record.cluster, outcome="start_timeout").inc()
        if copy is not None:
            await self.clouds[copy.cluster].delete_copy(copy.namespace, copy.name)
        # Not the last state seen ("Running"): the copy is gone until the job is placed again.
        job = await self.onprem.mirror(job, remote_state=loss.remote_state)
        # A start timeout's reason names the pool already ("... within 15m on cloud-a/spot").
        where = "" if record.placement in reason else f"{record.placement}: "
        await self.onprem.event(
            job, reason=loss.event, message=f"{where}{reason}; re-placing", warning=True
        )
        report.actions.append(f"requeue {job.key}: {loss.event} on {record.placement}")
        log.warning(
            "job_requeued", job=job.key, placement=record.placement, why=loss.event, reason=reason
        )

    # ---- deciding -----------------------------------------------------------------------------

    async def _decide_round(
        self,
        onprem: OnPremView,
        clouds: Mapping[str, CloudView],
        requeued: Sequence[OnPremJob],
        spend: Spend,
        now: float,
    ) -> Round:
        # A job that asks for no GPU is not GPU demand; priced, it would "burst" for $0.
        waiting = [job for job in onprem.jobs if job.waiting and job.gpus > 0]
        self._warn_about_lost_records(waiting)
        redecided = [job for job in requeued if self._may_replace(job)]
        candidates = [*waiting, *redecided]
        if not candidates or not self.settings.burst_enabled:
            return Round(decisions=(), now=now)
        return await self.decider.decide(onprem, clouds, candidates, spend, now)

    def _warn_about_lost_records(self, waiting: Sequence[OnPremJob]) -> None:
        for job in waiting:
            attempt = self._placed.pop(job.uid, None)
            if attempt is not None:
                log.warning(
                    "placement_record_missing",
                    job=job.key,
                    attempt=attempt,
                    resource_version=job.resource_version,
                    hint="the Job no longer shows the federator.io/record this process wrote: "
                    "another writer removed it, or the on-prem watch cache is stale",
                )

    async def _drop_record(self, job: OnPremJob) -> None:
        self._placed.pop(job.uid, None)
        await self.onprem.write_record(job, None)

    def _may_replace(self, job: OnPremJob) -> bool:
        record = job.record
        return record is not None and record.attempt <= self.settings.max_replacements

    def _why_not_replaced(self, job: OnPremJob) -> str:
        """Why a requeued job goes back on-prem without a decision ("" if it is decided)."""
        if not self._may_replace(job):
            return "too many re-placements"
        if not self.settings.burst_enabled:
            # No round decides it while bursting is off; left requeued, it would wait forever.
            return "bursting is off (burst.policy: never)"
        return ""

    # ---- acting on decisions ------------------------------------------------------------------

    async def _act(
        self,
        round_: Round,
        onprem: OnPremView,
        requeued: Sequence[OnPremJob],
        clouds: Mapping[str, CloudView],
        now: float,
        report: PassReport,
    ) -> None:
        jobs = {job.key: job for job in onprem.jobs}
        for job in requeued:
            why = self._why_not_replaced(job)
            if not why:
                continue  # decided with the waiting jobs
            if job.workload is not None:
                await self._guarded(report, job, self._return_on_prem(job, why, report))
            elif not self._may_replace(job):
                await self._guarded(report, job, self._give_up(job, why, now, report))
            # else a plain Job while bursting is off: no queue to go back to, it stays requeued
        # The replicas asked for this pass and their answers (None: the ask raised)
        asked: dict[tuple[str, str], DataReadiness | None] = {}
        for decision in round_.decisions:
            decided = jobs.get(decision.job_key)
            if decided is None:
                continue
            if decision.kind is DecisionKind.BURST:
                await self._guarded(
                    report, decided, self._burst(decided, decision, clouds, now, report)
                )
                continue
            if rounds.waits_for_data(decision):
                await self._guarded(
                    report,
                    decided,
                    self.data_problems.replicate_for_hold(decided, decision, asked, report),
                )
            if decided.record is not None and decided.record.phase is Phase.REQUEUED:
                if decided.workload is None:
                    # A plain Job stays requeued (its history and attempt count with it): nobody
                    # on-prem would start it, and a dropped record would make it a new job.
                    continue
                await self._guarded(
                    report, decided, self._return_on_prem(decided, decision.reason, report)
                )

    async def _burst(
        self,
        job: OnPremJob,
        decision: Decision,
        clouds: Mapping[str, CloudView],
        now: float,
        report: PassReport,
    ) -> None:
        cluster, pool = decision.cluster, decision.pool
        if not job.burst_allowed:
            log.error("burst_refused_opt_out", job=job.key, decision=decision.reason)
            report.failures.append(f"{job.key}: burst refused, the job may not leave on-prem")
            return
        if cluster is None or pool is None or cluster not in self.clouds:
            return
        view = clouds.get(cluster)
        if view is None or not view.up:
            return
        previous = job.record
        record = PlacementRecord(
            cluster=cluster,
            pool=pool,
            attempt=(previous.attempt + 1) if previous else 1,
            phase=Phase.PLACING,
            placed_at=now,
            gpus=job.gpus,
            price_per_gpu_hour_usd=rounds.price(decision, job.gpus),
            preemptions=previous.preemptions if previous else 0,
            stale=previous.stale if previous else (),
            reason=decision.reason[:300],
            history=previous.history if previous else (),
            expected_cost_usd=rounds.finite_or_zero(decision.expected_cost_usd),
            earlier_usd=previous.earlier_usd if previous else 0.0,
        )
        job = await self.onprem.write_record(job, record)
        await self._place(job, record, now, report, decision=decision)

    async def _place(
        self,
        job: OnPremJob,
        record: PlacementRecord,
        now: float,
        report: PassReport,
        *,
        decision: Decision | None = None,
    ) -> None:
        """Steps 2–5 of docs/design.md §4; safe to repeat after a crash."""
        if not job.burst_allowed:
            # The record is an annotation its owner can write; a PLACING one is carried on only
            # for a job that may leave (the same check `_burst` makes before writing one).
            await self._drop_record(job)
            log.error("placement_refused_opt_out", job=job.key, placement=record.placement)
            report.failures.append(f"{job.key}: placement dropped, the job may not leave on-prem")
            return
        if not await self.onprem.hold_on_prem(job):
            await self._drop_record(job)
            metrics.PLACEMENTS.labels(cluster=record.cluster, outcome="failed").inc()
            report.actions.append(f"abandon {job.key}: it started or may start on-prem")
            return
        # Its errors are retried next pass.
        ready = await self.data_problems.ready(job, record.cluster, report)
        try:
            created = await self._create_copy(job, record, ready)
        except errors.TransientError:
            raise  # the cluster or a store did not answer: the next pass carries on placing
        except errors.FederatorError as e:
            # A refusal a person must fix (a name clash on the cloud, RBAC, an invalid spec).
            # Placing again each pass would hold the job for ever; as a lost copy it is decided
            # again after a backoff, and out of re-placements it goes home.
            await self._placement_refused(job, record, str(e), now, report)
            return
        job = await self.onprem.write_record(job, replace(record, phase=Phase.PLACED))
        self._placed[job.uid] = record.attempt
        outcome = "placed" if created else "already_placed"
        metrics.PLACEMENTS.labels(cluster=record.cluster, outcome=outcome).inc()
        if record.attempt > 1:
            metrics.PLACEMENTS.labels(cluster=record.cluster, outcome="replaced").inc()
        cost = decision.expected_cost_usd if decision else 0.0
        reason = decision.reason if decision else record.reason
        await self.onprem.event(
            job,
            reason="Bursted",
            message=f"placed on {record.placement} (attempt {record.attempt}), "
            f"expected cost ${cost:.2f}: {reason}",
            warning=False,
        )
        report.actions.append(f"burst {job.key} to {record.placement} attempt {record.attempt}")
        log.info("job_bursted", job=job.key, placement=record.placement, attempt=record.attempt)

    def _lost_attempt(
        self, job: OnPremJob, record: PlacementRecord, now: float, copy: str | None = None
    ) -> PlacementRecord:
        """The record once its attempt's copy is lost or refused: decided again after the
        backoff, the copy (`copy`, else the attempt's deterministic name) listed as stale."""
        name = copy if copy is not None else copy_name(job.name, job.uid, record.attempt)
        wait = planning.backoff_s(
            record.attempt,
            initial_s=self.settings.replace_backoff_s,
            max_s=self.settings.replace_max_backoff_s,
        )
        stale = f"{record.cluster}/{job.namespace}/{name}"
        return record.requeue(now=now, backoff_s=wait, stale_copy=stale)

    async def _placement_refused(
        self, job: OnPremJob, record: PlacementRecord, why: str, now: float, report: PassReport
    ) -> None:
        # The copy may exist (refused after its creation): listed stale, GC deletes it.
        job = await self.onprem.write_record(job, self._lost_attempt(job, record, now))
        metrics.PLACEMENTS.labels(cluster=record.cluster, outcome="failed").inc()
        message = f"{record.placement}: {why}; deciding again"
        await self.onprem.event(job, reason="PlacementRefused", message=message, warning=True)
        report.failures.append(f"{job.key}: placement on {record.placement} refused: {why}")
        log.error("placement_refused", job=job.key, placement=record.placement, error=why)

    async def _create_copy(self, job: OnPremJob, record: PlacementRecord, ready: bool) -> bool:
        request = CopyRequest(
            source=job, pool=record.pool, attempt=record.attempt, suspended=not ready
        )
        return await self.clouds[record.cluster].create_copy(request)

    async def _return_on_prem(self, job: OnPremJob, why: str, report: PassReport) -> None:
        """Let Kueue run it on-prem: reactivate first, then drop the record (crash-safe order).

        The note on the Job and the event go out before the record is dropped: Kueue may admit
        the Job at once, and its write then makes the drop a conflict that a later pass settles
        on the started-on-prem path, which says nothing of the return. The note stays on the
        Job after the Events have expired.
        """
        job = await self.onprem.note_return(job, why=why)
        await self.onprem.release_on_prem(job)
        await self.onprem.event(job, reason="ReturnedOnPrem", message=why, warning=False)
        await self._drop_record(job)
        report.actions.append(f"return {job.key} on-prem: {why}")
        log.info("job_returned_on_prem", job=job.key, why=why)

    async def _give_up(self, job: OnPremJob, why: str, now: float, report: PassReport) -> None:
        """A plain suspended Job out of re-placements fails, as a Job whose pods failed more
        than its backoffLimit does: it has no on-prem queue to go back to, and returned there
        without its record it would burst again as attempt 1, for ever."""
        record = job.record
        assert record is not None
        tried = ", ".join(record.history or (record.placement,))
        message = f"federator gave up: {why} (tried {tried})"
        terminal = Terminal(
            succeeded=False,
            started_at=record.placed_at,
            finished_at=now,
            completions=0,
            message=message,
        )
        job = await self.onprem.finish(job, terminal)  # first: a crash leaves MARK_DONE to do
        self._placed.pop(job.uid, None)
        job = await self.onprem.write_record(job, record.done(finished_at=now))
        await self.onprem.event(job, reason="FederatorGaveUp", message=message, warning=True)
        report.actions.append(f"give up {job.key}: {why}")
        log.warning("job_given_up", job=job.key, why=why, tried=tried)

    async def _pull_back(
        self,
        onprem: OnPremView,
        clouds: Mapping[str, CloudView],
        round_: Round,
        now: float,
        report: PassReport,
    ) -> None:
        if not self.settings.pull_back:
            return
        chosen = planning.pull_backs(
            onprem,
            clouds,
            round_.decisions,
            starting_within_s=self.settings.interval_s,
            after_s=self.settings.pull_back_after_s,
            now=now,
        )
        for job, copy in chosen:
            await self._guarded(report, job, self._pull_back_one(job, copy, now, report))

    async def _pull_back_one(
        self, job: OnPremJob, copy: CopyView, now: float, report: PassReport
    ) -> None:
        record = job.record
        assert record is not None
        stale = f"{copy.cluster}/{copy.namespace}/{copy.name}"
        job = await self.onprem.write_record(
            job, record.requeue(now=now, backoff_s=0.0, stale_copy=stale)
        )
        await self.clouds[copy.cluster].delete_copy(copy.namespace, copy.name)
        metrics.PLACEMENTS.labels(cluster=copy.cluster, outcome="withdrawn").inc()
        await self._return_on_prem(
            job, f"pulled back from {record.placement}: on-prem has room", report
        )


@dataclass(frozen=True, slots=True)
class _Loss:
    """How a placement's copy was lost, and what that says about its pool."""

    event: str  # the Event's reason on the on-prem Job
    remote_state: str  # `federator.io/remote-state` until the job is placed again
    preemption: bool  # evidence for the pool's preemption rate
    # the pool gets nothing new for `block_pool_for_s`, and the block says why (None: it may)
    blocks_pool: BlockCause | None


_PREEMPTED = _Loss("Preempted", "Preempted", preemption=True, blocks_pool=BlockCause.PREEMPTION)
_CLUSTER_LOST = _Loss("ClusterLost", "Lost", preemption=False, blocks_pool=None)
# Capacity that never came (spot capacity unavailable, a pool that cannot scale, a taint):
# the pool is avoided as after a preemption, but nothing was preempted, so the pool's
# preemption rate (its price in the cost model) learns nothing from it.
_START_TIMEOUT = _Loss(
    "CloudStartTimeout", "NotStarted", preemption=False, blocks_pool=BlockCause.START_TIMEOUT
)


def _await_chain(task: asyncio.Task[Any]) -> list[str]:
    """`file:line function` of every coroutine the task is suspended in, outermost first."""
    chain: list[str] = []
    awaited: Any = task.get_coro()
    while awaited is not None and len(chain) < 40:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is not None:
            code = frame.f_code
            chain.append(f"{code.co_filename}:{frame.f_lineno} {code.co_name}")
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return chain
