"""The seam between the federation loop and the clusters: the values that cross it and the ports.

The loop (`federation.py`) only knows these Protocols; `federator.kube.onprem.OnPremCluster` and
`federator.kube.cloud.CloudCluster` implement them structurally, and the unit tests implement them
with in-memory fakes. Everything crossing the seam is a frozen value: no client-library object
ever reaches the loop, so the loop can be read (and tested) without Kubernetes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

from federator.core.models import Offer, OnPremState, PendingJob
from federator.federation.blocks import PoolBlocks
from federator.federation.records import PlacementRecord
from federator.federation.spending import SpendBook


class CopyState(StrEnum):
    """What a cloud copy is doing, as far as the cloud cluster says."""

    SUSPENDED = "Suspended"  # created, waiting for its data
    PENDING = "Pending"  # pods not running yet
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    PREEMPTED = "Preempted"  # lost a node or a pod was disrupted

    @property
    def terminal(self) -> bool:
        return self in (CopyState.SUCCEEDED, CopyState.FAILED)

    @property
    def started(self) -> bool:
        return self not in (CopyState.SUSPENDED, CopyState.PENDING)


@dataclass(frozen=True, slots=True)
class CopyView:
    """One Job federator created on a cloud cluster, identified by its labels."""

    cluster: str
    namespace: str
    name: str
    source_uid: str
    attempt: int
    pool: str
    state: CopyState
    succeeded: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    running_pods: int = 0
    message: str = ""
    created_at: float | None = None
    # Since when the copy has waited for its pods (`burst.replacement.start_timeout`): its
    # creation, or its resume once its data was copied. None while suspended, or resumed but
    # not yet seen by the Job controller: a copy waiting for its data is never timed out.
    pending_since: float | None = None


@dataclass(frozen=True, slots=True)
class PoolView:
    """What one cloud pool has right now, observed from its nodes and pods."""

    cluster: str
    pool: str
    nodes: int
    allocatable_gpus: int
    requested_gpus: int
    pending_pods: int

    @property
    def free_gpus(self) -> int:
        return max(0, self.allocatable_gpus - self.requested_gpus)


@dataclass(frozen=True, slots=True)
class CloudView:
    """One cloud cluster as last observed; `up` is False while it does not answer."""

    cluster: str
    up: bool
    synced: bool  # every reflector listed at least once since start
    down_since: float | None = None
    pools: Mapping[str, PoolView] = field(default_factory=dict)
    copies: tuple[CopyView, ...] = ()


# `OnPremJob.foreign_record_uid` of a record without a uid that predates its Job.
UNKNOWN_UID = "unknown"


@dataclass(frozen=True, slots=True)
class OnPremJob:
    """An on-prem Job federator knows: its identity, whether it may move, and its record."""

    key: str  # "<namespace>/<name>"
    namespace: str
    name: str
    uid: str
    resource_version: str
    gpus: int
    record: PlacementRecord | None
    spec: PendingJob  # the cost model's view of the job (whether it waits or not)
    waiting: bool = False  # Kueue (or nobody, for a plain suspended Job) still waits to start it
    active_pods: int = 0  # pods the on-prem Job controller runs for it
    finished: bool = False  # the on-prem Job has a terminal condition
    admitted: bool = False  # its Workload reserved quota on-prem
    workload: str | None = None  # Workload name, None for plain suspended Jobs
    burst_allowed: bool = True
    # (dataset, cluster, digest of the failure's error) of each replica failure the Job was told of
    # (`DataCopyFailed`), oldest first, as kept on the Job (see `DataProblemNotes`)
    data_problems_told: tuple[tuple[str, str, str], ...] = ()
    # The record its last placement had when federator dropped it (the job went back on-prem),
    # as kept on the Job (`federator.io/returned-record`); None once a new record is written.
    # A later burst continues its attempts and preemptions, and past `max_replacements` the job
    # never bursts again (docs/design.md §6).
    returned_record: PlacementRecord | None = None
    # The uid a `federator.io/record` on the Job names when it is not this Job's: the Job was
    # re-created (new uid) with an earlier Job's annotations, e.g. by `kubectl replace
    # --force`; `UNKNOWN_UID` for a record without a uid (an older federator's) placed before
    # the Job was created. That record counts as none (`record` is None, the job is decided
    # afresh); the loop drops it, with its `placement` and `remote-state`, and says so on the
    # Job once.
    foreign_record_uid: str | None = None


@dataclass(frozen=True, slots=True)
class QueueView:
    """Per-queue numbers for the queue metrics."""

    queue: str
    pending_workloads: int
    pending_gpus: int
    oldest_pending_s: float


@dataclass(frozen=True, slots=True)
class OnPremView:
    """The on-prem cluster as last observed."""

    up: bool
    synced: bool
    state: OnPremState
    jobs: tuple[OnPremJob, ...] = ()  # waiting jobs and jobs with a placement record
    queues: tuple[QueueView, ...] = ()
    source_uids: frozenset[str] = frozenset()  # every Job on-prem (GC keeps their copies)


@dataclass(frozen=True, slots=True)
class Terminal:
    """The terminal state to give an on-prem Job, taken from the copy that finished it."""

    succeeded: bool
    started_at: float
    finished_at: float
    completions: int
    message: str


class OnPremPort(Protocol):
    """What the loop needs from the on-prem cluster."""

    async def snapshot(self, now: float) -> OnPremView: ...

    async def write_record(self, job: OnPremJob, record: PlacementRecord | None) -> OnPremJob:
        """Write (or with None remove) the record, preconditioned on job.resource_version."""
        ...

    async def write_returned_record(self, job: OnPremJob, record: PlacementRecord) -> OnPremJob:
        """Rewrite the record a job back on-prem keeps (`OnPremJob.returned_record`; its lost
        copies settled), preconditioned on job.resource_version; returns the job as written."""
        ...

    async def hold_on_prem(self, job: OnPremJob) -> bool:
        """Deactivate the Workload (preconditioned); True when the job cannot start on-prem,
        False when it holds quota, is admitted or finished there. A precondition that fails,
        or a Workload found active again at the final check, raises `Conflict` (the pass
        tries the step again on fresh data)."""
        ...

    async def release_on_prem(self, job: OnPremJob) -> None:
        """Reactivate the Workload so Kueue may admit the job on-prem again."""
        ...

    async def note_return(self, job: OnPremJob, *, why: str) -> OnPremJob:
        """Leave on the Job when and why it went back to the on-prem queue (Events expire);
        returns it with its new resourceVersion. Preconditioned on `job.resource_version` when
        the job has a record: `Conflict` if the Job changed since the pass read it."""
        ...

    async def mirror(self, job: OnPremJob, *, remote_state: str) -> OnPremJob:
        """Show the copy's state on the on-prem Job; returns it with its new resourceVersion."""
        ...

    async def finish(self, job: OnPremJob, terminal: Terminal) -> OnPremJob:
        """Give the suspended on-prem Job the terminal status of its cloud copy.
        Preconditioned on `job.resource_version`: `Conflict` if the Job changed since the pass
        read it (another writer; the next pass decides again)."""
        ...

    async def event(self, job: OnPremJob, *, reason: str, message: str, warning: bool) -> None: ...


