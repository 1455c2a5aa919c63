"""The on-prem adapter with the policy file's per-queue runtime defaults applied.

The on-prem adapter (`federator.kube.onprem`) assumes one runtime for every job that declares
none. The policy file can set one per queue (`queues[].default_runtime`, a LocalQueue's own,
else its ClusterQueue's, else `cost.default_runtime`). This subclass applies it to each
snapshot, where the policy in force is known (it follows reloads): to the waiting jobs' runtime
estimate, and to the remaining time of the running ones, which sets how long others wait.
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
from federator.policy.eligibility import JobFacts, default_runtime

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
        if not any(queue.default_runtime is not None for queue in config.queues):
            return view
        targets = self._local_queue_targets()
        jobs = tuple(waiting_with_queue_runtime(job, config, targets) for job in view.jobs)
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


def waiting_with_queue_runtime(
    job: OnPremJob, config: policy.FederatorConfig, targets: LocalQueueTargets
) -> OnPremJob:
    """The job with its queue's default runtime, when it declares none."""
    spec = job.spec
    if spec.runtime_source is not RuntimeSource.DEFAULT:
        return job
    local_queue = spec.queue if job.workload is not None else None
    runtime_s = _queue_default_s(config, spec.namespace, local_queue, targets)
    if runtime_s == spec.runtime_estimate_s:
        return job
    return dataclasses.replace(job, spec=dataclasses.replace(spec, runtime_estimate_s=runtime_s))


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
    cluster_queue = targets.get((namespace, local_queue)) if local_queue else None
    facts = JobFacts(namespace=namespace, queue=local_queue, cluster_queue=cluster_queue)
    return default_runtime(config, facts).total_seconds()


def _reserved_at(workload: convert.Obj) -> float | None:
    """When Kueue reserved quota for the workload (as `convert.onprem_state` measures it)."""
    by_type = {c.get("type"): c for c in convert.conditions(workload) if c.get("status") == "True"}
    condition = by_type.get("QuotaReserved") or by_type.get("Admitted")
    return None if condition is None else convert.parse_time(condition.get("lastTransitionTime"))
