"""The values the decision core reasons about: jobs, on-prem state, cloud offers, spend.

These are the contract between the edges (Kubernetes watchers, price sources, the simulator)
and the core. Every field has a unit in its name or its docstring. Fields are only ever added
(with defaults), never renamed, so every caller keeps working.

Times are seconds on one clock chosen by the caller (epoch seconds in the daemon, trace seconds
in the simulator); the core never reads a clock itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

# Gang sizes reported apart wherever on-prem wait forecasts are checked (the simulator's table,
# the daemon's metrics): one GPU fits any gap; larger gangs need room on one node, or whole nodes.
GANG_SIZES: tuple[tuple[str, int, float], ...] = (
    ("1", 1, 1),
    ("2-4", 2, 4),
    ("5-8", 5, 8),
    ("9+", 9, float("inf")),
)


def gang_size(gpus: int) -> str:
    """The `GANG_SIZES` label of a job of `gpus` GPUs."""
    return next(label for label, _, largest in GANG_SIZES if gpus <= largest)  # the last is ∞


class CapacityType(StrEnum):
    SPOT = "spot"
    ON_DEMAND = "on-demand"


class RuntimeSource(StrEnum):
    """Where a job's runtime estimate came from; the cost model trusts them differently."""

    ANNOTATION = "annotation"  # the job declared it
    HISTORY = "history"  # learned from finished jobs of the same queue
    DEFAULT = "default"  # the policy's default for the queue
    ORACLE = "oracle"  # the true duration (simulator's clairvoyant policy only)


@dataclass(frozen=True, slots=True)
class DatasetNeed:
    """A dataset a job reads; it must be replicated to a cloud store before the job starts there."""

    name: str
    size_bytes: int


@dataclass(frozen=True, slots=True)
class PendingJob:
    """A job waiting on-prem that federator may leave, burst, or hold."""

    key: str  # stable identity: "<namespace>/<name>" in the daemon, the trace id in the simulator
    gpus: int  # total GPUs over all pods (gang)
    submitted_at: float  # seconds
    runtime_estimate_s: float
    queue: str = "default"
    tenant: str = "default"
    namespace: str = "default"
    priority: int = 0
    gpu_types: frozenset[str] = frozenset()  # acceptable GPU types; empty means any
    runtime_source: RuntimeSource = RuntimeSource.DEFAULT
    datasets: tuple[DatasetNeed, ...] = ()
    checkpoint_interval_s: float | None = None  # None: the policy default
    deadline_at: float | None = None  # seconds on the same clock as submitted_at
    burst_allowed: bool = True  # False for opt-outs (label federator.io/burst: "never")
    gpus_per_pod: int | None = None  # gang placement on nodes; None: one node if possible
    output_bytes: int = 0  # results copied back out of a cloud, priced at the offer's egress
    # The value of waiting of the job's own queue, when the caller resolved it (the daemon does:
    # a LocalQueue, its ClusterQueue or its namespace); None: looked up by `queue` name.
    value_usd_per_gpu_hour: float | None = None
    # The on-prem quota it waits for (`OnPremState.quota_pools`); "" when unknown: a Job
    # outside Kueue, or a queue whose ClusterQueue is not seen. Such a job is replayed
    # against the whole cluster's free GPUs.
    quota_pool: str = ""


# Where a job's GPUs are: (node index, GPUs held there) for each node it uses.
Placement = tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class RunningJob:
    """A job holding on-prem GPUs, with how long it is expected to keep them
    (`expected_remaining_s`)."""

    key: str
    gpus: int
    expected_remaining_s: float
    quota_pool: str = ""  # the quota its GPUs go back to (`OnPremState.quota_pools`)
    # Its nodes, indexed as in `OnPremState.node_free_gpus`; empty when unknown. Known for
    # every running job, the replay follows GPUs node by node.
    nodes: Placement = ()


