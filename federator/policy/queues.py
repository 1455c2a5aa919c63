"""Which on-prem queues federator watches, and which of their jobs may leave.

Jobs reach federator through Kueue ClusterQueues and LocalQueues, or as plain suspended Jobs
in a namespace. Whether a job may burst is decided in this order: the job's own label
`federator.io/burst: "never"` always keeps it on-prem; then the first matching rule in
`burst_rules`; then its queue's `burst` mode (`allowed`, `opt-in` — only jobs labelled
`federator.io/burst: "allow"` — or `never`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from federator.policy.base import KubeName, LabelKey, Name, Section, UsdPerHour
from federator.policy.units import PositiveDuration

BURST_LABEL = "federator.io/burst"


class Queue(Section):
    """A queue on the on-prem cluster whose pending jobs federator considers."""

    kind: Literal["ClusterQueue", "LocalQueue", "Namespace"]
    """`ClusterQueue` or `LocalQueue` (Kueue), or `Namespace` for plain Jobs created with
    `suspend: true` in that namespace."""

    name: KubeName
    """Name of the ClusterQueue or LocalQueue, or of the namespace for `kind: Namespace`."""

    namespace: KubeName | None = None
    """Namespace of a LocalQueue (required for `kind: LocalQueue`, not allowed otherwise)."""

    cluster: Name | None = Field(default=None, examples=["onprem"])
    """On-prem cluster the queue is on; the only on-prem cluster when omitted."""

    burst: Literal["allowed", "opt-in", "never"] = "allowed"
    """`allowed`: every job may burst unless it opts out; `opt-in`: only jobs labelled
    `federator.io/burst: "allow"`; `never`: jobs of this queue always stay on-prem."""

    value_of_waiting_usd_per_gpu_hour: UsdPerHour | None = None
    """What one GPU-hour of waiting costs the jobs of this queue, in US dollars; overrides
    `cost.value_of_waiting_usd_per_gpu_hour`."""

    default_runtime: PositiveDuration | None = None
    """Runtime assumed for this queue's jobs that do not declare one; overrides
    `cost.default_runtime`. For a ClusterQueue it covers the jobs of every LocalQueue that
    feeds it, unless that LocalQueue is listed with its own."""

    @model_validator(mode="after")
    def _namespace_only_for_local_queues(self) -> Queue:
        if self.kind == "LocalQueue" and self.namespace is None:
            raise ValueError("a LocalQueue needs its `namespace`")
        if self.kind != "LocalQueue" and self.namespace is not None:
            raise ValueError(f"`namespace` only applies to a LocalQueue, not a {self.kind}")
        return self

    @property
    def display_name(self) -> str:
        if self.kind == "LocalQueue":
            return f"LocalQueue {self.namespace}/{self.name}"
        return f"{self.kind} {self.name}"


class BurstRule(Section):
    """Allow or deny bursting for the jobs it matches; a job matches when it satisfies every
    condition that is set. The first matching rule wins."""

    burst: Literal["allow", "deny"]
    """`allow` lets matching jobs burst (even from an `opt-in` queue); `deny` keeps them
    on-prem."""

    namespaces: tuple[KubeName, ...] = ()
    """Namespaces the job must be in (any of them); any namespace when empty."""

    queues: tuple[KubeName, ...] = ()
    """Names of the queues (ClusterQueue or LocalQueue) the job must be in; any when empty."""

    priority_classes: tuple[KubeName, ...] = ()
    """PriorityClass names the job must have (any of them); any when empty."""

    labels: dict[LabelKey, str] = Field(default_factory=dict)
    """Labels the job must carry with these exact values."""

    annotations: dict[LabelKey, str] = Field(default_factory=dict)
    """Annotations the job must carry with these exact values."""

    reason: str = ""
    """Why the rule exists; shown in decision reasons and logs."""
