"""The on-prem cluster as the federation loop sees it: Kueue's queue, the Jobs, their records.

Implements `federator.federation.ports.OnPremPort`. Reads come from Reflectors (Kueue
`v1beta2` ClusterQueues, LocalQueues, Workloads, and batch/v1 Jobs); writes are merge patches
carrying the resourceVersion we decided on, so a write based on a stale view fails with
`Conflict` instead of overwriting what Kueue or a user did meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

import structlog

from federator.core.models import PendingJob
from federator.federation.ports import OnPremJob, OnPremView, Terminal
from federator.federation.records import PlacementRecord
from federator.kube import convert
from federator.kube import errors as kube_errors
from federator.kube.clients import MERGE_PATCH, Cluster
from federator.kube.watching import (
    CLUSTER_QUEUES,
    JOBS,
    LOCAL_QUEUES,
    WORKLOADS,
    Reflector,
)

log = structlog.get_logger(__name__)

# The data failures a Job was told of (`DataCopyFailed`, see `federation.data_problems`):
# `dataset@cluster=digest` items, oldest first, comma-separated. Kept on the Job, not in
# memory, so that a restart or a new leader does not tell them again; bounded so that a job
# reading many datasets cannot grow its Job without end (the oldest items go first).
ANNOTATION_DATA_PROBLEMS_TOLD = "federator.io/data-problem-told"
DATA_PROBLEMS_TOLD_MAX_BYTES = 320

Told = tuple[tuple[str, str, str], ...]


def data_problems_told_note(told: Told) -> str:
    """The annotation's value for `told`: its newest items that fit the bound."""
    items = [f"{dataset}@{cluster}={digest}" for dataset, cluster, digest in told]
    while items and len(",".join(items).encode()) > DATA_PROBLEMS_TOLD_MAX_BYTES:
        items.pop(0)
    return ",".join(items)


def data_problems_told_of(note: str) -> Told:
    """The items of the annotation's value; an item that does not parse (edited by hand) is
    left out: at worst its failure is told again."""
    told = []
    for item in note.split(","):
        replica, _, digest = item.partition("=")
        dataset, _, cluster = replica.rpartition("@")
        if dataset and cluster and digest:
            told.append((dataset, cluster, digest))
    return tuple(told)


@dataclasses.dataclass(frozen=True, slots=True)
class BurstFacts:
    """What the policy's burst gate reads about a job (no client-library types)."""

    namespace: str
    queue: str | None
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    cluster_queue: str | None = None  # the ClusterQueue its LocalQueue points at, when known
    priority_class: str | None = None  # Kueue's (Workload) or the pod template's priority class


