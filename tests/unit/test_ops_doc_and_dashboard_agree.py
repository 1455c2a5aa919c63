"""docs/operations.md and the Grafana dashboard against what the daemon really exports.

Found on the sandbox with two `federator run` replicas: a few counters move on EVERY replica
(each one reads the policy file and prices the pools itself), so a `sum` over the two replicas
counts each bad policy edit or refused price twice; and the doc's metrics table is what an
operator builds alerts from, so it must name every exported family with its exact labels.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import federator.prices.metrics  # noqa: F401  (declares the live-price counters on REGISTRY)
from federator import metrics

REPO = Path(__file__).resolve().parents[2]
OPERATIONS = REPO / "docs" / "operations.md"
DASHBOARD = REPO / "deploy" / "components" / "grafana-dashboard" / "federator-dashboard.json"

# Why these five: the policy watcher (daemon.reloading.watch_config), the budget watch of each
# pass (daemon.telling.watch_budgets; only the Event waits for the lead) and the price refresher
# (daemon.loops.refresh_prices) run on every replica, and every replica prices the pools at each of
# its passes (prices/offers.py), whether it leads or not. On the sandbox a day cap crossed by a
# reload counted 1 on the leader and 1 on the follower.
MOVES_ON_EVERY_REPLICA = (
    "federator_config_reload_failures_total",
    "federator_budget_warnings_total",
    "federator_price_inputs_rejected_total",
    "federator_price_refreshes_total",
    "federator_price_api_retries_total",
)

TABLE_ROW = re.compile(r"^\| `(federator_\w+)` \| (\w+) \| ([^|]*) \|", re.MULTILINE)


def dashboard_exprs() -> list[str]:
    def walk(panels: list[dict[str, object]]) -> list[str]:
        found: list[str] = []
        for panel in panels:
            found += walk(panel.get("panels", []))  # type: ignore[arg-type]
            found += [t["expr"] for t in panel.get("targets", [])]  # type: ignore[attr-defined]
        return found

    return walk(json.loads(DASHBOARD.read_text())["panels"])


def documented_rows() -> dict[str, tuple[str, set[str]]]:
    """metric -> (type, label names) as the doc's metrics table gives them."""
    rows: dict[str, tuple[str, set[str]]] = {}
    for name, kind, labels in TABLE_ROW.findall(OPERATIONS.read_text()):
        # A label is a backquoted name at the start of the cell or after ", " — not a value
        # after "=" (`decision` = `stay`, ...) nor a name inside parentheses.
        without_values = re.sub(r"=\s*[^,(]*(?:,\s*`[^`]*`(?!\s*=))*", "", labels)
        without_notes = re.sub(r"\([^)]*\)", "", without_values)
        rows[name] = (kind, set(re.findall(r"`(\w+)`", without_notes)))
    return rows


def exported_families() -> dict[str, tuple[str, set[str]]]:
    """metric (as scraped: counters with _total) -> (type, label names)."""
    found: dict[str, tuple[str, set[str]]] = {}
    # From the registered collectors, not from a scrape: a labelled family with no series yet
    # (a gauge not observed) shows no label names in a scrape but must still be documented.
    for collector in list(metrics.REGISTRY._collector_to_names):
        for family in collector.describe() if hasattr(collector, "describe") else ():
            if not family.name.startswith("federator_"):
                continue
            scraped = f"{family.name}_total" if family.type == "counter" else family.name
            labels = set(getattr(collector, "_labelnames", ()))
            found[scraped] = (family.type, labels)
    return found


@pytest.mark.parametrize("counter", MOVES_ON_EVERY_REPLICA)
def test_no_dashboard_query_sums_a_counter_every_replica_moves(counter: str) -> None:
    for expr in dashboard_exprs():
        if counter in expr:
            assert not re.match(r"\s*sum\b", expr), f"{expr}: use max over replicas, not sum"


def test_the_operations_doc_tells_which_counters_move_on_every_replica() -> None:
    text = " ".join(OPERATIONS.read_text().split())
    assert "Five counters move on every replica" in text


def test_every_exported_metric_is_in_the_doc_table_with_its_type_and_labels() -> None:
    assert documented_rows() == exported_families()
