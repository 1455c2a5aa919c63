"""The metric names and label sets are the contract dashboards and alerts rely on (issue 8)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Metric

from federator import metrics

# Exactly as issue 8 lists them; a rename breaks every dashboard, so this table must not move.
REQUIRED = {
    "federator_queue_pending_workloads": ("gauge", {"queue"}),
    "federator_queue_pending_gpus": ("gauge", {"queue"}),
    "federator_queue_oldest_pending_seconds": ("gauge", {"queue"}),
    "federator_decisions_total": ("counter", {"decision"}),
    "federator_placements_total": ("counter", {"cluster", "outcome"}),
    "federator_bursted_jobs": ("gauge", {"cluster", "state"}),
    "federator_cloud_spend_usd_total": ("counter", {"cluster"}),
    "federator_budget_remaining_usd": ("gauge", {"scope"}),
    "federator_preemptions_total": ("counter", {"cluster"}),
    "federator_sync_bytes_total": ("counter", {"direction"}),
    "federator_sync_lag_seconds": ("gauge", {"dataset", "cluster"}),
    "federator_cluster_up": ("gauge", {"cluster"}),
    "federator_is_leader": ("gauge", set()),
    "federator_reconcile_duration_seconds": ("histogram", set()),
    "federator_config_reload_failures_total": ("counter", set()),
}

HIGH_CARDINALITY_LABELS = {"job", "job_name", "name", "uid", "pod", "error", "message", "key"}


def exposed_samples() -> dict[str, tuple[str, set[str]]]:
    """Sample name -> (family type, label names), as a scrape would show them."""
    found: dict[str, tuple[str, set[str]]] = {}
    for family in metrics.REGISTRY.collect():
        for sample in family.samples:
            labels = set(sample.labels) - {"le"}
            found.setdefault(sample.name, (family.type, labels))
    return found


def describe_by_name() -> dict[str, Metric]:
    return {family.name: family for family in metrics.REGISTRY.collect()}


@pytest.fixture(autouse=True)
def every_series_touched() -> None:
    """Create one series of each labelled metric so a scrape shows its label names."""
    for family in (
        metrics.QUEUE_PENDING_WORKLOADS,
        metrics.QUEUE_PENDING_GPUS,
        metrics.QUEUE_OLDEST_PENDING_SECONDS,
        metrics.BUDGET_REMAINING_USD,
    ):
        family.labels("x")
    metrics.BURSTED_JOBS.labels(cluster="cloud-a", state="running")
    metrics.SYNC_LAG_SECONDS.labels(dataset="d", cluster="cloud-a")
    metrics.CLUSTER_UP.labels(cluster="onprem")
    metrics.initialise(cloud_clusters=["cloud-a"])


@pytest.mark.parametrize(("name", "kind_and_labels"), sorted(REQUIRED.items()))
def test_every_metric_of_issue_8_is_exposed_with_its_labels(
    name: str, kind_and_labels: tuple[str, set[str]]
) -> None:
    """Each metric exists under its exact name, with its type and exactly its labels."""
    kind, labels = kind_and_labels
    sample_name = f"{name}_count" if kind == "histogram" else name
    assert exposed_samples()[sample_name] == (kind, labels)


def test_no_metric_is_labelled_by_something_unbounded() -> None:
    """Never a job name, UID or message as a label: series counts must stay bounded."""
    for name, (_, labels) in exposed_samples().items():
        assert not labels & HIGH_CARDINALITY_LABELS, name


def test_every_metric_is_documented_and_prefixed() -> None:
    """Every series we declare starts with federator_ and has help text."""
    ours = [f for f in metrics.REGISTRY.collect() if not f.name.startswith(("process_", "python_"))]
    assert ours
    for family in ours:
        assert family.name.startswith("federator_")
        assert family.documentation.strip()


def test_initialise_creates_counters_at_zero_but_not_state_gauges() -> None:
    """Counters exist at 0 for every known label value; observed-state gauges stay absent."""
    registry = metrics.REGISTRY
    metrics.initialise(cloud_clusters=["cloud-zz"])
    for decision in metrics.DECISION_KINDS:
        assert (
            registry.get_sample_value("federator_decisions_total", {"decision": decision})
            is not None
        )
    for outcome in metrics.PLACEMENT_OUTCOMES:
        labels = {"cluster": "cloud-zz", "outcome": outcome}
        assert registry.get_sample_value("federator_placements_total", labels) is not None
    assert (
        registry.get_sample_value("federator_cloud_spend_usd_total", {"cluster": "cloud-zz"}) == 0
    )
    assert registry.get_sample_value("federator_cluster_up", {"cluster": "cloud-zz"}) is None


def test_counters_accumulate_on_the_dedicated_registry() -> None:
    """An increment shows on metrics.REGISTRY, not on a fresh registry."""
    before = metrics.REGISTRY.get_sample_value(
        "federator_sync_bytes_total", {"direction": "to_cloud"}
    )
    metrics.SYNC_BYTES.labels(direction="to_cloud").inc(1024)
    after = metrics.REGISTRY.get_sample_value(
        "federator_sync_bytes_total", {"direction": "to_cloud"}
    )
    assert after == (before or 0) + 1024
    assert (
        CollectorRegistry().get_sample_value(
            "federator_sync_bytes_total", {"direction": "to_cloud"}
        )
        is None
    )
