"""The on-prem adapter with the policy file's per-queue settings applied.

The on-prem adapter (`federator.kube.onprem`) assumes one runtime for every job that declares
none. The policy file can set one per queue (`queues[].default_runtime`, a LocalQueue's own,
else its ClusterQueue's, else `cost.default_runtime`), and a value of waiting per queue
(`queues[].value_of_waiting_usd_per_gpu_hour`, resolved the same way). This subclass applies
them to each snapshot, where the policy in force is known (it follows reloads): to the waiting
jobs' runtime estimate and value of waiting, and to the remaining time of the running ones,
which sets how long others wait.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from federator import policy
from federator.core.models import OnPremState, RunningJob, RuntimeSource
from federator.federation.ports import OnPremJob, OnPremView
from federator.kube import clients, convert
from federator.kube.onprem import OnPremCluster
from federator.policy.eligibility import JobFacts, default_runtime, value_of_waiting

LocalQueueTargets = Mapping[tuple[str, str], str]  # (namespace, LocalQueue) -> ClusterQueue


class PolicyOnPremCluster(OnPremCluster):
    """`OnPremCluster` whose snapshots use the policy's per-queue default runtimes."""

    def __init__(
        self,
        cluster: clients.Cluster,
        *,
        config_of: Callable[[], policy.FederatorConfig],
        **settings: Any,
    ) -> None:
        super().__init__(cluster, **settings)
        self._config_of = config_of

    async def snapshot(self, now: float) -> OnPremView:
        config = self._config_of()
        self.default_runtime_s = config.cost.default_runtime.total_seconds()  # reloads apply
        view = await super().snapshot(now)
        targets = self._local_queue_targets()
        resolved: dict[tuple[str, str | None], tuple[float, float]] = {}  # once per queue
        jobs = tuple(
            waiting_with_queue_settings(job, config, targets, resolved) for job in view.jobs
        )
        if not any(queue.default_runtime is not None for queue in config.queues):
            return dataclasses.replace(view, jobs=jobs)
        state = self._running_with_queue_runtimes(view.state, config, targets, now)
        return dataclasses.replace(view, jobs=jobs, state=state)

    def _local_queue_targets(self) -> dict[tuple[str, str], str]:
        found: dict[tuple[str, str], str] = {}
        for local_queue in self.local_queues.items.values():
            meta = convert.meta(local_queue)
            target = (local_queue.get("spec") or {}).get("clusterQueue")
            if target:
                found[(str(meta.get("namespace")), str(meta.get("name")))] = str(target)
        return found

    def _running_with_queue_runtimes(
        self, state: OnPremState, config: policy.FederatorConfig, targets: LocalQueueTargets,
        now: float,
    ) -> OnPremState:  # fmt: skip
        if not state.running:
            return state
        reserved_at: dict[str, float] = {}  # job UID -> when Kueue reserved its quota
        for workload in self.workloads.items.values():
            owner, at = convert.workload_owner_uid(workload), _reserved_at(workload)
            if owner is not None and at is not None:
                reserved_at[owner] = at
        running = []
        for job in state.running:
            obj = self.jobs.items.get(job.key)
            if obj is not None and not convert.annotations_of(obj).get(convert.ANNOTATION_RUNTIME):
                job = _remaining_by_queue(job, obj, config, targets, reserved_at, now)
            running.append(job)
        return dataclasses.replace(state, running=tuple(running))


def waiting_with_queue_settings(
    job: OnPremJob,
    config: policy.FederatorConfig,
    targets: LocalQueueTargets,
    resolved: dict[tuple[str, str | None], tuple[float, float]] | None = None,
) -> OnPremJob:
    """The job with its queue's value of waiting, and its default runtime when it declares
    none. The value is resolved here, not looked up by the LocalQueue's name in the core: two
    namespaces may each have a LocalQueue `training`, and a ClusterQueue's value belongs to
    every LocalQueue that points at it."""
    spec = job.spec
    local_queue = spec.queue if job.workload is not None else None
    key = (spec.namespace, local_queue)
    settings = None if resolved is None else resolved.get(key)
    if settings is None:  # (value of waiting, default runtime) of the job's queue
        facts = _facts(spec.namespace, local_queue, targets)
        settings = (value_of_waiting(config, facts), default_runtime(config, facts).total_seconds())
        if resolved is not None:
            resolved[key] = settings
    value, runtime_s = settings
    changes: dict[str, Any] = {"value_usd_per_gpu_hour": value}
    if spec.runtime_source is RuntimeSource.DEFAULT:
        changes["runtime_estimate_s"] = runtime_s
    return dataclasses.replace(job, spec=dataclasses.replace(spec, **changes))


def _remaining_by_queue(
    job: RunningJob,
    obj: convert.Obj,
    config: policy.FederatorConfig,
    targets: LocalQueueTargets,
    reserved_at: Mapping[str, float],
    now: float,
) -> RunningJob:
    meta = convert.meta(obj)
    namespace = str(meta.get("namespace"))
    local_queue = convert.labels(obj).get(convert.KUEUE_QUEUE_LABEL)
    runtime_s = _queue_default_s(config, namespace, local_queue, targets)
    started = reserved_at.get(str(meta.get("uid")), now)
    return dataclasses.replace(job, expected_remaining_s=max(0.0, runtime_s - (now - started)))


def _queue_default_s(
    config: policy.FederatorConfig,
    namespace: str,
    local_queue: str | None,
    targets: LocalQueueTargets,
) -> float:
    return default_runtime(config, _facts(namespace, local_queue, targets)).total_seconds()


def _facts(namespace: str, local_queue: str | None, targets: LocalQueueTargets) -> JobFacts:
    cluster_queue = targets.get((namespace, local_queue)) if local_queue else None
    return JobFacts(namespace=namespace, queue=local_queue, cluster_queue=cluster_queue)


def _reserved_at(workload: convert.Obj) -> float | None:
    """When Kueue reserved quota for the workload (as `convert.onprem_state` measures it)."""
    by_type = {c.get("type"): c for c in convert.conditions(workload) if c.get("status") == "True"}
    condition = by_type.get("QuotaReserved") or by_type.get("Admitted")
    return None if condition is None else convert.parse_time(condition.get("lastTransitionTime"))