@dataclass(frozen=True, slots=True)
class QuotaPool:
    """GPU quota that on-prem jobs share: one Kueue cohort, or one ClusterQueue in none.

    A job waits for the free quota of its own pool, not of the whole cluster: a team's full
    ClusterQueue does not admit its jobs because another team's queue is idle (unless the two
    share a cohort, whose members borrow each other's unused quota).
    """

    name: str
    total_gpus: int
    free_gpus: int


def expected_remaining_s(started_at: float, expected_end: float, now: float) -> float:
    """How long a running job is expected to keep its GPUs: until its expected end, and once
    past that, half as long again as it has run so far.

    A job that outlived its estimate has shown that the estimate was short, and GPU runtimes
    are heavy-tailed: taking it for ending *now* (0 left) made the replay start the queue on
    GPUs that stay taken, so every waiting job looked like it "starts on-prem now" and none
    was considered for the cloud for as long as the overrun lasted. The daemon and the
    simulator both use this rule.
    """
    left = expected_end - now
    return left if left > 0 else 0.5 * (now - started_at)


@dataclass(frozen=True, slots=True)
class OnPremState:
    """What the on-prem cluster looks like to the decision at `now`."""

    total_gpus: int
    free_gpus: int
    running: tuple[RunningJob, ...] = ()
    # The jobs queued ahead, in admission order; pending jobs passed to `decide` are a subset.
    queue_order: tuple[str, ...] = ()
    node_free_gpus: tuple[int, ...] = ()  # free GPUs per node, when node shapes matter
    gpus_per_node: int = 8  # node size: a gang bigger than this is split into node-sized pods
    # Pending jobs queued behind every job passed to `decide` but not passed themselves (a
    # caller that passes only a prefix of the queue, like the simulator): they count among the
    # jobs a stay delays (docs/cost-model.md §2). 0 when every pending job is passed.
    queued_behind: int = 0
    # The quota pools `total_gpus` and `free_gpus` add up, when there are several: each job is
    # then replayed against its own pool (`PendingJob.quota_pool`). Empty or one pool: the
    # cluster is one pool.
    quota_pools: tuple[QuotaPool, ...] = ()


@dataclass(frozen=True, slots=True)
class Offer:
    """One cloud pool federator may place jobs on, as priced and risk-rated right now."""

    cluster: str
    pool: str
    gpu_type: str
    capacity_type: CapacityType
    price_per_gpu_hour_usd: float
    free_gpus: int  # GPUs federator may still use here: min(pool cap left, provisionable)
    preemption_rate_per_hour: float = 0.0  # expected preemptions per hour of a running job
    startup_latency_s: float = 120.0
    provider: str = ""
    region: str = ""
    gpus_per_node: int = 8
    egress_usd_per_gb: float = 0.0  # bringing results back out of this cloud
    ingress_usd_per_gb: float = 0.0  # moving datasets in (usually the on-prem side's egress)
    transfer_bytes_per_s: float = 100e6  # on-prem store -> this cloud's store
    # Bytes still to copy per dataset already partly replicated; a dataset in neither this nor
    # `replicated_datasets` must be copied in full.
    pending_dataset_bytes: Mapping[str, int] = field(default_factory=dict)
    replicated_datasets: frozenset[str] = frozenset()
    price_source: str = "fixed"
    price_age_s: float = 0.0
    preemption_evidence: str = "prior"
    placement_score: float | None = None  # AWS spot placement score 1..10 when known

    @property
    def name(self) -> str:
        return f"{self.cluster}/{self.pool}"


@dataclass(frozen=True, slots=True)
class Spend:
    """Cloud spend so far and what federator already runs in the cloud, against budgets and caps."""

    last_hour_usd: float = 0.0
    today_usd: float = 0.0
    tenant_month_usd: Mapping[str, float] = field(default_factory=dict)
    bursted_jobs: int = 0
    bursted_gpus: int = 0
    cluster_bursted_jobs: Mapping[str, int] = field(default_factory=dict)
    cluster_bursted_gpus: Mapping[str, int] = field(default_factory=dict)
