"""In-memory clusters implementing the federation ports, for testing the loop without Kubernetes.

They keep state the way the real adapters do (records on jobs, copies by deterministic name) and
count every write, so tests can assert "exactly one copy" or "the Workload was held first".
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from federator.core.models import OnPremState, PendingJob
from federator.federation.ports import (
    CloudView,
    CopyRequest,
    CopyState,
    CopyView,
    OnPremJob,
    OnPremView,
    PoolView,
    Terminal,
)
from federator.federation.records import PlacementRecord, copy_name
from federator.kube.errors import Conflict


@dataclass
class FakeJob:
    name: str
    gpus: int
    uid: str
    namespace: str = "team-a"
    version: int = 1
    record: PlacementRecord | None = None
    waiting: bool = True
    active_workload: bool = True
    admitted: bool = False
    active_pods: int = 0
    terminal: Terminal | None = None
    remote_state: str = ""
    returned: str = ""  # the note of the last return on-prem
    returned_record: PlacementRecord | None = None  # kept when the record is dropped
    burst_allowed: bool = True
    plain: bool = False  # a suspended Job without Kueue
    # The uid `record` names, as the adapter writes it (`convert.record_note`); None: the
    # Job's own, or a record an older federator wrote without one. Another Job's uid (the Job
    # re-created from an export) makes the record count as none, as `convert.record_of` does.
    record_uid: str | None = None

    @property
    def foreign_record_uid(self) -> str | None:
        foreign = self.record is not None and self.record_uid not in (None, self.uid)
        return self.record_uid if foreign else None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class FakeOnPrem:
    total_gpus: int = 16
    free_gpus: int = 0
    jobs: dict[str, FakeJob] = field(default_factory=dict)
    events: list[tuple[str, str]] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)
    deleted_uids: set[str] = field(default_factory=set)

    def add(self, name: str, gpus: int, **kw: object) -> FakeJob:
        job = FakeJob(name, gpus, uid=f"uid-{name}", **kw)  # type: ignore[arg-type]
        self.jobs[job.key] = job
        return job

    async def snapshot(self, now: float) -> OnPremView:
        views = []
        for job in self.jobs.values():
            foreign = job.foreign_record_uid
            record = None if foreign is not None else job.record
            waiting = job.waiting and job.active_workload and not job.admitted and not record
            waiting = waiting and job.terminal is None
            kept_lost = job.returned_record is not None and job.returned_record.lost_copies
            if record is None and not waiting and not kept_lost and foreign is None:
                continue  # as the adapter: kept lost copies count while the Job exists
            spec = PendingJob(
                key=job.key,
                gpus=job.gpus,
                submitted_at=0.0,
                runtime_estimate_s=60.0,
                namespace=job.namespace,
                burst_allowed=job.burst_allowed,
            )
            views.append(
                OnPremJob(
                    key=job.key,
                    namespace=job.namespace,
                    name=job.name,
                    uid=job.uid,
                    resource_version=str(job.version),
                    gpus=job.gpus,
                    record=record,
                    spec=spec,
                    waiting=waiting,
                    active_pods=job.active_pods,
                    finished=job.terminal is not None,
                    admitted=job.admitted,
                    workload=None if job.plain else f"wl-{job.name}",
                    burst_allowed=job.burst_allowed,
                    returned_record=job.returned_record,
                    foreign_record_uid=foreign,
                )
            )
        return OnPremView(
            up=True,
            synced=True,
            state=OnPremState(total_gpus=self.total_gpus, free_gpus=self.free_gpus),
            jobs=tuple(views),
            source_uids=frozenset(j.uid for j in self.jobs.values()),
        )

    async def write_record(self, job: OnPremJob, record: PlacementRecord | None) -> OnPremJob:
        fake = self.jobs[job.key]
        self._require_version(fake, job)
        # As the adapter: a dropped record is kept on the Job, a new one replaces the kept one.
        # (a dropped record of another Job is not kept, and the copy's state goes with it).
        if record is None or job.record is None:  # no copy state without a record, or yet
            fake.remote_state = ""
        if record is not None:
            fake.returned_record = None
        elif fake.record is not None and fake.foreign_record_uid is None:
            fake.returned_record = fake.record
        fake.record = record
        fake.record_uid = fake.uid if record is not None else None
        fake.version += 1
        self.writes.append(f"record {job.key} {record.phase if record else None}")
        return replace(
            job,
            record=record,
            resource_version=str(fake.version),
            returned_record=fake.returned_record,
        )

    async def write_returned_record(self, job: OnPremJob, record: PlacementRecord) -> OnPremJob:
        fake = self.jobs[job.key]
        self._require_version(fake, job)
        fake.returned_record = record
        fake.version += 1
        self.writes.append(f"returned-record {job.key}")
        return replace(job, resource_version=str(fake.version), returned_record=record)

    async def hold_on_prem(self, job: OnPremJob) -> bool:
        fake = self.jobs[job.key]
        if fake.admitted:
            return False
        fake.active_workload = False
        self.writes.append(f"hold {job.key}")
        return True

    async def release_on_prem(self, job: OnPremJob) -> None:
        self.jobs[job.key].active_workload = True
        self.writes.append(f"release {job.key}")

    async def note_return(self, job: OnPremJob, *, why: str) -> OnPremJob:
        fake = self.jobs[job.key]
        if job.record is not None:  # as the adapter: preconditioned when the job has a record
            self._require_version(fake, job)
        fake.returned = why
        fake.version += 1
        self.writes.append(f"note {job.key} returned")
        return replace(job, resource_version=str(fake.version))

    async def mirror(self, job: OnPremJob, *, remote_state: str) -> OnPremJob:
        fake = self.jobs[job.key]
        if fake.remote_state != remote_state:
            fake.remote_state = remote_state
            fake.version += 1
        return replace(job, resource_version=str(fake.version))

    async def finish(self, job: OnPremJob, terminal: Terminal) -> OnPremJob:
        fake = self.jobs[job.key]
        assert fake.terminal is None, f"{job.key} finished twice"
        self._require_version(fake, job)  # as the adapter: on the version the pass read
        fake.terminal = terminal
        fake.version += 1
        self.writes.append(f"finish {job.key} {terminal.succeeded}")
        return replace(job, resource_version=str(fake.version), finished=True)

    async def event(self, job: OnPremJob, *, reason: str, message: str, warning: bool) -> None:
        self.events.append((job.key, reason))

    @staticmethod
    def _require_version(fake: FakeJob, job: OnPremJob) -> None:
        """The API server's answer to a patch carrying a resourceVersion it no longer has."""
        if str(fake.version) != job.resource_version:
            raise Conflict("onprem", 409, "changed")


