"""Every Prometheus metric federator exports, declared once, in base units, with bounded labels.

Any loop may import this module and update a metric (`metrics.DECISIONS.labels(decision="burst")
.inc()`); only `federator.web` exposes them. The names and label sets are a public contract
(dashboards and alerts in `deploy/` use them, `docs/operations.md` lists them): add metrics,
never rename one.

Why a dedicated `REGISTRY` instead of prometheus_client's global default: `/metrics` then shows
exactly what this module declares (plus the process/platform collectors we add on purpose), no
library can slip its own series in by importing, and tests can build a fresh `CollectorRegistry`
for the web app without fighting "Duplicated timeseries" errors from the global one.

Label values must come from a bounded set: the configured cluster, queue, scope and dataset
names, or the constant vocabularies below. Never a job name, a UID or an error message.
Call `initialise(...)` once at start so every known series exists at 0 before its first event
(prometheus_client does not create labelled series until `.labels()` is called).
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

from federator.core.models import GANG_SIZES
from federator.prices.quotes import RejectReason

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

# ---- bounded vocabularies for label values ---------------------------------------------------

DECISION_KINDS = ("stay", "burst", "hold")
"""`federator_decisions_total{decision}`: the three answers of the cost model."""

PLACEMENT_OUTCOMES = (
    "placed",
    "already_placed",
    "failed",
    "withdrawn",
    "replaced",
    "start_timeout",
)
"""`federator_placements_total{outcome}`: what happened when we acted on a burst decision.

