"""Pure: what each placed job needs next, and which cloud copies must go.

Given the observed on-prem jobs (with their placement records) and cloud clusters, `converge`
says for every record one `Step` (finish it, mirror it, re-place it, recreate its copy …) and
`garbage` says which copies no record vouches for, `pull_backs` which unstarted copies come
home because on-prem has room. All are functions of values and `now`, so
every rule of docs/design.md §4–§9 is tested here without a cluster (tests/unit/federation/).
The loop (`federation.py`, through `moves.Moves`) only carries the steps out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from federator.core.decisions import Decision, DecisionKind
from federator.core.onprem import pool_of
from federator.federation.ports import CloudView, CopyState, CopyView, OnPremJob, OnPremView
from federator.federation.records import Phase, PlacementRecord


class StepKind(StrEnum):
    NOTHING = "nothing"
    CONTINUE_PLACING = "continue_placing"  # crash after the record: hold, create, confirm
    RECREATE = "recreate"  # record says placed, the cluster answers, the copy is gone
    RESUME = "resume"  # the copy waits for data; resume it when the data is there
    MIRROR = "mirror"  # show the copy's state on the on-prem Job
    FINISH = "finish"  # the copy ended: give the on-prem Job the same terminal state
    PREEMPTED = "preempted"  # the copy lost its node: delete it, re-place the job
    NOT_STARTED = "not_started"  # no pod started within the start timeout: delete, re-place
    LOST = "lost"  # the cluster is gone for longer than the timeout: re-place the job
    GONE = "gone"  # the copy is gone from a draining cluster: re-place the job elsewhere
    # The copy was never made and its cluster is draining: decide the job again (no loss).
    UNPLACED = "unplaced"
    WITHDRAW = "withdraw"  # the job started on-prem after all: delete the copy, drop the record
    MARK_DONE = "mark_done"  # the on-prem Job is terminal; the record catches up
    REDECIDE = "redecide"  # requeued and past its backoff: decide again
    # The record names a cluster the policy does not configure (removed from the file): its
    # copy may run on there, unseen; re-placing the job would run it twice. Left as it is.
    UNMANAGED = "unmanaged"


@dataclass(frozen=True, slots=True)
class Step:
    kind: StepKind
    job: OnPremJob
    copy: CopyView | None = None
    reason: str = ""
    # The reason already says where ("... on cloud-a/spot"): an Event made from it adds no
    # "<placement>: " in front. Said here, where the reason is written, so that no reader has
    # to find the placement in the text, which breaks silently when the wording changes.
    reason_names_placement: bool = False


@dataclass(frozen=True, slots=True)
class Timeouts:
    lost_cluster_s: Mapping[str, float]  # per cloud cluster
    default_lost_cluster_s: float = 300.0
    start_s: float | None = None  # a copy pending longer is re-placed; None: never

    def lost_after(self, cluster: str) -> float:
        return self.lost_cluster_s.get(cluster, self.default_lost_cluster_s)

    def start_timed_out(self, copy: CopyView, now: float) -> bool:
        """The copy has been waiting for its pods longer than the start timeout. Only a
        Pending copy is timed, from when it could start (`pending_since`): one waiting for its
        data is not waiting for capacity."""
        if self.start_s is None or copy.state is not CopyState.PENDING:
            return False
        return copy.pending_since is not None and now - copy.pending_since >= self.start_s


def copies_by_source(clouds: Mapping[str, CloudView]) -> dict[tuple[str, str, int], CopyView]:
    """(cluster, source uid, attempt) -> copy."""
    return {(c.cluster, c.source_uid, c.attempt): c for v in clouds.values() for c in v.copies}


def converge(
    onprem: OnPremView,
    clouds: Mapping[str, CloudView],
    timeouts: Timeouts,
    *,
    now: float,
    draining: frozenset[str] = frozenset(),
) -> list[Step]:
    """One step per job that has a record (and is not done). `draining`: the clusters that
    take no new copy (`clusters[].draining`), not even one recreated in place of a lost one,
    nor the copy of a placement still being made (its copy not there yet): that job is decided
    again (`UNPLACED`). A copy already made runs on, as every running job there does."""
    index = copies_by_source(clouds)
    steps: list[Step] = []
    for job in onprem.jobs:
        if job.record is None or job.record.phase is Phase.DONE:
            continue
        step = _step(job, clouds, index, timeouts, now)
        draining_there = job.record.cluster in draining
        if step.kind is StepKind.RECREATE and draining_there:
            reason = f"its copy is gone and {job.record.cluster} is draining"
            step = Step(StepKind.GONE, job, reason=reason)
        elif step.kind is StepKind.CONTINUE_PLACING and step.copy is None and draining_there:
            step = Step(StepKind.UNPLACED, job, reason=f"{job.record.cluster} is draining")
        steps.append(step)
    return steps


def _step(
    job: OnPremJob,
    clouds: Mapping[str, CloudView],
    index: Mapping[tuple[str, str, int], CopyView],
    timeouts: Timeouts,
    now: float,
) -> Step:
    record = job.record
    assert record is not None
    if job.finished:
        return Step(StepKind.MARK_DONE, job)
    view = clouds.get(record.cluster)
    if view is None and record.phase is not Phase.REQUEUED:
        # Not configured: not lost, nobody may say where its copy is. Even once the job runs
        # on-prem (reactivated by hand): a withdrawal could not delete the copy, and dropping
        # the record would hide the copy left running there.
        return Step(StepKind.UNMANAGED, job, reason=unmanaged_reason(record.cluster))
    if job.active_pods > 0 or job.admitted:
        copy = index.get((record.cluster, job.uid, record.attempt))
        return Step(StepKind.WITHDRAW, job, copy, "the job started on-prem")
    if record.phase is Phase.REQUEUED:
        if now >= record.not_before:
            return Step(StepKind.REDECIDE, job)
        return Step(StepKind.NOTHING, job)
    assert view is not None  # an unconfigured cluster's record is UNMANAGED or REQUEUED above
    if not view.up:
        down_for = now - (view.down_since if view.down_since is not None else now)
        if down_for >= timeouts.lost_after(record.cluster):
            return Step(StepKind.LOST, job, reason=f"{record.cluster} unreachable {down_for:.0f}s")
        return Step(StepKind.NOTHING, job)
    if not view.synced:
        return Step(StepKind.NOTHING, job)
    copy = index.get((record.cluster, job.uid, record.attempt))
    if record.phase is Phase.PLACING:
        return Step(StepKind.CONTINUE_PLACING, job, copy)
    if copy is None:
        return Step(StepKind.RECREATE, job)
    match copy.state:
        case CopyState.SUCCEEDED | CopyState.FAILED:
            return Step(StepKind.FINISH, job, copy)
        case CopyState.PREEMPTED:
            return Step(StepKind.PREEMPTED, job, copy, "the copy lost its node or was disrupted")
        case CopyState.SUSPENDED:
            return Step(StepKind.RESUME, job, copy)
        case CopyState.PENDING if timeouts.start_timed_out(copy, now):
            assert timeouts.start_s is not None
            why = f"no pod of the copy started within {_duration(timeouts.start_s)}"
            reason = f"{why} on {record.placement}"
            return Step(StepKind.NOT_STARTED, job, copy, reason, reason_names_placement=True)
        case _:
            return Step(StepKind.MIRROR, job, copy)


def unmanaged_reason(cluster: str) -> str:
    """What the operator reads on a job placed on a cluster the policy does not name: what
    federator does (nothing) and the two ways out. Constant for a cluster, so that the Event
    made from it is posted once (its name is derived from its text)."""
    return (
        f"placed on cloud cluster {cluster}, which the policy file no longer names: federator "
        f"neither watches nor re-places this job, and its copy may still run (and bill) on "
        f"{cluster}. Put {cluster} back in the policy with `draining: true` so federator "
        f"finishes the job and deletes its copy, or delete this Job"
    )


def unmanaged_placements(
    onprem: OnPremView, clouds: Mapping[str, CloudView]
) -> list[tuple[str, OnPremJob]]:
    """(cluster, job) of each job that `converge` leaves alone because its live record names
    a cluster not in `clouds` (the configured ones), by cluster then job."""
    found = []
    for job in onprem.jobs:
        record = job.record
        if record is None or record.phase not in (Phase.PLACING, Phase.PLACED):
            continue
        if job.finished or job.active_pods > 0 or job.admitted:
            continue  # `converge` marks it done or withdraws it: nothing is left running
        if record.cluster not in clouds:
            found.append((record.cluster, job))
    return sorted(found, key=lambda found: (found[0], found[1].key))


def _duration(seconds: float) -> str:
    """A start timeout exactly, in whole minutes or else seconds: `15m`, `90s`, `60m`.

    Not `core.reasons.duration`, which rounds waits down (`90s` would read `1m`, a timeout
    shorter than the one set), nor `policy.units.format_duration` (`1m30s`): the Event text
    `within 90s` is pinned (tests/unit/federation/test_start_timeout_planning.py). The three
    agree on whole minutes under an hour, the usual start timeouts.
    """
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:.0f}m"
    return f"{seconds:g}s"


@dataclass(frozen=True, slots=True)
class Garbage:
    cluster: str
    copy: CopyView
    why: str


def garbage(
    onprem: OnPremView,
    clouds: Mapping[str, CloudView],
    *,
    now: float,
    grace_s: float,
    outputs_synced: frozenset[str] = frozenset(),
    check_outputs: bool = False,
    watched_namespaces: frozenset[str] | None = None,
) -> list[Garbage]:
    """Copies no record vouches for, on clusters that answer; never before on-prem synced.

    A copy stays while its job's record points at it (same cluster and attempt) and it has not
    finished, or finished less than `grace_s` ago, or its outputs have not come back yet
    (`outputs_synced` holds job keys, consulted only with `check_outputs`). A copy in a
    namespace the on-prem observer does not watch (`watched_namespaces`; None: it watches
    every one) always stays: its source's absence from the view proves nothing.
    """
    if not onprem.synced:
        return []
    records = {job.uid: job for job in onprem.jobs}
    found: list[Garbage] = []
    for view in clouds.values():
        if not (view.up and view.synced):
            continue
        for copy in view.copies:
            if not namespace_watched(copy.namespace, watched_namespaces):
                continue  # `unwatched_copies`: left alone
            why = _why_garbage(copy, records.get(copy.source_uid), onprem, now, grace_s)
            if why == "finished" and check_outputs:
                job = records[copy.source_uid]
                if job.key not in outputs_synced:
                    continue
            if why:
                found.append(Garbage(view.cluster, copy, why))
    return found


def namespace_watched(namespace: str, watched: frozenset[str] | None) -> bool:
    """Whether the on-prem observer sees the Jobs of `namespace` (None: it watches all). A
    copy lives in its source's namespace (`kube.convert.cloud_job`)."""
    return watched is None or namespace in watched


