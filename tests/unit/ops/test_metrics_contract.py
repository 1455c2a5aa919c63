"""The metric names and label sets are the contract dashboards and alerts rely on (issue 8)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Metric

from federator import metrics
from federator.core.models import GANG_SIZES

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
    """Counters exist at 0 for every known label value; observed-state gauges stay absent.

    The registry is the process's, where other tests count decisions and bytes: the series
    with fixed label values are removed first, so `initialise` has to create them, and at 0
    (checking only that they exist let a counter created at 5 pass)."""
    registry = metrics.REGISTRY
    fixed = {
        "federator_decisions_total": (metrics.DECISIONS, "decision", metrics.DECISION_KINDS),
        "federator_sync_bytes_total": (metrics.SYNC_BYTES, "direction", metrics.SYNC_DIRECTIONS),
        "federator_price_inputs_rejected_total": (
            metrics.PRICE_INPUTS_REJECTED,
            "reason",
            metrics.PRICE_REJECTION_REASONS,
        ),
    }
    sizes = [size for size, _, _ in GANG_SIZES]
    for name, family in (
        ("federator_onprem_wait_forecasts_total", metrics.ONPREM_WAIT_FORECASTS),
        ("federator_onprem_wait_forecast_seconds_total", metrics.ONPREM_WAIT_FORECAST_SECONDS),
        ("federator_onprem_wait_real_seconds_total", metrics.ONPREM_WAIT_REAL_SECONDS),
    ):
        fixed[name] = (family, "gpus", sizes)
    for family, _, _ in fixed.values():
        family.clear()
    metrics.initialise(cloud_clusters=["cloud-zz"], budget_scopes=["tenant:contract-zz"])
    for name, (_, label, values) in fixed.items():
        for value in values:
            assert registry.get_sample_value(name, {label: value}) == 0, (name, value)
    for outcome in metrics.PLACEMENT_OUTCOMES:
        labels = {"cluster": "cloud-zz", "outcome": outcome}
        assert registry.get_sample_value("federator_placements_total", labels) == 0, outcome
    for name in ("federator_cloud_spend_usd_total", "federator_preemptions_total"):
        assert registry.get_sample_value(name, {"cluster": "cloud-zz"}) == 0, name
    scope = {"scope": "tenant:contract-zz"}
    assert registry.get_sample_value("federator_budget_warnings_total", scope) == 0
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
