"""Data problems: getting a job's datasets to its cloud cluster, and telling the job why not.

A job's copy on a cloud cluster may start once its datasets are replicated there (the
`DataGate`). Each time the loop places, recreates or resumes a copy it asks the gate
(`ready`), and for a job held until its data is on a pool's cluster it starts the copy of
that data (`replicate_for_hold`). A replica whose copy or listing failed is told on the job
(`tell`): a Warning Event once per failure, kept on the Job (`ToldOnJobs`) so that a restart
or a new leader does not tell it again, and a line in every pass's failures while it lasts.

The federation loop creates one `DataProblems`; every write (the Event, the note on the Job)
goes through the loop's write fence.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

import structlog

from federator import errors
from federator.core.decisions import Decision
from federator.federation import fencing
from federator.federation.ports import (
    DataGate,
    DataProblemNotes,
    DataReadiness,
    DataSizes,
    OnPremJob,
    OnPremPort,
    OnPremView,
)
from federator.federation.reports import PassReport

log = structlog.get_logger(__name__)


class DataProblems:
    """The data each placed or held job needs on its cluster, and the failures told to it."""

    def __init__(
        self,
        onprem: OnPremPort,
        told_on_jobs: ToldOnJobs,
        *,
        data: Callable[[], DataGate | None],
        sizes: DataSizes | None,
    ) -> None:
        self._onprem = onprem  # fenced by the federation, like every write
        self._told_on_jobs = told_on_jobs
        self._data = data  # the federation's `data` (None: every copy may start at once)
        self._sizes = sizes
        self._replication_asked: set[tuple[str, str]] = set()  # (dataset, cluster), for the log
        # (job uid, dataset, cluster) -> the replica's failure last told on the job by this
        # process, so that a failure is told once, not every pass (see `tell`); what was told
        # is also kept on the Job itself, for the next process
        self._told: dict[tuple[str, str, str], str] = {}

    async def replicate_for_hold(
        self,
        job: OnPremJob,
        decision: Decision,
        asked: dict[tuple[str, str], DataReadiness | None],
        report: PassReport,
    ) -> None:
        """Start copying the data of a job held until it is on the pool's cluster, so that a
        later pass finds it there (or nearly) and bursts; without this nothing copied it and
        the job was held for ever. The replicator runs one copy per replica and answers from
        it while it runs, so asking each pass starts nothing twice; a replica it says is
        complete is not asked about again, and each one at most once per pass (every job held
        for it is told the answer's failure, if any)."""
        cluster, data = decision.cluster, self._data()
        if data is None or cluster is None or not job.burst_allowed:
            return  # a job that may not leave never has its data sent out
        for need in job.spec.datasets:
            replica = (need.name, cluster)
            if self._sizes is not None and self._sizes.bytes_remaining(*replica) == 0:
                continue
            if replica not in asked:
                asked[replica] = None  # if the ask raises, the next job does not ask again
                asked[replica] = await data.ensure_replicated(need.name, cluster)
                if replica not in self._replication_asked:
                    self._replication_asked.add(replica)
                    report.actions.append(f"replicate {need.name} to {cluster}: {job.key} waits")
                    log.info("replication_started", dataset=need.name, cluster=cluster, job=job.key)
            answer = asked[replica]
            if answer is not None:
                await self.tell(job, need.name, cluster, answer, report)

    async def ready(self, job: OnPremJob, cluster: str, report: PassReport) -> bool:
        """Whether the job's copy on `cluster` may start; a replica whose copy failed is told
        on the job (`tell`)."""
        data = self._data()
        if data is None:
            return True
        ready = True
        for need in job.spec.datasets:
            answer = await data.ensure_replicated(need.name, cluster)
            await self.tell(job, need.name, cluster, answer, report)
            ready = ready and answer.may_start
        return ready

    async def tell(
        self, job: OnPremJob, dataset: str, cluster: str, answer: DataReadiness, report: PassReport
    ) -> None:
        """A job whose replica's last copy or listing failed learns why, where its owner looks:
        a Warning Event `DataCopyFailed` on the on-prem Job, once per failure (the problem's
        text is new with each one: it counts them and says when the next try is), and a line
        in every pass's failures while it lasts.

        What was told is kept on the Job too (`ToldOnJobs`): in memory only, a restart or a
        new leader told every job held by a failing replica again. Kept on the Job rather than
        read back from its Events: the port lists no Events, and they expire (an hour by
        default) while a job may wait for its data longer. The first failure a process sees
        is checked against the Job by its error alone: the replicator's count and backoff are
        in memory, so a new process's first try of a replica that still fails says "1 failure
        in a row" of the same error, which the job has heard. A failure that clears is dropped
        there too, so that when it comes back it is news again. A post that fails is not
        noted, and is tried again next pass; it does not stop the placement that asked."""
        told = (job.uid, dataset, cluster)
        if not answer.problem:
            self._told.pop(told, None)  # a later failure is news again
            self._told_on_jobs.cleared(job, dataset, cluster)
            return
        waits = "the job waits for it" if not answer.may_start else "the job does not wait for it"
        message = f"the copy of dataset {dataset} to {cluster} failed: {answer.problem}; {waits}"
        report.failures.append(f"{job.key}: {message}")
        last = self._told.get(told)
        if last == answer.problem:
            return
        if last is None and self._told_on_jobs.was_told(job, dataset, cluster, answer.problem):
            self._told[told] = answer.problem  # told by an earlier process
            return
        try:
            await self._onprem.event(job, reason="DataCopyFailed", message=message, warning=True)
        except errors.FederatorError as e:
            log.warning("data_copy_failure_not_told", job=job.key, error=str(e))
            return
        self._told[told] = answer.problem
        self._told_on_jobs.told(job, dataset, cluster, answer.problem)
        log.info("data_copy_failure_told", job=job.key, dataset=dataset, cluster=cluster)

    def forget_gone_jobs(self, onprem: OnPremView) -> None:
        """What was told to jobs no longer waiting nor placed is dropped (bounded memory), and
        notes an earlier pass gathered but did not write (`ToldOnJobs.new_pass`)."""
        self._told_on_jobs.new_pass()
        present = {job.uid for job in onprem.jobs}
        self._told = {told: problem for told, problem in self._told.items() if told[0] in present}

    async def write_notes(self) -> None:
        """Write what was told on each Job this pass (`ToldOnJobs.write`); the loop calls it
        last: its writes change the Jobs' versions, which the record writes are conditioned on."""
        await self._told_on_jobs.write()


class ToldOnJobs:
    """The data failures each Job was told of, kept on the Job by the on-prem adapter
    (`DataProblemNotes`, the annotation `federator.io/data-problem-told`) so that they survive
    a restart and a leader hand-over; a port without it (the unit fakes) keeps none.

    A failure is kept as a digest of its error (`_error_of`): bounded, and what a new process
    compares a replica's failure with, its count restarting at 1. Changes are gathered over a
    pass and written once per Job at its end (`write`), through the write fence like every
    write: written at once, a note would change the Job's resourceVersion under a record
    write later in the same pass, which is preconditioned on it."""

    def __init__(self, onprem: OnPremPort, fence: fencing.Fence) -> None:
        self._notes = onprem if isinstance(onprem, DataProblemNotes) else None
        self._fence = fence
        # job uid -> the job and what it is to be told it was told, at the end of the pass
        self._due: dict[str, tuple[OnPremJob, dict[tuple[str, str], str]]] = {}

    def was_told(self, job: OnPremJob, dataset: str, cluster: str, problem: str) -> bool:
        """Whether the Job says it was told of this failure's error (by any process)."""
        return (dataset, cluster, _digest(_error_of(problem))) in job.data_problems_told

    def told(self, job: OnPremJob, dataset: str, cluster: str, problem: str) -> None:
        """Note on the Job (at `write`) that it was told of this failure."""
        if self._notes is not None:
            self._changes(job)[(dataset, cluster)] = _digest(_error_of(problem))

    def cleared(self, job: OnPremJob, dataset: str, cluster: str) -> None:
        """Drop the Job's note of a failure on this replica: it no longer fails."""
        kept = (told[:2] for told in job.data_problems_told)
        if self._notes is not None and (dataset, cluster) in kept:
            self._changes(job)[(dataset, cluster)] = ""

    def new_pass(self) -> None:
        """Forget changes a pass that ended early (the fence closed) did not write: they were
        gathered on Jobs as they were then, and another leader may have written since."""
        self._due = {}

    def _changes(self, job: OnPremJob) -> dict[tuple[str, str], str]:
        return self._due.setdefault(job.uid, (job, {}))[1]

    async def write(self) -> None:
        """Write what changed; a write that fails is logged (only a restart may then tell
        that failure again: this process remembers it)."""
        due, self._due = self._due, {}
        if self._notes is None:
            return
        for job, changes in due.values():
            kept = {told[:2]: told[2] for told in job.data_problems_told}
            for replica, digest in changes.items():
                if kept.get(replica) == digest:
                    continue  # the same error told again: nothing new to keep
                kept.pop(replica, None)  # a new failure is the newest (the bound drops the oldest)
                if digest:
                    kept[replica] = digest
            told = tuple((dataset, cluster, d) for (dataset, cluster), d in kept.items())
            if told == job.data_problems_told:
                continue
            self._fence.require(f"noting the data failures told to {job.key}")
            try:
                await self._notes.note_data_problems(job, told)
            except errors.FederatorError as e:
                log.warning("data_copy_failures_told_not_kept", job=job.key, error=str(e))


# The end of a replica's failure that counts the tries and says when the next one is (see
# `ports.DataReadiness.problem`): `... AccessDenied (2 failures in a row; next try after
# 16:02:30 UTC)`.
_TRIES = re.compile(r" \(\d+ failures? in a row; next try after [^)]*\)$")


def _error_of(problem: str) -> str:
    """The failure without its count of tries and next try: what stays the same while the
    same fault lasts (a gate's text without that end is taken whole)."""
    return _TRIES.sub("", problem)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]
