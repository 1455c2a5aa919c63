"""Pure translation between raw Kubernetes objects (JSON dicts) and federator's values.

Every label key, annotation key and field path federator reads or writes lives here, so the
shape of the API is learned in one module and tested without a cluster (tests/unit/kube/).
Functions take plain dicts as the apiserver sends them and return frozen values from
`federator.core.models` and `federator.federation.ports`, or dicts ready to send back.
Nothing here does I/O or reads a clock: `now` is always passed in.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from typing import Any

from federator.core.models import (
    DatasetNeed,
    OnPremState,
    PendingJob,
    QuotaPool,
    RunningJob,
    RuntimeSource,
    expected_remaining_s,
)
from federator.federation.ports import (
    UNKNOWN_UID,
    CopyState,
    CopyView,
    PoolView,
    QueueView,
    Terminal,
)
from federator.federation.records import PlacementRecord, RecordError

Obj = Mapping[str, Any]

GPU = "nvidia.com/gpu"

# ---- keys federator owns ------------------------------------------------------------------------
LABEL_ORIGIN = "federator.io/origin"
LABEL_SOURCE_UID = "federator.io/source-uid"
LABEL_ATTEMPT = "federator.io/attempt"
LABEL_POOL = "federator.io/pool"  # also the node label of cloud pools (sandbox contract)
LABEL_BURST = "federator.io/burst"  # "never" opts out; "allow" opts a plain suspended Job in
LABEL_RESIDENCY = "federator.io/residency"  # "onprem": the data may not leave
ANNOTATION_SOURCE = "federator.io/source"
ANNOTATION_PLACEMENT = "federator.io/placement"
ANNOTATION_RECORD = "federator.io/record"
ANNOTATION_REMOTE_STATE = "federator.io/remote-state"
ANNOTATION_RETURNED = "federator.io/returned-on-prem"
# The record a placement had when federator dropped it (the job went back on-prem): its
# attempts, preemptions and history count on when the job bursts again (design §6).
ANNOTATION_RETURNED_RECORD = "federator.io/returned-record"
ANNOTATION_RUNTIME = "federator.io/runtime-estimate"
ANNOTATION_DATASETS = "federator.io/datasets"
ANNOTATION_CHECKPOINT = "federator.io/checkpoint-interval"
ANNOTATION_DEADLINE = "federator.io/deadline"
ANNOTATION_GPU_TYPES = "federator.io/gpu-types"
# What the job writes that comes back from a cloud (checkpoints, the model), e.g. "40Gi": the
# bytes the cost model prices at the cloud's egress.
ANNOTATION_OUTPUT_SIZE = "federator.io/output-size"

KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
CAPACITY_TYPE_LABEL = "node.kubernetes.io/capacity-type"

# ---- small readers ------------------------------------------------------------------------------


def meta(obj: Obj) -> Mapping[str, Any]:
    m = obj.get("metadata") or {}
    return m if isinstance(m, Mapping) else {}


def labels(obj: Obj) -> Mapping[str, str]:
    return meta(obj).get("labels") or {}


def annotations_of(obj: Obj) -> Mapping[str, str]:
    return meta(obj).get("annotations") or {}


def key(obj: Obj) -> str:
    return f"{meta(obj).get('namespace', '')}/{meta(obj).get('name', '')}"


def conditions(obj: Obj) -> Sequence[Mapping[str, Any]]:
    return (obj.get("status") or {}).get("conditions") or ()


def condition_true(obj: Obj, kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions(obj))


def parse_time(text: str | None) -> float | None:
    """RFC 3339 as the apiserver writes it ("2026-11-29T07:47:10Z") to epoch seconds."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def format_time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float | None:
    """ "90", "90s", "15m", "2h", "1d" to seconds; None when it is not one of those."""
    match = _DURATION.match(text)
    if match is None:
        return None
    return float(match.group(1)) * _UNIT_S[match.group(2)]


# Suffixes of Kubernetes resource quantities. kubernetes-asyncio ships no quantity parser (the
# sync client's `kubernetes.utils.parse_quantity` is not in it), and the apiserver canonicalises
# what users write: a request of "1000" GPUs comes back as "1k".
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|[KMGTPE]i|[mkMGTPE]|)$")
_SUFFIX_FACTOR = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    **{s: Decimal(1000) ** (i + 1) for i, s in enumerate("kMGTPE")},
    **{f"{s}i": Decimal(1024) ** (i + 1) for i, s in enumerate("KMGTPE")},
}