@dataclass
class FakeCopy:
    request_pool: str
    source_uid: str
    attempt: int
    namespace: str
    name: str
    state: CopyState
    suspended: bool
    pending_since: float | None = None  # created, or resumed, at (a Job's startTime)


@dataclass
class FakeCloud:
    name: str
    pools: dict[str, int] = field(default_factory=lambda: {"spot": 32})
    up: bool = True
    down_since: float | None = None
    copies: dict[str, FakeCopy] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    seen_at: float | None = None  # the last snapshot's time: "now" for creates and resumes

    async def snapshot(self, now: float) -> CloudView:
        self.seen_at = now
        for c in self.copies.values():
            if c.state is CopyState.PENDING and c.pending_since is None:
                c.pending_since = now  # set to Pending by a test
        used: dict[str, int] = {}
        pools = {
            pool: PoolView(self.name, pool, gpus // 8, gpus, used.get(pool, 0), 0)
            for pool, gpus in self.pools.items()
        }
        copies = tuple(
            CopyView(
                cluster=self.name,
                namespace=c.namespace,
                name=c.name,
                source_uid=c.source_uid,
                attempt=c.attempt,
                pool=c.request_pool,
                state=c.state,
                succeeded=1 if c.state is CopyState.SUCCEEDED else 0,
                started_at=now - 10,
                finished_at=now if c.state.terminal else None,
                pending_since=None if c.state is CopyState.SUSPENDED else c.pending_since,
            )
            for c in self.copies.values()
        )
        return CloudView(self.name, self.up, True, self.down_since, pools, copies)

    def _require_up(self) -> None:
        if not self.up:
            from federator.errors import ClusterUnavailable

            raise ClusterUnavailable(self.name, "down")

    async def create_copy(self, request: CopyRequest) -> bool:
        self._require_up()
        job = request.source
        name = copy_name(job.name, job.uid, request.attempt)
        key = f"{job.namespace}/{name}"
        if key in self.copies:
            return False
        state = CopyState.SUSPENDED if request.suspended else CopyState.PENDING
        self.copies[key] = FakeCopy(
            request.pool,
            job.uid,
            request.attempt,
            job.namespace,
            name,
            state,
            request.suspended,
            pending_since=None if request.suspended else self.seen_at,
        )
        self.created.append(key)
        return True

    async def resume_copy(self, copy: CopyView) -> None:
        self._require_up()
        resumed = self.copies[f"{copy.namespace}/{copy.name}"]
        resumed.state, resumed.pending_since = CopyState.PENDING, self.seen_at

    async def delete_copy(self, namespace: str, name: str) -> None:
        self._require_up()
        if self.copies.pop(f"{namespace}/{name}", None) is not None:
            self.deleted.append(f"{namespace}/{name}")

    async def sweep_configs(self, keep_uids: frozenset[str]) -> int:
        return 0

    def set_state(self, source_uid: str, state: CopyState) -> None:
        for copy in self.copies.values():
            if copy.source_uid == source_uid:
                copy.state = state

    def running_copies_of(self, source_uid: str) -> list[FakeCopy]:
        return [c for c in self.copies.values() if c.source_uid == source_uid]