def unwatched_copies(
    clouds: Mapping[str, CloudView], watched: frozenset[str] | None
) -> list[CopyView]:
    """The copies `garbage` leaves alone because the on-prem observer does not watch their
    namespace (a namespace removed from the watched ones since they were placed)."""
    return [
        copy
        for view in clouds.values()
        for copy in view.copies
        if not namespace_watched(copy.namespace, watched)
    ]


def _why_garbage(
    copy: CopyView, job: OnPremJob | None, onprem: OnPremView, now: float, grace_s: float
) -> str:
    record = job.record if job is not None else None
    source_exists = copy.source_uid in onprem.source_uids
    return why_collected(copy, record, source_exists=source_exists, now=now, grace_s=grace_s)


def why_collected(
    copy: CopyView,
    record: PlacementRecord | None,
    *,
    source_exists: bool,
    now: float,
    grace_s: float,
) -> str:
    """Why the copy is garbage now ("" while something still vouches for it), given its
    source Job's own placement record and whether that Job exists on-prem at all; a finished
    copy's outputs are checked by the caller. `federator status --clouds` says the same."""
    if not source_exists:
        young = copy.created_at is not None and now - copy.created_at < grace_s
        return "" if young else "source deleted"
    if record is None:
        return "no placement record"
    if record.cluster != copy.cluster or record.attempt != copy.attempt:
        return "stale: the job was re-placed"
    if record.phase is Phase.REQUEUED:
        return "stale: the job is being re-placed"
    if record.phase is Phase.DONE:
        finished = copy.finished_at or record.finished_at or now
        if now - finished >= grace_s:
            return "finished"
    return ""