def quantity_count(value: object) -> int:
    """A count-like quantity ("8", 8, "1k", "2e3") as a whole number, rounded up; 0 if invalid.

    Rounding up keeps a fractional quantity from ever looking smaller than what it asks for.
    """
    match = _QUANTITY.match(str(value).strip())
    if match is None:
        return 0
    number, suffix = match.groups()
    try:
        if suffix[:1] in ("e", "E"):
            amount = Decimal(number + suffix)
        else:
            amount = Decimal(number) * _SUFFIX_FACTOR[suffix]
    except InvalidOperation:
        return 0
    return max(0, int(amount.to_integral_value(rounding=ROUND_CEILING)))


# ---- GPUs -------------------------------------------------------------------------------------


def pod_gpus(pod_spec: Obj) -> int:
    """GPUs one pod asks for: containers summed, init containers as their maximum (kube rules)."""

    def gpus(container: Obj) -> int:
        res = container.get("resources") or {}
        limits = res.get("limits") or {}
        requests = res.get("requests") or {}
        return quantity_count(limits.get(GPU, requests.get(GPU, 0)))

    main = sum(gpus(c) for c in pod_spec.get("containers") or ())
    init = max((gpus(c) for c in pod_spec.get("initContainers") or ()), default=0)
    return max(main, init)


def job_parallelism(job: Obj) -> int:
    spec = job.get("spec") or {}
    parallelism = spec.get("parallelism")
    completions = spec.get("completions")
    if parallelism is None:
        parallelism = 1
    if completions is not None:
        parallelism = min(int(parallelism), int(completions))
    return int(parallelism)


def job_gpus(job: Obj) -> int:
    template = (job.get("spec") or {}).get("template") or {}
    return job_parallelism(job) * pod_gpus(template.get("spec") or {})


def workload_gpus(workload: Obj) -> int:
    pod_sets = (workload.get("spec") or {}).get("podSets") or ()
    return sum(
        int(ps.get("count", 1)) * pod_gpus((ps.get("template") or {}).get("spec") or {})
        for ps in pod_sets
    )


# ---- on-prem: Jobs and Workloads ---------------------------------------------------------------


def job_finished(job: Obj) -> bool:
    return condition_true(job, "Complete") or condition_true(job, "Failed")


def job_suspended(job: Obj) -> bool:
    return bool((job.get("spec") or {}).get("suspend"))


def job_active_pods(job: Obj) -> int:
    return int((job.get("status") or {}).get("active") or 0)


def workload_owner_uid(workload: Obj) -> str | None:
    for ref in meta(workload).get("ownerReferences") or ():
        if ref.get("kind") == "Job" and str(ref.get("apiVersion", "")).startswith("batch/"):
            return str(ref.get("uid"))
    return None


def workload_reserved(workload: Obj) -> bool:
    return condition_true(workload, "QuotaReserved") or condition_true(workload, "Admitted")


def workload_active(workload: Obj) -> bool:
    return (workload.get("spec") or {}).get("active") is not False


def workload_pending(workload: Obj) -> bool:
    """Waiting for Kueue: active, no quota reserved, not finished."""
    return (
        workload_active(workload)
        and not workload_reserved(workload)
        and not condition_true(workload, "Finished")
    )


def local_queue_target(local_queue: Obj) -> str | None:
    """The ClusterQueue a LocalQueue sends its workloads to."""
    target = (local_queue.get("spec") or {}).get("clusterQueue")
    return str(target) if target else None


def priority_class(job: Obj, workload: Obj | None) -> str | None:
    """The job's priority class: Kueue's on its Workload, else the Job's Kueue label, else
    the pod template's `priorityClassName`."""
    if workload is not None:
        named = (workload.get("spec") or {}).get("priorityClassName")
        if named:
            return str(named)
    labelled = labels(job).get("kueue.x-k8s.io/priority-class")
    if labelled:
        return labelled
    template = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    named = template.get("priorityClassName")
    return str(named) if named else None


def workload_priority(workload: Obj) -> int:
    return int((workload.get("spec") or {}).get("priority") or 0)


def record_of(job: Obj) -> PlacementRecord | None:
    """The placement record on an on-prem Job; a record we cannot read counts as none, and so
    does one of another Job (`foreign_record_uid`): `kubectl get -o json | kubectl replace
    --force` re-creates a Job, with a new uid, with all its annotations, and the new Job must
    not act on the old one's placement. A record without a uid (as a federator before
    `record_note` wrote them; such records are in clusters already) is read as this Job's
    unless it was placed before this Job was created."""
    return placement_record(job)[0]


def foreign_record_uid(job: Obj) -> str | None:
    """Whose the Job's `federator.io/record` is when it is not this Job's (the Job was
    re-created from an export of an earlier one): the uid the record names, or `UNKNOWN_UID`
    for a record without one placed before this Job was created; None when it is this Job's
    (or there is none)."""
    return placement_record(job)[1]


