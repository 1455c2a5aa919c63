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

`Federation` is the pass and its order; what it keeps over passes is owned by collaborators
its constructor creates, each handed the fenced ports it writes through: `Moves` (the writes
that move one job's placement), `Decider` (the cost model asked on the offers as they stand),
`DataProblems` (a job's data on its cluster, and its failures told), `PoolBlocking`,
`PreemptionEvidence`, `SpendLedger`, `Collection` (GC of cloud copies) and `ClusterGauges`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import replace
from typing import Any

import structlog

from federator import errors, metrics
from federator.core.decisions import DecisionKind, Round
from federator.core.models import Spend
from federator.core.policy import DecisionPolicy
from federator.federation import fencing, foreign_records, lost_copies, planning, rounds
from federator.federation.blocks import Pool, PoolBlocks
from federator.federation.cluster_gauges import ClusterGauges
from federator.federation.collection import Collection
from federator.federation.data_problems import DataProblems, ToldOnJobs
from federator.federation.deciding import Decide, Decider
from federator.federation.forecasts import WaitForecasts
from federator.federation.moves import CLUSTER_LOST, COPY_GONE, PREEMPTED, START_TIMEOUT, Moves
from federator.federation.planning import Step, StepKind
from federator.federation.pool_blocking import PoolBlocking
from federator.federation.ports import (
    CloudPort,
    CloudView,
    DataGate,
    DataReadiness,
    DataSizes,
    OffersProvider,
    OnPremJob,
    OnPremPort,
    OnPremView,
    PoolBlockStore,
    SpendStore,
)
from federator.federation.preemption_evidence import PreemptionEvidence
from federator.federation.records import LostCopy, Phase
from federator.federation.reports import PassReport
from federator.federation.settings import FederationSettings
from federator.federation.spend_ledger import SpendLedger

log = structlog.get_logger(__name__)

__all__ = ["Federation", "FederationSettings", "PassReport"]


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
            draining=lambda: self.settings.draining_clusters,
        )
        self.gauges = ClusterGauges()  # what each pass observed, as metrics
        # The writes that move one job's placement (burst, finish, requeue, return ...).
        self.moves = Moves(
            self.onprem,
            self.clouds,
            settings=lambda: self.settings,
            pool_blocking=self.pool_blocking,
            preemption_evidence=self.preemption_evidence,
            data_problems=self.data_problems,
        )
        # Deletes the copies no record vouches for, at the end of each pass.
        self.collection = Collection(
            self.clouds,
            data=lambda: self.data,
            grace_s=lambda: self.settings.gc_grace_s,
            watched_namespaces=lambda: self.settings.watched_namespaces,
            onprem=self.onprem,
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
        draining = self.settings.draining_clusters
        for job in onprem.jobs if writes else ():  # another Job's record (`foreign_records`)
            if job.foreign_record_uid is not None:
                await self._guarded(report, job, foreign_records.drop(self.onprem, job, report))
        for step in planning.converge(onprem, clouds, timeouts, now=now, draining=draining):
            if step.kind is StepKind.REDECIDE:
                requeued.append(step.job)
            elif step.kind is not StepKind.NOTHING and writes:
                await self._guarded(report, step.job, self._converge(step, now, report))
        onprem = await self.onprem.snapshot(now)
        if writes:
            requeued, settled = await self._settle_lost_copies(
                onprem, requeued, clouds, now, report
            )
            if settled:  # read again: the settled jobs' records changed
                onprem = await self.onprem.snapshot(now)
            self.spend_ledger.settle_orphans(clouds, now, report)  # of Jobs that are gone
        onprem, sent_home = self._out_of_replacements(onprem)
        report.spend = spend = self.spend_ledger.spend(onprem, now)
        round_ = await self._decide_round(onprem, clouds, requeued, spend, now)
        round_ = rounds.explained_per_job(round_, sent_home)
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
                await self.moves.mark_done(job, record, now)
            case StepKind.WITHDRAW:
                await self.moves.withdraw(job, copy, report)
            case StepKind.LOST:
                await self.moves.requeue(step, CLUSTER_LOST, now, report)
            case StepKind.GONE:
                await self.moves.requeue(step, COPY_GONE, now, report)
            case StepKind.PREEMPTED:
                assert copy is not None
                await self.moves.requeue(step, PREEMPTED, now, report)
            case StepKind.NOT_STARTED:
                assert copy is not None
                await self.moves.requeue(step, START_TIMEOUT, now, report)
            case StepKind.CONTINUE_PLACING:
                await self.moves.place(job, record, now, report)
            case StepKind.UNPLACED:
                await self.moves.unplace(step, now, report)
            case StepKind.RECREATE:
                await self.moves.recreate(job, record, report)
            case StepKind.RESUME:
                assert copy is not None
                await self.moves.resume(job, record, copy, report)
            case StepKind.MIRROR:
                assert copy is not None
                await self.onprem.mirror(job, remote_state=copy.state.value)
            case StepKind.FINISH:
                assert copy is not None
                await self.moves.finish(job, record, copy, now, report)

    async def _settle_lost_copies(
        self,
        onprem: OnPremView,
        requeued: Sequence[OnPremJob],
        clouds: Mapping[str, CloudView],
        now: float,
        report: PassReport,
    ) -> tuple[list[OnPremJob], bool]:
        """Close the copies lost with their cluster that its view now shows stopped (after the
        steps, before the spend is counted: the budgets see this pass's settlements), and
        return `requeued` with the jobs settled as written, and whether any job was. A job
        back on-prem without a record has them settled on the record it keeps
        (`returned_record`): they count until then.

        A requeued job is settled on the version its decision reads (the steps wrote nothing
        to it), so a job another writer changed meanwhile meets a conflict here and in its
        return on-prem alike, and the next pass decides it again on what it then reads."""
        decided = {job.key: job for job in requeued}
        written: dict[str, OnPremJob] = {}
        for job in (decided.get(job.key, job) for job in onprem.jobs):
            holder = job.record if job.record is not None else job.returned_record
            if holder is None or not holder.lost_copies:
                continue
            ends = lost_copies.settlements(holder, clouds, now)
            if ends:
                await self._guarded(report, job, self._settle(job, ends, written, report))
        return [written.get(job.key, job) for job in requeued], bool(written)

    async def _settle(
        self,
        job: OnPremJob,
        ends: Sequence[tuple[LostCopy, float]],
        written: dict[str, OnPremJob],
        report: PassReport,
    ) -> None:
        written[job.key] = await self.moves.settle_lost_copies(job, ends, report)

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
        self.moves.warn_about_lost_records(waiting)
        redecided = [job for job in requeued if self._may_replace(job)]
        candidates = [*waiting, *redecided]
        if not candidates or not self.settings.burst_enabled:
            return Round(decisions=(), now=now)
        return await self.decider.decide(onprem, clouds, candidates, spend, now)

    def _may_replace(self, job: OnPremJob) -> bool:
        record = job.record
        return record is not None and record.losses <= self.settings.max_replacements

    def _out_of_replacements(self, onprem: OnPremView) -> tuple[OnPremView, dict[str, str]]:
        """The view with each waiting job that went back on-prem out of re-placements made one
        that may not burst, and why, by job key.

        Its record was dropped when it went home, but the Job keeps it (`returned_record`):
        without this, the next pass would burst it as a new job, and it could go round burst,
        preemption, requeue, return for ever (finding 6a). Through `burst_allowed`, as an
        opt-out: the cost model leaves it in the queue (nothing priced), and `Moves.burst`
        refuses it whatever a decision says. The same bound as a requeued record's
        (`_may_replace`), so a reload that raises `max_replacements` lets it burst again."""
        limit = self.settings.max_replacements
        why: dict[str, str] = {}
        jobs: list[OnPremJob] = []
        for job in onprem.jobs:
            kept = job.returned_record
            if job.record is None and kept is not None and kept.losses > limit:
                times = "once" if kept.losses == 1 else f"{kept.losses} times"
                why[job.key] = (
                    f"stays on-prem: out of re-placements (its copy was lost {times}; "
                    f"burst.replacement.max_replacements: {limit})"
                )
                spec = replace(job.spec, burst_allowed=False)
                job = replace(job, spec=spec, burst_allowed=False)
            jobs.append(job)
        return (replace(onprem, jobs=tuple(jobs)), why) if why else (onprem, why)

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
                await self._guarded(report, job, self.moves.return_on_prem(job, why, report))
            elif not self._may_replace(job):
                await self._guarded(report, job, self.moves.give_up(job, why, now, report))
            # else a plain Job while bursting is off: no queue to go back to, it stays requeued
        # The replicas asked for this pass and their answers (None: the ask raised)
        asked: dict[tuple[str, str], DataReadiness | None] = {}
        for decision in round_.decisions:
            decided = jobs.get(decision.job_key)
            if decided is None:
                continue
            if decision.kind is DecisionKind.BURST:
                await self._guarded(
                    report, decided, self.moves.burst(decided, decision, clouds, now, report)
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
                    report, decided, self.moves.return_on_prem(decided, decision.reason, report)
                )

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
            await self._guarded(report, job, self.moves.pull_back(job, copy, now, report))


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
