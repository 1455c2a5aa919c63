"""Whether a job may leave on-prem at all, by the rules of the policy file.

This is the gate before the cost model: a job that may not burst is never offered a cloud
pool. The order is fixed and documented in `federator.policy.queues`: the job's own opt-out
label wins, then the first matching `burst_rules` entry, then its queue's `burst` mode, then
its tenant (a tenant allowed nowhere never bursts). The answer carries a reason a person can
read in an Event or a log line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from federator.policy.config import FederatorConfig
from federator.policy.queues import BURST_LABEL, BurstRule, Queue


@dataclass(frozen=True, slots=True)
class JobFacts:
    """What the gate needs to know about a job (read from its Job or Workload)."""

    namespace: str
    queue: str | None = None  # LocalQueue name (kueue.x-k8s.io/queue-name); None for plain Jobs
    cluster_queue: str | None = None  # the ClusterQueue its LocalQueue points at, if known
    priority_class: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Eligibility:
    """The gate's answer: may the job burst, and why (one human line)."""

    allowed: bool
    reason: str


def may_burst(config: FederatorConfig, job: JobFacts) -> Eligibility:
    """Apply the policy file's opt-out label, burst rules, queue mode and tenant, in order."""
    label = job.labels.get(BURST_LABEL)
    if label == "never":
        return Eligibility(False, f"the job is labelled {BURST_LABEL}: never")
    for index, rule in enumerate(config.burst_rules):
        if _matches(rule, job):
            why = f"burst_rules[{index}]" + (f" ({rule.reason})" if rule.reason else "")
            verb = "allows" if rule.burst == "allow" else "denies"
            return Eligibility(rule.burst == "allow", f"{why} {verb} it")
    queue = queue_of(config, job)
    if queue is None:
        return Eligibility(False, f"no watched queue covers namespace {job.namespace!r}")
    if queue.burst == "never":
        return Eligibility(False, f"{queue.display_name} never bursts")
    if queue.burst == "opt-in" and label != "allow":
        return Eligibility(
            False,
            f"{queue.display_name} is opt-in and the job is not labelled {BURST_LABEL}: allow",
        )
    tenant = config.tenant_of_namespace(job.namespace)
    if tenant is not None and (tenant.allowed_clusters == () or tenant.allowed_regions == ()):
        return Eligibility(False, f"tenant {tenant.name} may not burst anywhere")
    return Eligibility(True, f"{queue.display_name} allows bursting")


def default_runtime(config: FederatorConfig, job: JobFacts) -> timedelta:
    """The runtime assumed for a job that declares none: its watched queue's
    `default_runtime` when set, else `cost.default_runtime`."""
    queue = queue_of(config, job)
    if queue is not None and queue.default_runtime is not None:
        return queue.default_runtime
    return config.cost.default_runtime


def value_of_waiting(config: FederatorConfig, job: JobFacts) -> float:
    """The job's value of waiting per GPU-hour: its watched queue's own when set (a LocalQueue,
    its ClusterQueue, or its namespace), else `cost.value_of_waiting_usd_per_gpu_hour`."""
    queue = queue_of(config, job)
    if queue is not None and queue.value_of_waiting_usd_per_gpu_hour is not None:
        return queue.value_of_waiting_usd_per_gpu_hour
    return config.cost.value_of_waiting_usd_per_gpu_hour


def _matches(rule: BurstRule, job: JobFacts) -> bool:
    queues = {name for name in (job.queue, job.cluster_queue) if name is not None}
    return (
        (not rule.namespaces or job.namespace in rule.namespaces)
        and (not rule.queues or bool(queues & set(rule.queues)))
        and (not rule.priority_classes or job.priority_class in rule.priority_classes)
        and all(job.labels.get(k) == v for k, v in rule.labels.items())
        and all(job.annotations.get(k) == v for k, v in rule.annotations.items())
    )


def queue_of(config: FederatorConfig, job: JobFacts) -> Queue | None:
    """The most specific watched queue of the job: its LocalQueue, its ClusterQueue, or its
    namespace (for plain suspended Jobs)."""
    for queue in config.queues:
        if queue.kind == "LocalQueue" and (queue.namespace, queue.name) == (
            job.namespace,
            job.queue,
        ):
            return queue
    for queue in config.queues:
        if queue.kind == "ClusterQueue" and queue.name == job.cluster_queue:
            return queue
    for queue in config.queues:
        if queue.kind == "Namespace" and queue.name == job.namespace and job.queue is None:
            return queue
    return None