def placement_record(job: Obj) -> tuple[PlacementRecord | None, str | None]:
    """`record_of` and `foreign_record_uid` from one read of the annotation: (the Job's own
    record, None), (None, whose) for another Job's, (None, None) without one to read."""
    data = _record_data(job)
    if data is None:
        return None, None
    foreign = _foreign(data, job)
    if foreign is not None:
        return None, foreign
    try:
        return PlacementRecord.from_data(data, shown=annotations_of(job)[ANNOTATION_RECORD]), None
    except RecordError:
        return None, None


# A record placed this long before its Job's creationTimestamp is another Job's. The two times
# come from two clocks (federator's `placed_at`, the apiserver's creation), hence the slack; a
# record written before uids were recorded is older than any upgrade anyway.
_CREATED_SLACK_S = 300.0


def _foreign(data: dict[str, Any], job: Obj) -> str | None:
    uid = meta(job).get("uid")
    named = data.get("uid")
    if named is not None:
        return str(named) if named != uid else None
    placed = data.get("placed_at")
    created = parse_time(meta(job).get("creationTimestamp"))
    if isinstance(placed, int | float) and created is not None:
        return UNKNOWN_UID if placed < created - _CREATED_SLACK_S else None
    return None


def record_note(record: PlacementRecord, uid: str) -> str:
    """The `federator.io/record` value: the record, with the uid of the Job it belongs to
    (`record_of` reads it only on that Job)."""
    return _bound_note(record, uid)


def _record_data(job: Obj) -> dict[str, Any] | None:
    """The JSON object of the Job's `federator.io/record`; None without one that parses."""
    text = annotations_of(job).get(ANNOTATION_RECORD)
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def returned_record_of(job: Obj) -> PlacementRecord | None:
    """The record the Job's last placement had when it went back on-prem, if it keeps one (one
    we cannot read counts as none: the job then counts its placements from 1 again). It must
    name this Job's uid: `kubectl get -o json | kubectl replace --force` re-creates a Job with
    its annotations, and a new Job must not inherit the old one's count."""
    text = annotations_of(job).get(ANNOTATION_RETURNED_RECORD)
    if not text:
        return None
    try:
        kept = json.loads(text)  # parsed once: the uid, then the record from the same object
        if not isinstance(kept, dict) or kept.get("uid") != meta(job).get("uid"):
            return None
        return PlacementRecord.from_data(kept, shown=text)
    except (ValueError, RecordError):
        return None


def returned_record_note(record: PlacementRecord, uid: str) -> str:
    """The `federator.io/returned-record` value: the record, with the uid of the Job it
    belongs to (`returned_record_of` reads it only on that Job)."""
    return _bound_note(record, uid)


def _bound_note(record: PlacementRecord, uid: str) -> str:
    data = record.to_data()
    data["uid"] = uid
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def burst_allowed(job: Obj, *, resident_namespaces: frozenset[str] = frozenset()) -> bool:
    """Opt-out and residency: such jobs never leave on-prem, whatever the policy says."""
    job_labels = labels(job)
    if job_labels.get(LABEL_BURST) == "never" or job_labels.get(LABEL_RESIDENCY) == "onprem":
        return False
    return meta(job).get("namespace") not in resident_namespaces


def parse_datasets(text: str) -> tuple[DatasetNeed, ...]:
    """`name=bytes,name2=bytes` (bytes optional) to dataset needs; blanks ignored."""
    needs: list[DatasetNeed] = []
    for part in text.split(","):
        name, _, size = part.strip().partition("=")
        if name:
            needs.append(DatasetNeed(name=name.strip(), size_bytes=quantity_count(size.strip())))
    return tuple(needs)