placed: the remote Job was created; already_placed: it existed (idempotent retry);
failed: the create was refused or errored; withdrawn: the remote copy was deleted because the
job went back on-prem; replaced: it was placed again after its copy was lost (preempted, its
cluster lost, refused, or never started); start_timeout: the copy was deleted because none of
its pods started within `burst.replacement.start_timeout` (counted on the cluster that never
started it, apart from preemptions, which `federator_preemptions_total` counts).
"""

BURST_STATES = ("syncing", "pending", "running", "succeeded", "failed", "preempted")
"""`federator_bursted_jobs{state}`: where the jobs federator placed in a cloud are right now."""

SYNC_DIRECTIONS = ("to_cloud", "from_cloud")
"""`federator_sync_bytes_total{direction}`: datasets go out, checkpoints and models come back."""

PRICE_REJECTION_REASONS = tuple(reason.value for reason in RejectReason)
"""`federator_price_inputs_rejected_total{reason}`: why a price quote was not believed; every
value of `federator.prices.quotes.RejectReason`, derived so that a new reason cannot be missed."""

# ---- the on-prem queue -------------------------------------------------------------------------

QUEUE_PENDING_WORKLOADS = Gauge(
    "federator_queue_pending_workloads",
    "Workloads waiting in an on-prem Kueue queue, as federator last observed them.",
    ["queue"],
    registry=REGISTRY,
)
QUEUE_PENDING_GPUS = Gauge(
    "federator_queue_pending_gpus",
    "GPUs requested by the workloads waiting in an on-prem queue.",
    ["queue"],
    registry=REGISTRY,
)
QUEUE_OLDEST_PENDING_SECONDS = Gauge(
    "federator_queue_oldest_pending_seconds",
    "Age of the oldest workload waiting in an on-prem queue (0 when the queue is empty).",
    ["queue"],
    registry=REGISTRY,
)
ONPREM_QUOTA_GPUS = Gauge(
    "federator_onprem_quota_gpus",
    "On-prem GPU quota per quota pool (a Kueue cohort, or a ClusterQueue in none): its "
    "nominal total, and what its members do not reserve (free).",
    ["pool", "state"],
    registry=REGISTRY,
)
QUOTA_STATES = ("total", "free")

# The cost model's on-prem wait forecasts against the real waits (federation/forecasts.py).
ONPREM_WAIT_FORECASTS = Counter(
    "federator_onprem_wait_forecasts_total",
    "Jobs that started on-prem after a stay decision forecast their wait, by gang size.",
    ["gpus"],
    registry=REGISTRY,
)
ONPREM_WAIT_FORECAST_SECONDS = Counter(
    "federator_onprem_wait_forecast_seconds_total",
    "Sum of those jobs' first forecast on-prem waits, by gang size.",
    ["gpus"],
    registry=REGISTRY,
)
ONPREM_WAIT_REAL_SECONDS = Counter(
    "federator_onprem_wait_real_seconds_total",
    "Sum of the same jobs' real waits from their forecast to their start, by gang size.",
    ["gpus"],
    registry=REGISTRY,
)

# ---- decisions and placements ----------------------------------------------------------------

DECISIONS = Counter(
    "federator_decisions_total",
    "Decisions the cost model took for pending jobs, by kind (stay, burst, hold).",
    ["decision"],
    registry=REGISTRY,
)
PLACEMENTS = Counter(
    "federator_placements_total",
    "Actions on cloud clusters following burst decisions, by cluster and outcome.",
    ["cluster", "outcome"],
    registry=REGISTRY,
)
BURSTED_JOBS = Gauge(
    "federator_bursted_jobs",
    "Jobs federator has placed on a cloud cluster, by cluster and current state.",
    ["cluster", "state"],
    registry=REGISTRY,
)
UNMANAGED_PLACEMENTS = Gauge(
    "federator_unmanaged_placements",
    "Jobs left alone because their placement names a cloud cluster the policy file no longer "
    "configures (their copies may still run there), by that cluster; set by the leader.",
    ["cluster"],
    registry=REGISTRY,
)
UNWATCHED_COPIES = Gauge(
    "federator_unwatched_copies",
    "Cloud copies never collected because their on-prem namespace is not watched (their "
    "source Jobs are unseen), by cloud cluster; set by the leader.",
    ["cluster"],
    registry=REGISTRY,
)
PREEMPTIONS = Counter(
    "federator_preemptions_total",
    "Bursted jobs whose cloud pods were preempted (spot reclaim or node loss), by cluster.",
    ["cluster"],
    registry=REGISTRY,
)

# ---- money --------------------------------------------------------------------------------------

CLOUD_SPEND_USD = Counter(
    "federator_cloud_spend_usd_total",
    "Cloud spend accrued by bursted jobs, in US dollars, by cluster.",
    ["cluster"],
    registry=REGISTRY,
)
BUDGET_REMAINING_USD = Gauge(
    "federator_budget_remaining_usd",
    "Budget left in a configured scope (e.g. hour, day, tenant:<name>), in US dollars.",
    ["scope"],
    registry=REGISTRY,
)
BUDGET_USED_FRACTION = Gauge(
    "federator_budget_used_fraction",
    "Cloud spend as a fraction of a configured cap, by scope (as federator_budget_remaining_usd).",
    ["scope"],
    registry=REGISTRY,
)
BUDGET_WARNINGS = Counter(
    "federator_budget_warnings_total",
    "Times spend crossed budgets.warn_at_fraction of a cap (once per crossing), by scope.",
    ["scope"],
    registry=REGISTRY,
)
PRICE_AGE_SECONDS = Gauge(
    "federator_price_age_seconds",
    "Age of the price quote the cost model currently uses for a cloud pool.",
    ["cluster", "pool"],
    registry=REGISTRY,
)
PRICE_INPUTS_REJECTED = Counter(
    "federator_price_inputs_rejected_total",
    "Price quotes refused as implausible, by reason (see metrics.PRICE_REJECTION_REASONS).",
    ["reason"],
    registry=REGISTRY,
)

# ---- data sync ----------------------------------------------------------------------------------

SYNC_BYTES = Counter(
    "federator_sync_bytes_total",
    "Bytes copied between the on-prem and cloud object stores, by direction.",
    ["direction"],
    registry=REGISTRY,
)
SYNC_LAG_SECONDS = Gauge(
    "federator_sync_lag_seconds",
    "How far a dataset's replica on a cloud cluster is behind its source (0 when in sync).",
    ["dataset", "cluster"],
    registry=REGISTRY,
)

SYNC_FAILURES = Counter(
    "federator_sync_failures_total",
    "Failed tries to replicate a dataset to a cloud cluster (a copy or listing that failed and "
    "was backed off), by dataset and cluster.",
    ["dataset", "cluster"],
    registry=REGISTRY,
)

# ---- process health -----------------------------------------------------------------------------

CLUSTER_UP = Gauge(
    "federator_cluster_up",
    "1 when the cluster's apiserver answered the last probe, 0 otherwise.",
    ["cluster"],
    registry=REGISTRY,
)
READS_REFUSED = Gauge(
    "federator_reads_refused",
    "Reads of the cluster federator must make that its apiserver refuses now (403: the RBAC "
    "does not grant one kind): its cache is incomplete, so its jobs wait, neither acted on nor "
    "taken as lost.",
    ["cluster"],
    registry=REGISTRY,
)
IS_LEADER = Gauge(
    "federator_is_leader",
    "1 while this replica holds the leader Lease and may act, 0 otherwise.",
    registry=REGISTRY,
)
RECONCILE_DURATION_SECONDS = Histogram(
    "federator_reconcile_duration_seconds",
    "Wall time of one full reconcile pass (observe, decide, act).",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
    registry=REGISTRY,
)
CONFIG_RELOAD_FAILURES = Counter(
    "federator_config_reload_failures_total",
    "Config reloads rejected because the new file was invalid; the old policy stayed in force.",
    registry=REGISTRY,
)
CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS = Gauge(
    "federator_config_last_reload_success_timestamp_seconds",
    "Unix time at which the policy in force was loaded.",
    registry=REGISTRY,
)


def initialise(
    *,
    cloud_clusters: Iterable[str] = (),
    budget_scopes: Iterable[str] = (),
    replica_pairs: Iterable[tuple[str, str]] = (),
) -> None:
    """Create the known counter series at 0, so dashboards and rate() see them from the start.

    `budget_scopes` are the configured caps (`budgets.scopes_of(config)`: hour, day,
    tenant:<name>); without a 0 before it, `increase(federator_budget_warnings_total[1h])`
    misses the first warning of a scope. `replica_pairs` are the (dataset, cloud cluster)
    pairs the policy gives a replica (`daemon.replicas.replica_pairs`): their failed-try counter
    starts at 0, so `increase()` sees a replica's first failure. Creating a series twice is
    harmless.

    Call it once at start and again after every config reload (a reload may add names). Only
    series where 0 is true before the first event are created: the counters. Gauges describe
    observed state (cluster up, budget left, queue depth, bursted jobs, sync lag) and stay
    absent until someone observes it; a 0 there before the first observation would be a false
    claim.
    """
    for decision in DECISION_KINDS:
        DECISIONS.labels(decision=decision)
    for direction in SYNC_DIRECTIONS:
        SYNC_BYTES.labels(direction=direction)
    for reason in PRICE_REJECTION_REASONS:
        PRICE_INPUTS_REJECTED.labels(reason=reason)
    for size, _, _ in GANG_SIZES:
        for forecast_counter in (
            ONPREM_WAIT_FORECASTS,
            ONPREM_WAIT_FORECAST_SECONDS,
            ONPREM_WAIT_REAL_SECONDS,
        ):
            forecast_counter.labels(gpus=size)
    for cluster in cloud_clusters:
        _initialise_cloud_cluster(cluster)
    for scope in budget_scopes:
        BUDGET_WARNINGS.labels(scope=scope)
    for dataset, cluster in replica_pairs:
        SYNC_FAILURES.labels(dataset=dataset, cluster=cluster)


def _initialise_cloud_cluster(cluster: str) -> None:
    CLOUD_SPEND_USD.labels(cluster=cluster)
    PREEMPTIONS.labels(cluster=cluster)
    for outcome in PLACEMENT_OUTCOMES:
        PLACEMENTS.labels(cluster=cluster, outcome=outcome)