@runtime_checkable
class DataProblemNotes(Protocol):
    """An on-prem port that keeps on each Job which data failures it was told of, so that a
    restart or a new leader does not tell them again (`OnPremJob.data_problems_told` reads them
    back). Optional, apart from `OnPremPort`: a port without it (the unit fakes) leaves what
    was told in the loop's memory only; the loop checks the write fence before each of its
    writes itself (`data_problems.ToldOnJobs`)."""

    async def note_data_problems(
        self, job: OnPremJob, told: tuple[tuple[str, str, str], ...]
    ) -> OnPremJob:
        """Keep `told` (oldest first; the oldest dropped past a few hundred bytes) on the Job,
        in place of what it held; returns it with its new resourceVersion."""
        ...


@dataclass(frozen=True, slots=True)
class CopyRequest:
    """Everything a cloud cluster needs to create one copy."""

    source: OnPremJob
    pool: str
    attempt: int
    suspended: bool  # wait for data before starting


class CloudPort(Protocol):
    """What the loop needs from one cloud cluster."""

    name: str

    async def snapshot(self, now: float) -> CloudView: ...

    async def create_copy(self, request: CopyRequest) -> bool:
        """Create (or find) the copy; True when it was created now, False when it existed."""
        ...

    async def resume_copy(self, copy: CopyView) -> None: ...

    async def delete_copy(self, namespace: str, name: str) -> None: ...

    async def sweep_configs(self, keep_uids: frozenset[str]) -> int:
        """Delete copied ConfigMaps/Secrets whose job is not in `keep_uids`; returns how many."""
        ...


class OffersProvider(Protocol):
    """The priced cloud pools, before federator overlays what the clusters say is free."""

    async def __call__(self) -> Sequence[Offer]: ...


@dataclass(frozen=True, slots=True)
class DataReadiness:
    """The data gate's answer for one replica: may the job start, and if the replica's last
    copy or listing failed, why.

    `problem` is the replica's own account of its failure, ending with when it is tried again
    (e.g. `... AccessDenied (2 failures in a row; next try after 16:02:30 UTC)`); a new failure
    gives a new text, so the loop tells a job each one once; without that end (the count and
    the next try, which restart with the process) the text is the error that a new process
    checks against what the Job was told (`DataProblemNotes`). "" while nothing failed (a copy
    running, or a replica complete). A job may start beside a failed copy when its dataset
    does not wait for it (`sync_before_start: false`).
    """

    may_start: bool
    problem: str = ""


class DataGate(Protocol):
    """The sync engineer's API, seen from here: is a job's data where its copy runs?

    The daemon adapts `federator.syncing.replication.Replicator` to it: `ensure_replicated`
    starts a background copy when the replica is behind and says whether the job may start,
    and why not when the replica's last try failed; `outputs_synced` says whether a finished
    job's outputs came back (GC waits for it).
    """

    async def ensure_replicated(self, dataset: str, cluster: str) -> DataReadiness:
        """Start (if needed) replicating `dataset` to `cluster`; `may_start` once it is there
        (or need not be), `problem` while its last try failed."""
        ...

    async def outputs_synced(self, job_key: str, cluster: str) -> bool: ...


class DataSizes(Protocol):
    """Bytes still to copy per replica (the `Replicator` has it): the cost model's transfer."""

    def bytes_remaining(self, dataset: str, cluster: str) -> int | None: ...


class SpendStore(Protocol):
    """Where the `SpendBook` (spend of jobs that are gone) lives between processes."""

    async def load(self) -> SpendBook: ...

    async def save(self, book: SpendBook) -> None: ...


class PoolBlockStore(Protocol):
    """Where the pool blocks (`PoolBlocks`) live between processes and leaders."""

    async def load(self) -> PoolBlocks: ...

    async def save(self, blocks: PoolBlocks, *, now: float) -> PoolBlocks:
        """Write `blocks` merged with what the object holds (the later block wins), without
        those ended by `now`; returns what was written."""
        ...