def _deadline(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        try:
            return parse_time(text)
        except ValueError:
            return None


def pending_job(
    job: Obj,
    *,
    workload: Obj | None,
    default_runtime_s: float,
    resident_namespaces: frozenset[str] = frozenset(),
) -> PendingJob:
    """The cost model's view of one waiting on-prem Job (and its Workload, when Kueue has one)."""
    notes = annotations_of(job)
    runtime = parse_duration(notes.get(ANNOTATION_RUNTIME, ""))
    checkpoint = parse_duration(notes.get(ANNOTATION_CHECKPOINT, ""))
    gpu_types = frozenset(t.strip() for t in notes.get(ANNOTATION_GPU_TYPES, "").split(",") if t)
    source = workload if workload is not None else job
    template = (job.get("spec") or {}).get("template") or {}
    queue = labels(job).get(KUEUE_QUEUE_LABEL, "") or "plain"
    return PendingJob(
        key=key(job),
        gpus=workload_gpus(workload) if workload is not None else job_gpus(job),
        submitted_at=parse_time(meta(source).get("creationTimestamp")) or 0.0,
        runtime_estimate_s=runtime if runtime is not None else default_runtime_s,
        runtime_source=RuntimeSource.ANNOTATION if runtime is not None else RuntimeSource.DEFAULT,
        queue=queue,
        tenant=str(meta(job).get("namespace", "default")),
        namespace=str(meta(job).get("namespace", "default")),
        priority=workload_priority(workload) if workload is not None else 0,
        gpu_types=gpu_types,
        datasets=parse_datasets(notes.get(ANNOTATION_DATASETS, "")),
        checkpoint_interval_s=checkpoint,
        deadline_at=_deadline(notes.get(ANNOTATION_DEADLINE)),
        burst_allowed=burst_allowed(job, resident_namespaces=resident_namespaces),
        gpus_per_pod=pod_gpus(template.get("spec") or {}) or None,
        output_bytes=quantity_count(notes.get(ANNOTATION_OUTPUT_SIZE, "")),
    )


def cluster_queue_gpus(cluster_queue: Obj) -> tuple[int, int]:
    """(nominal GPUs, reserved GPUs) of one Kueue ClusterQueue."""
    nominal = 0
    for group in (cluster_queue.get("spec") or {}).get("resourceGroups") or ():
        for flavor in group.get("flavors") or ():
            for res in flavor.get("resources") or ():
                if res.get("name") == GPU:
                    nominal += quantity_count(res.get("nominalQuota", 0))
    reserved = 0
    for flavor in (cluster_queue.get("status") or {}).get("flavorsReservation") or ():
        for res in flavor.get("resources") or ():
            if res.get("name") == GPU:
                reserved += quantity_count(res.get("total", 0))
    return nominal, reserved


def quota_pool_of(cluster_queue: Obj) -> str:
    """The quota pool a ClusterQueue's jobs wait in: its cohort (`spec.cohortName`, or
    v1beta1's `spec.cohort`), whose members borrow each other's unused quota, else itself."""
    spec = cluster_queue.get("spec") or {}
    cohort = spec.get("cohortName") or spec.get("cohort")
    return f"cohort/{cohort}" if cohort else f"clusterqueue/{meta(cluster_queue).get('name')}"


def quota_pools_by_cluster_queue(cluster_queues: Iterable[Obj]) -> dict[str, str]:
    """ClusterQueue name -> the quota pool its jobs wait in (`quota_pool_of`)."""
    return {str(meta(cq).get("name")): quota_pool_of(cq) for cq in cluster_queues}


def quota_pools(cluster_queues: Iterable[Obj]) -> tuple[QuotaPool, ...]:
    """Nominal and free GPUs per quota pool, by pool name.

    Free is the pool's nominal quota less all its members reserve: a member borrowing beyond its
    own quota takes from what the others leave unused. Borrowing and lending limits are not
    modelled (a cohort's members are taken to share all their unused quota)."""
    totals: dict[str, tuple[int, int]] = {}
    for cq in cluster_queues:
        nominal, reserved = cluster_queue_gpus(cq)
        pool = quota_pool_of(cq)
        total, taken = totals.get(pool, (0, 0))
        totals[pool] = (total + nominal, taken + reserved)
    return tuple(
        QuotaPool(name, total, max(0, total - taken))
        for name, (total, taken) in sorted(totals.items())
    )


def admitted_cluster_queue(workload: Obj) -> str | None:
    """The ClusterQueue whose quota an admitted Workload holds (`status.admission`)."""
    admission = (workload.get("status") or {}).get("admission") or {}
    name = admission.get("clusterQueue")
    return str(name) if name else None


def onprem_state(
    cluster_queues: Iterable[Obj],
    workloads: Iterable[Obj],
    jobs_by_uid: Mapping[str, Obj],
    *,
    now: float,
    default_runtime_s: float,
) -> OnPremState:
    """The on-prem cluster as the cost model sees it: GPU quota, what runs, what waits.

    A Workload holding quota whose Job federator does not watch (another namespace sharing the
    ClusterQueue, a JobSet) still gives its GPUs back some day: it counts as running for the
    default runtime from its admission. Left out, its GPUs were taken for ever, so every job
    looked as if it could never start on-prem and burst ("too big for the free cluster").
    Each running job gives its GPUs back to its own quota pool (`quota_pools`).
    """
    cluster_queues = list(cluster_queues)
    pools = quota_pools(cluster_queues)
    pool_of = quota_pools_by_cluster_queue(cluster_queues)
    running: list[RunningJob] = []
    waiting: list[tuple[int, float, str]] = []
    for wl in workloads:
        if condition_true(wl, "Finished"):
            continue
        job = jobs_by_uid.get(workload_owner_uid(wl) or "")
        pool = pool_of.get(admitted_cluster_queue(wl) or "", "")
        if job is None:
            if workload_reserved(wl):
                holder = _unwatched_holder(wl, now=now, runtime_s=default_runtime_s)
                running.append(replace(holder, quota_pool=pool))
            continue
        if workload_reserved(wl):
            admitted = _condition_time(wl, "QuotaReserved") or now
            estimate = parse_duration(annotations_of(job).get(ANNOTATION_RUNTIME, ""))
            runtime = estimate if estimate is not None else default_runtime_s
            remaining = expected_remaining_s(admitted, admitted + runtime, now)
            running.append(RunningJob(key(job), workload_gpus(wl), remaining, pool))
        elif workload_pending(wl):
            created = parse_time(meta(wl).get("creationTimestamp")) or now
            waiting.append((-workload_priority(wl), created, key(job)))
    return OnPremState(
        total_gpus=sum(pool.total_gpus for pool in pools),
        free_gpus=sum(pool.free_gpus for pool in pools),
        running=tuple(sorted(running, key=lambda r: r.key)),
        queue_order=tuple(k for _, _, k in sorted(waiting)),
        quota_pools=pools,
    )


def _unwatched_holder(workload: Obj, *, now: float, runtime_s: float) -> RunningJob:
    admitted = _condition_time(workload, "QuotaReserved") or now
    remaining = expected_remaining_s(admitted, admitted + runtime_s, now)
    return RunningJob(f"{key(workload)} (unwatched)", workload_gpus(workload), remaining)


def _condition_time(obj: Obj, kind: str) -> float | None:
    for cond in conditions(obj):
        if cond.get("type") == kind and cond.get("status") == "True":
            return parse_time(cond.get("lastTransitionTime"))
    return None


def queue_views(pending: Iterable[PendingJob], *, now: float) -> tuple[QueueView, ...]:
    """Per-queue depth: workloads, GPUs, and the age of the oldest."""
    by_queue: dict[str, list[PendingJob]] = {}
    for job in pending:
        by_queue.setdefault(job.queue, []).append(job)
    return tuple(
        QueueView(
            queue=queue,
            pending_workloads=len(jobs),
            pending_gpus=sum(j.gpus for j in jobs),
            oldest_pending_s=max(0.0, now - min(j.submitted_at for j in jobs)),
        )
        for queue, jobs in sorted(by_queue.items())
    )


# ---- terminal status written on the on-prem Job -----------------------------------------------


def terminal_status(job: Obj, terminal: Terminal) -> dict[str, Any]:
    """A status that the apiserver accepts as terminal for a suspended Job, in one write.

    Kubernetes validates Job status transitions (pkg/registry/batch/job/strategy.go,
    getStatusValidationOptions): Complete needs SuccessCriteriaMet and a completionTime, Failed
    needs FailureTarget, any finished Job needs a startTime and no active pods. Earlier
    conditions (e.g. Suspended) are kept because a merge patch replaces the whole list.
    """
    stamp = format_time(terminal.finished_at)
    kept = [dict(c) for c in conditions(job) if c.get("type") not in _TERMINAL_TYPES]
    if terminal.succeeded:
        added = ["SuccessCriteriaMet", "Complete"]
        reason = "CompletedInCloud"
    else:
        added = ["FailureTarget", "Failed"]
        reason = "FailedInCloud"
    for kind in added:
        kept.append(
            {
                "type": kind,
                "status": "True",
                "reason": reason,
                "message": terminal.message,
                "lastProbeTime": stamp,
                "lastTransitionTime": stamp,
            }
        )
    status: dict[str, Any] = {
        "conditions": kept,
        "active": 0,
        "startTime": format_time(min(terminal.started_at, terminal.finished_at)),
    }
    if terminal.succeeded:
        status["completionTime"] = stamp
        status["succeeded"] = terminal.completions
    else:
        status["failed"] = max(1, int((job.get("status") or {}).get("failed") or 0))
    return status


_TERMINAL_TYPES = frozenset({"SuccessCriteriaMet", "Complete", "FailureTarget", "Failed"})


# ---- cloud: pools and copies ------------------------------------------------------------------


def pod_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def pool_views(cluster: str, nodes: Iterable[Obj], pods: Iterable[Obj]) -> dict[str, PoolView]:
    """Per pool: nodes, allocatable GPUs, GPUs requested by live pods, pods still pending."""
    node_pool: dict[str, str] = {}
    alloc: dict[str, int] = {}
    count: dict[str, int] = {}
    for node in nodes:
        pool = labels(node).get(LABEL_POOL)
        if not pool:
            continue
        node_pool[str(meta(node).get("name"))] = pool
        gpus = quantity_count(((node.get("status") or {}).get("allocatable") or {}).get(GPU, 0))
        alloc[pool] = alloc.get(pool, 0) + gpus
        count[pool] = count.get(pool, 0) + 1
    requested = dict.fromkeys(alloc, 0)
    pending = dict.fromkeys(alloc, 0)
    for pod in pods:
        if pod_terminal(pod):
            continue
        spec = pod.get("spec") or {}
        node_name = spec.get("nodeName")
        if node_name in node_pool:
            pool = node_pool[node_name]
            requested[pool] += pod_gpus(spec)
        elif not node_name:
            target = (spec.get("nodeSelector") or {}).get(LABEL_POOL)
            if target in pending:
                pending[target] += 1
    return {
        pool: PoolView(cluster, pool, count[pool], alloc[pool], requested[pool], pending[pool])
        for pool in sorted(alloc)
    }


def pod_disrupted(pod: Obj, node_names: frozenset[str]) -> bool:
    """A pod that lost its node (spot reclaim, node deleted) or was evicted by the system."""
    node_name = (pod.get("spec") or {}).get("nodeName")
    if node_name and node_name not in node_names and not pod_terminal(pod):
        return True
    return condition_true(pod, "DisruptionTarget")


def copy_views(
    cluster: str, jobs: Iterable[Obj], pods: Iterable[Obj], node_names: frozenset[str]
) -> list[CopyView]:
    """The state of each copy (`copy_view`), each with the pods its Job made (a pod of a copy
    carries the Job's name and `LABEL_SOURCE_UID`); `node_names` are the cluster's nodes."""
    pods_of: dict[tuple[str, str], list[Obj]] = {}
    for pod in pods:
        pod_labels = labels(pod)
        job_name = pod_labels.get("batch.kubernetes.io/job-name") or pod_labels.get("job-name")
        if job_name and LABEL_SOURCE_UID in pod_labels:
            pods_of.setdefault((str(meta(pod).get("namespace")), job_name), []).append(pod)
    return [
        copy_view(cluster, job, pods_of.get(_namespaced_name(job), []), node_names) for job in jobs
    ]


def _namespaced_name(obj: Obj) -> tuple[str, str]:
    return str(meta(obj).get("namespace")), str(meta(obj).get("name"))


def copy_view(cluster: str, job: Obj, pods: Sequence[Obj], node_names: frozenset[str]) -> CopyView:
    """The state of one copy, from its Job and the pods that belong to it."""
    job_labels = labels(job)
    status = job.get("status") or {}
    running = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Running")
    if condition_true(job, "Complete"):
        state = CopyState.SUCCEEDED
    elif any(pod_disrupted(p, node_names) for p in pods) or failed_by_disruption(job):
        state = CopyState.PREEMPTED
    elif condition_true(job, "Failed"):
        state = CopyState.FAILED
    elif job_suspended(job):
        state = CopyState.SUSPENDED
    elif running > 0 or _ever_ran(status, pods):
        state = CopyState.RUNNING  # a pod that ran and ended is "running" until the Job ends
    else:
        state = CopyState.PENDING
    failed_cond = next((c for c in conditions(job) if c.get("type") == "Failed"), None)
    return CopyView(
        cluster=cluster,
        namespace=str(meta(job).get("namespace")),
        name=str(meta(job).get("name")),
        source_uid=job_labels.get(LABEL_SOURCE_UID, ""),
        attempt=quantity_count(job_labels.get(LABEL_ATTEMPT, "0")),
        pool=job_labels.get(LABEL_POOL, ""),
        state=state,
        succeeded=int(status.get("succeeded") or 0),
        started_at=parse_time(status.get("startTime")),
        finished_at=parse_time(status.get("completionTime"))
        or _condition_time(job, "Complete")
        or _condition_time(job, "Failed"),
        running_pods=running,
        message=str((failed_cond or {}).get("message", "")),
        created_at=parse_time(meta(job).get("creationTimestamp")),
        pending_since=_pending_since(job),
    )


def _pending_since(job: Obj) -> float | None:
    """Since when the copy has waited for its pods, for `burst.replacement.start_timeout`.

    The Job controller sets `status.startTime` when it starts the Job and again each time it
    is resumed from suspension (a copy waits suspended for its data first), so a copy is timed
    from its resume, not from its creation. Before the controller has seen a resume, the Job
    still carries `Suspended=True`: not waiting yet (None), lest its creation, perhaps hours
    before its data was there, count. A Job never suspended is waiting since its creation.
    """
    if job_suspended(job):
        return None
    started = parse_time((job.get("status") or {}).get("startTime"))
    if started is not None:
        return started
    suspended = next((c for c in conditions(job) if c.get("type") == "Suspended"), None)
    if suspended is None:
        return parse_time(meta(job).get("creationTimestamp"))
    if suspended.get("status") == "True":
        return None
    return parse_time(suspended.get("lastTransitionTime"))


def _ever_ran(status: Obj, pods: Sequence[Obj]) -> bool:
    """A pod of this copy ran (or ran and ended): pulling it back would throw work away."""
    if int(status.get("succeeded") or 0) > 0 or int(status.get("failed") or 0) > 0:
        return True
    return any(pod_terminal(p) for p in pods)


def referenced_configs(pod_spec: Obj) -> tuple[frozenset[str], frozenset[str]]:
    """(ConfigMap names, Secret names) a pod template reads through volumes, env or envFrom."""
    config_maps: set[str] = set()
    secrets: set[str] = set()
    for volume in pod_spec.get("volumes") or ():
        if "configMap" in volume:
            config_maps.add(volume["configMap"].get("name", ""))
        if "secret" in volume:
            secrets.add(volume["secret"].get("secretName", ""))
        for source in (volume.get("projected") or {}).get("sources") or ():
            if "configMap" in source:
                config_maps.add(source["configMap"].get("name", ""))
            if "secret" in source:
                secrets.add(source["secret"].get("name", ""))
    containers = [*(pod_spec.get("containers") or ()), *(pod_spec.get("initContainers") or ())]
    for container in containers:
        for env_from in container.get("envFrom") or ():
            if "configMapRef" in env_from:
                config_maps.add(env_from["configMapRef"].get("name", ""))
            if "secretRef" in env_from:
                secrets.add(env_from["secretRef"].get("name", ""))
        for env in container.get("env") or ():
            source = env.get("valueFrom") or {}
            if "configMapKeyRef" in source:
                config_maps.add(source["configMapKeyRef"].get("name", ""))
            if "secretKeyRef" in source:
                secrets.add(source["secretKeyRef"].get("name", ""))
    return frozenset(config_maps - {""}), frozenset(secrets - {""})


def rewrite_text(text: str, rewrites: Sequence[tuple[str, str]]) -> str:
    for old, new in rewrites:
        text = text.replace(old, new)
    return text


def _rewrite_container(container: dict[str, Any], rewrites: Sequence[tuple[str, str]]) -> None:
    if "image" in container:
        container["image"] = rewrite_text(str(container["image"]), rewrites)
    for field_name in ("command", "args"):
        if container.get(field_name):
            container[field_name] = [rewrite_text(str(a), rewrites) for a in container[field_name]]
    for env in container.get("env") or ():
        if isinstance(env.get("value"), str):
            env["value"] = rewrite_text(env["value"], rewrites)


def copy_labels(*, instance: str, source_uid: str, attempt: int) -> dict[str, str]:
    return {LABEL_ORIGIN: instance, LABEL_SOURCE_UID: source_uid, LABEL_ATTEMPT: str(attempt)}


_STRIPPED_LABEL_PREFIXES = ("kueue.x-k8s.io/", "batch.kubernetes.io/", "controller-uid", "job-name")


def _clean_labels(source: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in source.items() if not k.startswith(_STRIPPED_LABEL_PREFIXES)}


# Job spec fields the copy does not take from the on-prem Job (`suspend` is set anew).
_DROPPED_SPEC_FIELDS = (
    "selector",
    "manualSelector",
    "managedBy",
    "suspend",
    "ttlSecondsAfterFinished",
)


def cloud_job(
    source: Obj,
    *,
    name: str,
    instance: str,
    source_cluster: str,
    pool: str,
    attempt: int,
    suspended: bool,
    rewrites: Sequence[tuple[str, str]] = (),
    node_selector: Mapping[str, str] | None = None,
    tolerations: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The manifest of a job's cloud copy: same pods, pinned to a pool, data paths rewritten.

    On-prem-only fields are dropped: the Job's uid-derived selector and labels (the cloud's Job
    controller makes its own), Kueue's labels (no Kueue manages it there), status, and
    `managedBy`. So is `ttlSecondsAfterFinished`: federator's GC deletes copies, after a pass
    has read the finished copy and written the on-prem Job's terminal state. A cloud TTL
    controller deleting it first leaves a PLACED record with no copy, which the next pass
    recreates: the job runs again and the on-prem Job never finishes (with a TTL of 0, forever).
    The copy and its pods carry federator's labels, so GC and the pod watch find them by label.
    """
    src_meta = meta(source)
    uid = str(src_meta.get("uid"))
    owned = copy_labels(instance=instance, source_uid=uid, attempt=attempt)
    spec = copy.deepcopy(dict(source.get("spec") or {}))
    for dropped in _DROPPED_SPEC_FIELDS:
        spec.pop(dropped, None)
    template = spec.setdefault("template", {})
    tmeta = template.setdefault("metadata", {})
    tmeta["labels"] = {**_clean_labels(tmeta.get("labels") or {}), **owned}
    pod = template.setdefault("spec", {})
    selector = dict(node_selector) if node_selector else {LABEL_POOL: pool}
    pod["nodeSelector"] = {**(pod.get("nodeSelector") or {}), **selector}
    pod["tolerations"] = [
        *(pod.get("tolerations") or ()),
        {"key": LABEL_POOL, "operator": "Equal", "value": pool, "effect": "NoSchedule"},
        *(dict(t) for t in tolerations),
    ]
    for container in [*(pod.get("containers") or ()), *(pod.get("initContainers") or ())]:
        _rewrite_container(container, rewrites)
    _fail_at_once_on_disruption(spec)
    spec["suspend"] = suspended
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": src_meta.get("namespace"),
            "labels": {**_clean_labels(src_meta.get("labels") or {}), **owned, LABEL_POOL: pool},
            "annotations": {
                ANNOTATION_SOURCE: f"{source_cluster}/{key(source)}",
                **{k: v for k, v in annotations_of(source).items() if _copied_annotation(k)},
            },
        },
        "spec": spec,
    }


# A pod the cluster took away (spot reclaim, node gone, eviction, scheduler preemption: each sets
# the pod condition DisruptionTarget) fails the copy at once, with that reason in its status.
# Without it the lost pod counts against the Job's own backoffLimit: with 0 the copy ends
# Failed, and a pass that did not see the pod before the pod GC removed it (the daemon
# restarting, on-prem unreachable) took a spot preemption for the job's own failure and failed
# the job on-prem; with more, the Job controller re-ran it on the same pool behind federator's
# back. The copy's status now says "preempted" for as long as the copy exists (`copy_view`).
_DISRUPTION_FAILS_THE_COPY = {
    "action": "FailJob",
    "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
}
_MAX_POD_FAILURE_RULES = 20  # the Job API's limit


def _fail_at_once_on_disruption(spec: dict[str, Any]) -> None:
    """Put the disruption rule first in the copy's podFailurePolicy, where the API allows one:
    pods that never restart in place (`restartPolicy: Never`) and room for one more rule.

    A Job with a podFailurePolicy must replace a pod only once it has failed
    (`podReplacementPolicy: Failed`); the apiserver defaults the on-prem Job's to
    `TerminatingOrFailed` without one, and refuses the copy with that (422)."""
    if ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy") != "Never":
        return
    policy = dict(spec.get("podFailurePolicy") or {})
    rules = list(policy.get("rules") or ())
    if len(rules) >= _MAX_POD_FAILURE_RULES:
        return
    spec["podFailurePolicy"] = {**policy, "rules": [_DISRUPTION_FAILS_THE_COPY, *rules]}
    spec["podReplacementPolicy"] = "Failed"


def failed_by_disruption(job: Obj) -> bool:
    """The Job failed because the cluster took a pod away (a podFailurePolicy FailJob rule on
    DisruptionTarget matched, ours or the user's): true after the pods are gone too."""
    return any(
        c.get("type") in ("FailureTarget", "Failed")
        and c.get("status") == "True"
        and c.get("reason") == "PodFailurePolicy"
        and "has condition DisruptionTarget" in str(c.get("message", ""))
        for c in conditions(job)
    )


# What federator writes on the on-prem Job about its placement. On the copy it would describe
# the on-prem object, not the copy, and an on-prem `source` would replace the copy's own.
_FEDERATOR_STATE_ANNOTATIONS = frozenset(
    {
        ANNOTATION_RECORD,
        ANNOTATION_PLACEMENT,
        ANNOTATION_REMOTE_STATE,
        ANNOTATION_RETURNED,
        ANNOTATION_RETURNED_RECORD,
        ANNOTATION_SOURCE,
    }
)


def _copied_annotation(name: str) -> bool:
    """Job annotations worth keeping on the copy: the user's, including their federator.io
    inputs (runtime estimate, datasets, deadline, ...), not federator's or kubectl's bookkeeping.
    """
    return name not in _FEDERATOR_STATE_ANNOTATIONS and not name.startswith("kubectl.")


def copied_config(
    source: Obj, *, instance: str, source_uid: str, attempt: int, owner: Obj | None
) -> dict[str, Any]:
    """A ConfigMap or Secret copied next to a copy, labelled, and owned by it when possible."""
    src_meta = meta(source)
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": source.get("kind"),
        "metadata": {
            "name": src_meta.get("name"),
            "namespace": src_meta.get("namespace"),
            "labels": {
                **(src_meta.get("labels") or {}),
                **copy_labels(instance=instance, source_uid=source_uid, attempt=attempt),
            },
        },
    }
    for field_name in ("data", "binaryData", "stringData", "type", "immutable"):
        if field_name in source:
            body[field_name] = copy.deepcopy(source[field_name])
    if owner is not None:
        body["metadata"]["ownerReferences"] = [owner_reference(owner)]
    return body


def owner_reference(owner: Obj) -> dict[str, Any]:
    return {
        "apiVersion": owner.get("apiVersion", "batch/v1"),
        "kind": owner.get("kind", "Job"),
        "name": meta(owner).get("name"),
        "uid": meta(owner).get("uid"),
    }