def backoff_s(attempt: int, *, initial_s: float, max_s: float) -> float:
    """Exponential backoff before re-placement `attempt` (1-based: the first waits initial_s)."""
    return float(min(max_s, initial_s * 2 ** max(0, attempt - 1)))


def pull_backs(
    onprem: OnPremView,
    clouds: Mapping[str, CloudView],
    decisions: Sequence[Decision],
    *,
    starting_within_s: float,
    after_s: float,
    now: float,
) -> list[tuple[OnPremJob, CopyView]]:
    """The placed jobs whose copy has not started and that on-prem has room for now, oldest
    placement first, each with its copy: the loop pulls them back on-prem. The room is the
    free GPUs less those of the jobs this round keeps on-prem to start within
    `starting_within_s`; a copy younger than `after_s` stays (hysteresis). With several quota
    pools (ClusterQueues, cohorts) each job needs room in its own."""
    free = _room_by_pool(onprem, decisions, starting_within_s)
    index = copies_by_source(clouds)
    # Only a job Kueue can run may come back: a plain suspended Job has nobody on-prem to
    # start it, so pulling it back would only put it in the queue to be bursted again
    # (the loop that made the plain-Job scenarios fail under load, issue 6).
    placed = sorted(
        (
            j
            for j in onprem.jobs
            if j.record is not None and j.record.phase is Phase.PLACED and j.workload
        ),
        key=lambda j: j.record.placed_at if j.record else 0.0,
    )
    chosen: list[tuple[OnPremJob, CopyView]] = []
    for job in placed:
        record = job.record
        assert record is not None
        copy = index.get((record.cluster, job.uid, record.attempt))
        pool = pool_of(job.spec, free)
        if copy is None or copy.state.started or job.gpus > free[pool]:
            continue
        if now - record.placed_at < after_s:
            continue
        _take(free, pool, job.gpus)
        chosen.append((job, copy))
    return chosen


def _room_by_pool(
    onprem: OnPremView, decisions: Sequence[Decision], starting_within_s: float
) -> dict[str, int]:
    """Free GPUs per quota pool, less those of the jobs this round keeps on-prem to start
    soon; "" is the whole cluster (the only entry when the cluster is one pool)."""
    state = onprem.state
    free = {"": state.free_gpus}
    if len(state.quota_pools) > 1:
        free |= {pool.name: pool.free_gpus for pool in state.quota_pools}
    specs = {job.key: job.spec for job in onprem.jobs}
    for decision in decisions:
        spec = specs.get(decision.job_key)
        soon = decision.expected_wait_s <= starting_within_s
        if spec is not None and decision.kind is DecisionKind.STAY and soon:
            _take(free, pool_of(spec, free), spec.gpus)
    return free


def _take(free: dict[str, int], pool: str, gpus: int) -> None:
    """GPUs taken in `pool` are taken from the whole cluster too."""
    free[""] -= gpus
    if pool:
        free[pool] -= gpus
