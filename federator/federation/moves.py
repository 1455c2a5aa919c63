"""Moves: the writes that take one job's placement from one state to the next.

Bursting a job (its record, then its copy: docs/design.md §4), finishing it when its copy
ends, withdrawing it when it started on-prem after all, requeueing it when its copy was lost
(preempted, never started, its cluster gone), returning it on-prem, pulling it back, giving
it up. Each is a sequence of writes in an order that a crash between any two of them leaves
safe to repeat; the comments at each say why that order. Which move a job needs is decided
elsewhere (`planning.converge`, the cost model); a move only carries it out.

The federation loop creates one `Moves`; every write goes through the loop's write fence,
and a failure is the job's (the loop logs it and retries next pass).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import structlog

from federator import errors, metrics
from federator.core.decisions import Decision
from federator.federation import planning, rounds
from federator.federation.blocks import BlockCause
from federator.federation.data_problems import DataProblems
from federator.federation.pool_blocking import PoolBlocking
from federator.federation.ports import (
    CloudPort,
    CloudView,
    CopyRequest,
    CopyState,
    CopyView,
    OnPremJob,
    OnPremPort,
    Terminal,
)
from federator.federation.preemption_evidence import PreemptionEvidence
from federator.federation.records import LostCopy, Phase, PlacementRecord, copy_name
from federator.federation.reports import PassReport
from federator.federation.settings import FederationSettings

log = structlog.get_logger(__name__)


class Moves:
    """The placement moves of single jobs, and the placements this process made."""

    def __init__(
        self,
        onprem: OnPremPort,
        clouds: Mapping[str, CloudPort],
        *,
        settings: Callable[[], FederationSettings],
        pool_blocking: PoolBlocking,
        preemption_evidence: PreemptionEvidence,
        data_problems: DataProblems,
    ) -> None:
        self._onprem = onprem  # fenced by the federation, like every write
        self._clouds = clouds  # fenced too
        self._settings = settings  # the federation's current settings (reloadable)
        self._pool_blocking = pool_blocking
        self._preemption_evidence = preemption_evidence
        self._data_problems = data_problems
        # uid -> attempt of the placements this process made, only to notice a record that
        # disappears without us removing it (a diagnosis aid, never a source of truth)
        self._placed: dict[str, int] = {}

    def warn_about_lost_records(self, waiting: Sequence[OnPremJob]) -> None:
        """Warn of each waiting job whose record this process wrote and can no longer see."""
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
        await self._onprem.write_record(job, None)

    async def _release_and_drop_record(self, job: OnPremJob) -> None:
        """Give the job back to Kueue, then drop its record: a Kueue job left without a record
        must have an active Workload. In this order a crash between the two leaves the record,
        and the next pass decides the job again; the other way round it would be lost."""
        await self._onprem.release_on_prem(job)
        await self._drop_record(job)

    async def mark_done(self, job: OnPremJob, record: PlacementRecord, now: float) -> None:
        """The on-prem Job is terminal: its record catches up."""
        self._placed.pop(job.uid, None)
        await self._onprem.write_record(job, record.done(finished_at=record.finished_at or now))

    async def recreate(self, job: OnPremJob, record: PlacementRecord, report: PassReport) -> None:
        """The record says placed and the cluster answers, but the copy is gone."""
        await self._create_copy(
            job, record, await self._data_problems.ready(job, record.cluster, report)
        )
        report.actions.append(f"recreate {job.key} on {record.placement}")

    async def resume(
        self, job: OnPremJob, record: PlacementRecord, copy: CopyView, report: PassReport
    ) -> None:
        """The copy waits for its data: resumed once the data is there."""
        if await self._data_problems.ready(job, record.cluster, report):
            await self._clouds[record.cluster].resume_copy(copy)
            report.actions.append(f"resume {job.key}: its data is on {record.cluster}")
        await self._onprem.mirror(job, remote_state=copy.state.value)

    async def finish(
        self,
        job: OnPremJob,
        record: PlacementRecord,
        copy: CopyView,
        now: float,
        report: PassReport,
    ) -> None:
        """Mirror a finished copy's outcome onto the on-prem Job and close its record."""
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
        job = await self._onprem.finish(job, terminal)
        job = await self._onprem.mirror(job, remote_state=copy.state.value)
        # The event before the preconditioned write: if that write meets a conflict, the next
        # pass closes the record on the mark-done path, which has nothing to say.
        reason = "CompletedInCloud" if succeeded else "FailedInCloud"
        await self._onprem.event(
            job, reason=reason, message=terminal.message, warning=not succeeded
        )
        done = replace(record, phase=Phase.DONE, finished_at=finished_at)
        self._placed.pop(job.uid, None)
        job = await self._onprem.write_record(job, done)
        report.actions.append(f"finish {job.key}: {copy.state.value} on {record.placement}")
        log.info("job_finished_in_cloud", job=job.key, placement=record.placement, state=copy.state)

    async def withdraw(self, job: OnPremJob, copy: CopyView | None, report: PassReport) -> None:
        """The job runs on-prem after all (on-prem wins): the copy goes, then the record."""
        record = job.record
        assert record is not None
        if copy is not None:
            await self._clouds[copy.cluster].delete_copy(copy.namespace, copy.name)
        # Reactivated too: "admitted" may be Kueue's reservation of the Workload we held, which
        # Kueue then evicts as inactive; without a record it would never be admitted again.
        await self._release_and_drop_record(job)
        metrics.PLACEMENTS.labels(cluster=record.cluster, outcome="withdrawn").inc()
        report.actions.append(f"withdraw {job.key}: it started on-prem")
        log.warning("copy_withdrawn", job=job.key, placement=record.placement)

    async def requeue(
        self, step: planning.Step, loss: Loss, now: float, report: PassReport
    ) -> None:
        """Send the job of `step` (its copy, if any, and why) whose copy was lost (`loss`:
        preempted, cluster lost, never started) back to be decided again; the pool is blocked
        first where the loss says so."""
        job, copy, reason = step.job, step.copy, step.reason
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
        copy_name = copy.name if copy is not None else None
        if loss.counts_against_job:
            again = self._lost_attempt(job, record, now, copy_name)
        else:
            again = _given_back(job, record, now, copy_name)
        pool = (record.cluster, record.pool)
        if loss.blocks_pool is not None:
            await self._pool_blocking.block(pool, loss.blocks_pool, job, now)
        if loss.preemption:
            again = replace(again, preemptions=record.preemptions + 1)
        if loss is CLUSTER_LOST and record.finished_at is None:
            again = _still_billing(again, record, job, copy, now)
        job = await self._onprem.write_record(job, again)
        if loss.preemption:
            # Counted once the record says so: a write that fails leaves the copy preempted
            # under its placed record, and the next pass would count the same preemption again.
            self._preemption_evidence.count_preemption(pool)
            metrics.PREEMPTIONS.labels(cluster=record.cluster).inc()
        if loss is START_TIMEOUT:  # not "replaced" alone: capacity that never came, no preemption
            metrics.PLACEMENTS.labels(cluster=record.cluster, outcome="start_timeout").inc()
        if copy is not None:
            await self._clouds[copy.cluster].delete_copy(copy.namespace, copy.name)
        # Not the last state seen ("Running"): the copy is gone until the job is placed again.
        job = await self._onprem.mirror(job, remote_state=loss.remote_state)
        # A start timeout's reason names the pool already ("... within 15m on cloud-a/spot").
        where = "" if step.reason_names_placement else f"{record.placement}: "
        await self._onprem.event(
            job, reason=loss.event, message=f"{where}{reason}; re-placing", warning=True
        )
        report.actions.append(f"requeue {job.key}: {loss.event} on {record.placement}")
        log.warning(
            "job_requeued", job=job.key, placement=record.placement, why=loss.event, reason=reason
        )

    async def burst(
        self,
        job: OnPremJob,
        decision: Decision,
        clouds: Mapping[str, CloudView],
        now: float,
        report: PassReport,
    ) -> None:
        """Carry out a burst decision: the record first, then the cloud copy (`place`)."""
        cluster, pool = decision.cluster, decision.pool
        if not job.burst_allowed:
            log.error("burst_refused_opt_out", job=job.key, decision=decision.reason)
            report.failures.append(f"{job.key}: burst refused, the job may not leave on-prem")
            return
        if cluster is None or pool is None or cluster not in self._clouds:
            return
        view = clouds.get(cluster)
        if view is None or not view.up:
            return
        # A requeued record, or the one the job kept when it went back on-prem: its count of
        # placements goes on, so `max_replacements` bounds the job across returns (§6).
        previous = job.record or job.returned_record
        record = PlacementRecord(
            cluster=cluster,
            pool=pool,
            attempt=_next_attempt(job, view),
            phase=Phase.PLACING,
            placed_at=now,
            gpus=job.gpus,
            price_per_gpu_hour_usd=rounds.price(decision, job.gpus),
            preemptions=previous.preemptions if previous else 0,
            stale=previous.stale if previous else (),
            reason=decision.reason[:300],
            history=previous.history if previous else (),
            expected_cost_usd=rounds.finite_or_zero(decision.expected_cost_usd),
            # Not the kept record's: when its record went, the spend book took what the job had
            # spent (`spending.SpendBook`), and carried on it would count twice.
            earlier_usd=job.record.earlier_usd if job.record else 0.0,
            # The kept record's too: each lost copy counts under its own key while the Job is
            # there, record or not (`charges.count_spend`), so carrying it counts it once.
            lost_copies=previous.lost_copies if previous else (),
            lost=previous.losses if previous else 0,
        )
        job = await self._onprem.write_record(job, record)
        await self.place(job, record, now, report, decision=decision)

    async def place(
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
            # for a job that may leave (the same check `burst` makes before writing one). The
            # Workload goes back to Kueue first: an earlier pass of this placement may have held
            # it, and inactive without a record the job would be neither admitted nor decided.
            await self._release_and_drop_record(job)
            log.error("placement_refused_opt_out", job=job.key, placement=record.placement)
            report.failures.append(f"{job.key}: placement dropped, the job may not leave on-prem")
            return
        if not await self._onprem.hold_on_prem(job):
            # Kueue reserved quota for it, possibly just after our own deactivation landed (it
            # writes an admission without a precondition): reactivated before the record goes,
            # else an inactive Workload without a record is neither admitted nor decided again.
            await self._release_and_drop_record(job)
            metrics.PLACEMENTS.labels(cluster=record.cluster, outcome="failed").inc()
            report.actions.append(f"abandon {job.key}: it started or may start on-prem")
            return
        # Its errors are retried next pass.
        ready = await self._data_problems.ready(job, record.cluster, report)
        try:
            created = await self._create_copy(job, record, ready)
        except errors.CredentialsRefused as e:
            # Most likely the cluster's credentials, revoked or expired, and a rotated
            # kubeconfig is adopted without a restart: the next pass carries on placing. Not
            # for ever: refused for as long as an unreachable cluster is waited for (only
            # writes get it, say, from a webhook or a proxy), it is this placement's refusal.
            held_s = now - record.placed_at
            if held_s < self._settings().lost_after_s(record.cluster):
                raise
            why = f"{e}, for {held_s:.0f}s since the placement began"
            await self._placement_refused(job, record, why, now, report)
            return
        except errors.TransientError:
            raise  # the cluster or a store did not answer: the next pass carries on placing
        except errors.FederatorError as e:
            # A refusal a person must fix (a name clash on the cloud, RBAC, an invalid spec).
            # Placing again each pass would hold the job for ever; as a lost copy it is decided
            # again after a backoff, and out of re-placements it goes home.
            await self._placement_refused(job, record, str(e), now, report)
            return
        job = await self._onprem.write_record(job, replace(record, phase=Phase.PLACED))
        self._placed[job.uid] = record.attempt
        outcome = "placed" if created else "already_placed"
        metrics.PLACEMENTS.labels(cluster=record.cluster, outcome=outcome).inc()
        if record.attempt > 1:
            metrics.PLACEMENTS.labels(cluster=record.cluster, outcome="replaced").inc()
        cost = decision.expected_cost_usd if decision else 0.0
        reason = decision.reason if decision else record.reason
        await self._onprem.event(
            job,
            reason="Bursted",
            message=f"placed on {record.placement} (attempt {record.attempt}), "
            f"expected cost ${cost:.2f}: {reason}",
            warning=False,
        )
        report.actions.append(f"burst {job.key} to {record.placement} attempt {record.attempt}")
        log.info("job_bursted", job=job.key, placement=record.placement, attempt=record.attempt)

    async def unplace(self, step: planning.Step, now: float, report: PassReport) -> None:
        """A placement still being made (PLACING, its copy not there) on a cluster that has
        started draining: given back to be decided again at once, its copy never created there.

        Requeued as a pull-back is, not dropped: the record keeps its attempt, so the next
        placement takes the next one and never the name of a copy that a late create on the
        draining cluster could still make (listed stale; GC deletes it, the requeued record
        vouching for none there), and keeps its losses, history and lost copies. No copy ran,
        so nothing is lost: no loss counted, no backoff, no pool blocked. A Workload this
        placement held is given back to Kueue if the job is then kept on-prem."""
        job = step.job
        record = job.record
        assert record is not None
        again = _given_back(job, record, now)
        # No copy ran, so the attempt billed nothing: `requeue` would add its price from
        # `placed_at` to now (hours, for a create that kept failing) to the job's spend.
        again = replace(again, earlier_usd=record.earlier_usd)
        job = await self._onprem.write_record(job, again)
        self._placed.pop(job.uid, None)
        metrics.PLACEMENTS.labels(cluster=record.cluster, outcome="dropped").inc()
        message = f"{record.placement} (attempt {record.attempt}): {step.reason}; deciding again"
        await self._onprem.event(job, reason="PlacementDropped", message=message, warning=False)
        report.actions.append(f"unplace {job.key}: {record.cluster} is draining, deciding again")
        log.info("placement_dropped", job=job.key, placement=record.placement, reason=step.reason)

    def _lost_attempt(
        self, job: OnPremJob, record: PlacementRecord, now: float, copy: str | None = None
    ) -> PlacementRecord:
        """The record once its attempt's copy is lost or refused: decided again after the
        backoff, the copy (`copy`, else the attempt's deterministic name) listed as stale."""
        wait = planning.backoff_s(
            record.attempt,
            initial_s=self._settings().replace_backoff_s,
            max_s=self._settings().replace_max_backoff_s,
        )
        again = record.requeue(now=now, backoff_s=wait, stale_copy=_stale_copy(job, record, copy))
        return replace(again, lost=record.losses + 1)

    async def _placement_refused(
        self, job: OnPremJob, record: PlacementRecord, why: str, now: float, report: PassReport
    ) -> None:
        # The copy may exist (refused after its creation): listed stale, GC deletes it.
        job = await self._onprem.write_record(job, self._lost_attempt(job, record, now))
        metrics.PLACEMENTS.labels(cluster=record.cluster, outcome="failed").inc()
        message = f"{record.placement}: {why}; deciding again"
        await self._onprem.event(job, reason="PlacementRefused", message=message, warning=True)
        report.failures.append(f"{job.key}: placement on {record.placement} refused: {why}")
        log.error("placement_refused", job=job.key, placement=record.placement, error=why)

    async def _create_copy(self, job: OnPremJob, record: PlacementRecord, ready: bool) -> bool:
        request = CopyRequest(
            source=job, pool=record.pool, attempt=record.attempt, suspended=not ready
        )
        return await self._clouds[record.cluster].create_copy(request)

    async def settle_lost_copies(
        self, job: OnPremJob, ends: Sequence[tuple[LostCopy, float]], report: PassReport
    ) -> OnPremJob:
        """Close the lost copies in `ends` (each with the time it stopped): each keeps its end,
        on the job's record or, for a job back on-prem, on the record it keeps, in one write
        preconditioned on the version read (after a conflict the next pass settles them, from
        the record it then reads). Returns the job as written."""
        if job.record is not None:
            job = await self._onprem.write_record(job, job.record.settle(ends))
        else:
            assert job.returned_record is not None
            job = await self._onprem.write_returned_record(job, job.returned_record.settle(ends))
        for lost, end in ends:
            hours, usd = max(0.0, end - lost.since) / 3600.0, lost.cost_usd(end)
            report.actions.append(
                f"settle {job.key}: lost copy {lost.name} on {lost.cluster}, "
                f"{hours:.2f} h, ${usd:.2f}"
            )
            log.info(
                "lost_copy_settled",
                job=job.key,
                cluster=lost.cluster,
                copy=lost.name,
                hours=round(hours, 4),
                usd=round(usd, 4),
            )
        return job

    async def return_on_prem(self, job: OnPremJob, why: str, report: PassReport) -> None:
        """Let Kueue run it on-prem: reactivate first, then drop the record (crash-safe order).

        The note on the Job and the event go out before the record is dropped: Kueue may admit
        the Job at once, and its write then makes the drop a conflict that a later pass settles
        on the started-on-prem path, which says nothing of the return. The note stays on the
        Job after the Events have expired. It is preconditioned on the version the return was
        decided on: a process deciding on a stale view gets a conflict before it releases
        anything, and cannot drop a placement another process made meanwhile. The dropped
        record stays on the Job (`OnPremJob.returned_record`): a later burst continues its
        count, and a job sent home out of re-placements never bursts again (§6).
        """
        job = await self._onprem.note_return(job, why=why)
        await self._onprem.release_on_prem(job)
        await self._onprem.event(job, reason="ReturnedOnPrem", message=why, warning=False)
        await self._drop_record(job)
        report.actions.append(f"return {job.key} on-prem: {why}")
        log.info("job_returned_on_prem", job=job.key, why=why)

    async def give_up(self, job: OnPremJob, why: str, now: float, report: PassReport) -> None:
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
        job = await self._onprem.finish(job, terminal)  # first: a crash leaves MARK_DONE to do
        self._placed.pop(job.uid, None)
        job = await self._onprem.write_record(job, record.done(finished_at=now))
        await self._onprem.event(job, reason="FederatorGaveUp", message=message, warning=True)
        report.actions.append(f"give up {job.key}: {why}")
        log.warning("job_given_up", job=job.key, why=why, tried=tried)

    async def pull_back(
        self, job: OnPremJob, copy: CopyView, now: float, report: PassReport
    ) -> None:
        """Bring home a copy that has not started, because on-prem has room for it now."""
        record = job.record
        assert record is not None
        stale = f"{copy.cluster}/{copy.namespace}/{copy.name}"
        job = await self._onprem.write_record(
            job, record.requeue(now=now, backoff_s=0.0, stale_copy=stale)
        )
        await self._clouds[copy.cluster].delete_copy(copy.namespace, copy.name)
        metrics.PLACEMENTS.labels(cluster=copy.cluster, outcome="withdrawn").inc()
        await self.return_on_prem(
            job, f"pulled back from {record.placement}: on-prem has room", report
        )


def _given_back(
    job: OnPremJob, record: PlacementRecord, now: float, copy: str | None = None
) -> PlacementRecord:
    """The record requeued with no loss counted and no backoff: decided again at the next pass,
    its losses as they are, the copy (`copy`, else the attempt's name) listed as stale."""
    return record.requeue(now=now, backoff_s=0.0, stale_copy=_stale_copy(job, record, copy))


def _stale_copy(job: OnPremJob, record: PlacementRecord, copy: str | None = None) -> str:
    """`cluster/namespace/name` of the attempt's copy (`copy`, else its deterministic name),
    as a requeued record lists it for GC."""
    name = copy if copy is not None else copy_name(job.name, job.uid, record.attempt)
    return f"{record.cluster}/{job.namespace}/{name}"


def _still_billing(
    again: PlacementRecord,
    record: PlacementRecord,
    job: OnPremJob,
    copy: CopyView | None,
    now: float,
) -> PlacementRecord:
    """The requeued record `again` keeping the copy of `record`'s attempt, lost with its
    cluster, as one that may still run there: an unreachable cluster is often a partition,
    and its copy bills on until the cluster answers and GC deletes it (`lost_copies`)."""
    lost = LostCopy(
        cluster=record.cluster,
        namespace=copy.namespace if copy is not None else job.namespace,
        name=copy.name if copy is not None else copy_name(job.name, job.uid, record.attempt),
        attempt=record.attempt,
        usd_per_hour=record.price_per_gpu_hour_usd * record.gpus,
        since=now,
    )
    return replace(again, lost_copies=(*again.lost_copies, lost))


def _next_attempt(job: OnPremJob, target: CloudView) -> int:
    """The attempt a new placement of `job` on the `target` cluster gets: the next of its
    record (or of the record it kept when it went back on-prem), and past every copy of the
    job the target still holds.

    Without either record the count starts at 1 (a kept record that cannot be read, or a job
    returned before records were kept), and copy names are deterministic in the attempt
    (`records.copy_name`): the create would meet a copy of an earlier placement left on the
    cluster (one that survived an outage, finished or failed meanwhile, perhaps on another
    pool) and adopt it, and that copy would finish the job with its own outcome. Past it, the
    new copy has a name of its own, and GC deletes the old one as stale. The target is up and
    synced (the only clusters offered), so its copies are all seen.
    """
    previous = job.record or job.returned_record
    next_of_record = (previous.attempt + 1) if previous else 1
    taken = [copy.attempt for copy in target.copies if copy.source_uid == job.uid]
    return max([next_of_record, *(attempt + 1 for attempt in taken)])


@dataclass(frozen=True, slots=True)
class Loss:
    """How a placement's copy was lost, and what that says about its pool."""

    event: str  # the Event's reason on the on-prem Job
    remote_state: str  # `federator.io/remote-state` until the job is placed again
    preemption: bool  # evidence for the pool's preemption rate
    # the pool gets nothing new for `block_pool_for_s`, and the block says why (None: it may)
    blocks_pool: BlockCause | None
    # Counted among the job's losses (which end in `give_up`) and followed by the backoff.
    # False where nothing says the job or the pool failed, only that the copy had to go.
    counts_against_job: bool = True


PREEMPTED = Loss("Preempted", "Preempted", preemption=True, blocks_pool=BlockCause.PREEMPTION)
CLUSTER_LOST = Loss("ClusterLost", "Lost", preemption=False, blocks_pool=None)
# The copy vanished from a draining cluster (deleted by someone, most often whoever drains it):
# not recreated there, where no new copy goes, but decided again at once. Nothing says the job
# or the pool failed, so it is no loss (before, each one counted, and the fourth, past the
# default `max_replacements` of 3, ended the job in `give_up`). What the copy ran is charged
# as for any lost attempt.
COPY_GONE = Loss("CopyGone", "Gone", preemption=False, blocks_pool=None, counts_against_job=False)
# Capacity that never came (spot capacity unavailable, a pool that cannot scale, a taint):
# the pool is avoided as after a preemption, but nothing was preempted, so the pool's
# preemption rate (its price in the cost model) learns nothing from it.
START_TIMEOUT = Loss(
    "CloudStartTimeout", "NotStarted", preemption=False, blocks_pool=BlockCause.START_TIMEOUT
)