class OnPremCluster:
    """Observation of and writes to the on-prem cluster (one per federator process)."""

    def __init__(
        self,
        cluster: Cluster,
        *,
        namespaces: Iterable[str] = (),
        resident_namespaces: Iterable[str] = (),
        default_runtime_s: float = 3600.0,
        tenant_of: Callable[[str], str] | None = None,
        eligible: Callable[[BurstFacts], bool] | None = None,
    ) -> None:
        self.cluster = cluster
        self.namespaces = frozenset(namespaces)  # empty: every namespace
        self.resident_namespaces = frozenset(resident_namespaces)
        self.default_runtime_s = default_runtime_s
        # The policy's view, given by the composition root: a namespace's tenant, and whether
        # the policy file's burst rules and queue modes let a job move at all.
        self.tenant_of = tenant_of
        self.eligible = eligible
        self.jobs = Reflector(cluster, JOBS)
        self.workloads = Reflector(cluster, WORKLOADS)
        self.cluster_queues = Reflector(cluster, CLUSTER_QUEUES)
        self.local_queues = Reflector(cluster, LOCAL_QUEUES)
        self.reflectors = (self.jobs, self.workloads, self.cluster_queues, self.local_queues)

    async def run(self) -> None:
        """Keep every cache fresh until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            for reflector in self.reflectors:
                tasks.create_task(reflector.run(), name=f"onprem-{reflector.resource.kind}")

    @property
    def synced(self) -> bool:
        return all(r.synced for r in self.reflectors)

    # ---- observation ------------------------------------------------------------------------

    async def snapshot(self, now: float) -> OnPremView:
        jobs = [j for j in self.jobs.items.values() if self._watched(j)]
        jobs_by_uid = {str(convert.meta(j).get("uid")): j for j in jobs}
        workload_of: dict[str, dict[str, Any]] = {}
        unwatched: list[dict[str, Any]] = []  # they hold quota too (see convert.onprem_state)
        for wl in self.workloads.items.values():
            owner = convert.workload_owner_uid(wl)
            if owner in jobs_by_uid:
                workload_of[owner] = wl
            else:
                unwatched.append(wl)
        pools = convert.quota_pools_by_cluster_queue(self.cluster_queues.items.values())
        views = [
            view
            for uid, job in jobs_by_uid.items()
            if (view := self._job_view(job, workload_of.get(uid), pools)) is not None
        ]
        state = convert.onprem_state(
            self.cluster_queues.items.values(),
            [*workload_of.values(), *unwatched],
            jobs_by_uid,
            now=now,
            default_runtime_s=self.default_runtime_s,
        )
        waiting = [v.spec for v in views if v.waiting]
        return OnPremView(
            up=self.cluster.health.up,
            synced=self.synced,
            state=state,
            jobs=tuple(sorted(views, key=lambda v: v.key)),
            queues=convert.queue_views(waiting, now=now),
            source_uids=frozenset(jobs_by_uid),
        )

    def _watched(self, job: convert.Obj) -> bool:
        return not self.namespaces or convert.meta(job).get("namespace") in self.namespaces

    def _job_view(
        self, job: convert.Obj, workload: convert.Obj | None, pools: Mapping[str, str]
    ) -> OnPremJob | None:
        # A record of another uid (the Job re-created from an export) counts as none, but the
        # loop must see the Job to drop it, whether it waits or not.
        record, foreign = convert.placement_record(job)
        finished = convert.job_finished(job)
        in_kueue = convert.KUEUE_QUEUE_LABEL in convert.labels(job)
        if in_kueue:
            waiting = workload is not None and convert.workload_pending(workload)
        else:
            plain = convert.labels(job).get(convert.LABEL_BURST) == "allow"
            waiting = plain and convert.job_suspended(job)
        waiting = waiting and not finished and record is None
        kept = convert.returned_record_of(job)
        kept_lost = kept is not None and bool(kept.lost_copies)
        if record is None and not waiting and not kept_lost and foreign is None:
            return None  # kept lost copies count (and settle) for as long as the Job exists
        meta = convert.meta(job)
        spec = convert.pending_job(
            job,
            workload=workload,
            default_runtime_s=self.default_runtime_s,
            resident_namespaces=self.resident_namespaces,
        )
        spec = self._apply_policy(job, spec, workload)
        spec = dataclasses.replace(spec, quota_pool=self._quota_pool(job, workload, pools))
        return OnPremJob(
            key=convert.key(job),
            namespace=str(meta.get("namespace")),
            name=str(meta.get("name")),
            uid=str(meta.get("uid")),
            resource_version=str(meta.get("resourceVersion")),
            gpus=spec.gpus,
            record=record,
            spec=spec,
            waiting=waiting,
            active_pods=convert.job_active_pods(job),
            finished=finished,
            admitted=workload is not None and convert.workload_reserved(workload),
            workload=str(convert.meta(workload).get("name")) if workload is not None else None,
            burst_allowed=spec.burst_allowed,
            data_problems_told=data_problems_told_of(
                convert.annotations_of(job).get(ANNOTATION_DATA_PROBLEMS_TOLD, "")
            ),
            returned_record=kept,
            foreign_record_uid=foreign,
        )

    def _quota_pool(
        self, job: convert.Obj, workload: convert.Obj | None, pools: Mapping[str, str]
    ) -> str:
        """The quota pool the job waits in: its admission's ClusterQueue once admitted, else
        the one its LocalQueue feeds; "" for a plain Job or an unknown queue."""
        cluster_queue = convert.admitted_cluster_queue(workload) if workload is not None else None
        return pools.get(cluster_queue or self._fed_cluster_queue(job) or "", "")

    def _fed_cluster_queue(self, job: convert.Obj) -> str | None:
        """The ClusterQueue the job's LocalQueue feeds; None for a plain Job or unknown queue."""
        queue = convert.labels(job).get(convert.KUEUE_QUEUE_LABEL)
        namespace = convert.meta(job).get("namespace")
        local_queue = self.local_queues.items.get(f"{namespace}/{queue}") if queue else None
        return convert.local_queue_target(local_queue) if local_queue else None

    def _apply_policy(
        self, job: convert.Obj, spec: PendingJob, workload: convert.Obj | None = None
    ) -> PendingJob:
        namespace = spec.namespace
        tenant = self.tenant_of(namespace) if self.tenant_of is not None else spec.tenant
        allowed = spec.burst_allowed
        if allowed and self.eligible is not None:
            facts = BurstFacts(
                namespace=namespace,
                queue=convert.labels(job).get(convert.KUEUE_QUEUE_LABEL),
                labels=dict(convert.labels(job)),
                annotations=dict(convert.annotations_of(job)),
                cluster_queue=self._fed_cluster_queue(job),
                priority_class=convert.priority_class(job, workload),
            )
            allowed = self.eligible(facts)
        return dataclasses.replace(spec, tenant=tenant, burst_allowed=allowed)

    # ---- writes -------------------------------------------------------------------------------

    async def write_record(self, job: OnPremJob, record: PlacementRecord | None) -> OnPremJob:
        """Write `record`, or with None drop the job's record and keep it in the same patch as
        `federator.io/returned-record` (`OnPremJob.returned_record`): a job that goes back
        on-prem keeps its count of placements, so `max_replacements` bounds it across returns
        (the two in one patch: no crash can lose the count between them). A new record
        replaces the kept one, whose count it continues. The record names the Job's uid
        (`convert.record_note`), so a Job re-created from an export does not take it for its
        own; dropping one of another uid (`OnPremJob.foreign_record_uid`: `job.record` is
        None) removes it with its `placement` and `remote-state` and keeps nothing."""
        notes: dict[str, str | None] = {
            convert.ANNOTATION_RECORD: convert.record_note(record, job.uid) if record else None,
            convert.ANNOTATION_PLACEMENT: record.placement if record else None,
        }
        returned = job.returned_record
        if record is None or job.record is None:
            # No copy state without a record, nor before a new placement's copy exists (one
            # left by another Job's record that could not be dropped would show till a mirror).
            notes[convert.ANNOTATION_REMOTE_STATE] = None
        if record is not None:
            returned = None  # the new record continues the kept one's count
            notes[convert.ANNOTATION_RETURNED_RECORD] = None
        elif job.record is not None:
            returned = job.record
            notes[convert.ANNOTATION_RETURNED_RECORD] = convert.returned_record_note(
                returned, job.uid
            )
        body = {"metadata": {"resourceVersion": job.resource_version, "annotations": notes}}
        updated = await self.cluster.request(
            "PATCH", _job_path(job), body=body, content_type=MERGE_PATCH
        )
        self.jobs.put(updated)
        version = str(convert.meta(updated).get("resourceVersion"))
        return replace(job, record=record, resource_version=version, returned_record=returned)

    async def write_returned_record(self, job: OnPremJob, record: PlacementRecord) -> OnPremJob:
        """Rewrite `federator.io/returned-record` (its lost copies settled), preconditioned on
        the version the pass read."""
        note = convert.returned_record_note(record, job.uid)
        notes = {convert.ANNOTATION_RETURNED_RECORD: note}
        body = {"metadata": {"resourceVersion": job.resource_version, "annotations": notes}}
        updated = await self.cluster.request(
            "PATCH", _job_path(job), body=body, content_type=MERGE_PATCH
        )
        self.jobs.put(updated)
        version = str(convert.meta(updated).get("resourceVersion"))
        return replace(job, resource_version=version, returned_record=record)

    async def hold_on_prem(self, job: OnPremJob) -> bool:
        """Make sure the job cannot start on-prem; True only when that is verified, False when it
        holds quota, is admitted or finished there (the placement is abandoned).

        A Workload changed since it was read (Kueue, or a second replica deactivating it the
        same moment) raises `Conflict`: the step is tried again next pass on fresh data. Taken
        as False, it dropped the record while the other writer's deactivation stood, and the
        job, inactive and without a record, was neither admitted on-prem nor decided again
        (seen once in R9, two replicas without leader election: a job never finished)."""
        if job.workload is not None:
            workload = await self.cluster.request("GET", _workload_path(job))
            if convert.workload_reserved(workload) or convert.condition_true(workload, "Finished"):
                return False
            if convert.workload_active(workload):
                version = convert.meta(workload).get("resourceVersion")
                body = {"metadata": {"resourceVersion": version}, "spec": {"active": False}}
                workload = await self.cluster.request(
                    "PATCH", _workload_path(job), body=body, content_type=MERGE_PATCH
                )
            self.workloads.put(workload)
            workload = await self.cluster.request("GET", _workload_path(job))
            if convert.workload_reserved(workload):
                return False
            if convert.workload_active(workload):
                # Reactivated since our deactivation (a second writer returning it on-prem, or
                # a person): not held, so no copy yet; the next pass decides on fresh data.
                raise kube_errors.Conflict(
                    self.cluster.name, 409, f"workload {job.workload} was reactivated meanwhile"
                )
        live = await self.cluster.request("GET", _job_path(job))
        return convert.job_suspended(live) and convert.job_active_pods(live) == 0

    async def release_on_prem(self, job: OnPremJob) -> None:
        if job.workload is None:
            return  # a plain suspended Job: leaving it suspended is what its owner asked
        body = {"spec": {"active": True}}
        updated = await self.cluster.request(
            "PATCH", _workload_path(job), body=body, content_type=MERGE_PATCH
        )
        self.workloads.put(updated)

    async def note_return(self, job: OnPremJob, *, why: str) -> OnPremJob:
        """The first write of a return on-prem, so preconditioned on the version the return was
        decided on (the job has a record): a second writer that placed the job since makes it
        a `Conflict` before anything is released, and the following drop of the record cannot
        carry a version we never saw. Kueue cannot race it: the Workload is still held."""
        stamp = convert.format_time(self.cluster.health.clock())
        note = f"{stamp} {why}"[:1024]
        metadata: dict[str, Any] = {"annotations": {convert.ANNOTATION_RETURNED: note}}
        if job.record is not None:
            metadata["resourceVersion"] = job.resource_version
        body = {"metadata": metadata}
        updated = await self.cluster.request(
            "PATCH", _job_path(job), body=body, content_type=MERGE_PATCH
        )
        return self._updated(job, updated)

    async def mirror(self, job: OnPremJob, *, remote_state: str) -> OnPremJob:
        live = self.jobs.items.get(job.key)
        notes = convert.annotations_of(live) if live is not None else {}
        if notes.get(convert.ANNOTATION_REMOTE_STATE) == remote_state:
            return job
        body = {"metadata": {"annotations": {convert.ANNOTATION_REMOTE_STATE: remote_state}}}
        updated = await self.cluster.request(
            "PATCH", _job_path(job), body=body, content_type=MERGE_PATCH
        )
        return self._updated(job, updated)

    async def note_data_problems(self, job: OnPremJob, told: Told) -> OnPremJob:
        """`federation.ports.DataProblemNotes`. No precondition, as for `mirror`: the note is
        only ours, and it must not lose a race with Kueue."""
        note = data_problems_told_note(told)
        live = self.jobs.items.get(job.key)
        held = convert.annotations_of(live).get(ANNOTATION_DATA_PROBLEMS_TOLD, "") if live else ""
        kept = data_problems_told_of(note)
        if live is not None and held == note:
            return replace(job, data_problems_told=kept)
        body = {"metadata": {"annotations": {ANNOTATION_DATA_PROBLEMS_TOLD: note or None}}}
        updated = await self.cluster.request(
            "PATCH", _job_path(job), body=body, content_type=MERGE_PATCH
        )
        return replace(self._updated(job, updated), data_problems_told=kept)

    async def finish(self, job: OnPremJob, terminal: Terminal) -> OnPremJob:
        """The terminal status, preconditioned on the version the job was observed at (not a
        fresh read's): a Job changed since, e.g. re-placed by a second writer, is a `Conflict`,
        decided again next pass. One already finished is returned as it is."""
        live = await self.cluster.request("GET", _job_path(job))
        if convert.job_finished(live):
            return self._updated(job, live)
        body = {
            "metadata": {"resourceVersion": job.resource_version},
            "status": convert.terminal_status(live, terminal),
        }
        updated = await self.cluster.request(
            "PATCH", _job_path(job) + "/status", body=body, content_type=MERGE_PATCH
        )
        return replace(self._updated(job, updated), finished=True)

    def _updated(self, job: OnPremJob, live: dict[str, Any]) -> OnPremJob:
        self.jobs.put(live)
        return replace(job, resource_version=str(convert.meta(live).get("resourceVersion")))

    async def event(self, job: OnPremJob, *, reason: str, message: str, warning: bool) -> None:
        """A Kubernetes Event on the on-prem Job; its name is derived from its content."""
        digest = hashlib.sha256(f"{job.uid}/{reason}/{message}".encode()).hexdigest()[:12]
        stamp = convert.format_time(self.cluster.health.clock())
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{job.name}.{digest}", "namespace": job.namespace},
            "involvedObject": {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "name": job.name,
                "namespace": job.namespace,
                "uid": job.uid,
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": "federator"},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        with contextlib.suppress(kube_errors.AlreadyExists):
            await self.cluster.request(
                "POST", f"/api/v1/namespaces/{job.namespace}/events", body=body, creating=True
            )


def _job_path(job: OnPremJob) -> str:
    return f"/apis/batch/v1/namespaces/{job.namespace}/jobs/{job.name}"


def _workload_path(job: OnPremJob) -> str:
    return f"/apis/kueue.x-k8s.io/v1beta2/namespaces/{job.namespace}/workloads/{job.workload}"
