"""deploy/'s PrometheusRule against docs/operations.md and what the daemon really exports.

The doc used to give its alerts as PromQL in prose, which an operator had to copy; now they ship
as deploy/components/prometheus-rules and the doc's table names them. An alert on a metric or
label federator does not export never fires, silently; an alert that adds a counter every
replica moves counts each event twice (the doc's five), so these are checked here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.test_ops_doc_and_dashboard_agree import (
    MOVES_ON_EVERY_REPLICA,
    OPERATIONS,
    exported_families,
)

REPO = Path(__file__).resolve().parents[2]
COMPONENT = REPO / "deploy" / "components" / "prometheus-rules"
RULE_FILE = COMPONENT / "prometheusrule.yaml"
EXAMPLE = REPO / "deploy" / "overlays" / "example"

ALERT_ROW = re.compile(r"^\| `(Federator\w+)` \|", re.MULTILINE)
METRIC = re.compile(r"\bfederator_\w+\b")
# Label names an expression relies on: grouping (`by (a, b)`, `without (a)`) and matchers.
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
MATCHER = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)\s*\"")
# A counter every replica moves may only be read through `max` (or `max by (...)`) over replicas.
MAX_OVER_REPLICAS = r"\bmax\s*(?:by\s*\([^)]*\)\s*)?\(\s*(?:increase|rate)\(\s*{counter}\b"

Rule = dict[str, Any]


def alert_rules(manifest: dict[str, Any]) -> dict[str, Rule]:
    return {
        rule["alert"]: rule
        for group in manifest["spec"]["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


@pytest.fixture(scope="module")
def shipped() -> dict[str, Rule]:
    return alert_rules(yaml.safe_load(RULE_FILE.read_text()))


def alerts_section() -> str:
    text = OPERATIONS.read_text()
    start = text.index("### Alerts\n")
    return text[start : text.index("\n## ", start)]


def labels_used(expr: str) -> set[str]:
    grouped = {name.strip() for names in GROUPING.findall(expr) for name in names.split(",")}
    return (grouped | set(MATCHER.findall(expr))) - {""}


def test_the_doc_table_and_the_rule_file_list_the_same_alerts(shipped: dict[str, Rule]) -> None:
    documented = ALERT_ROW.findall(alerts_section())
    assert len(documented) == len(set(documented)), "an alert is listed twice in the doc"
    assert set(documented) == set(shipped)


def test_the_doc_points_at_the_rule_file_instead_of_restating_promql() -> None:
    section = alerts_section()
    assert str(RULE_FILE.relative_to(REPO)) in section
    assert "```" not in section, "the expressions live in the rule file; the doc keeps a table"


def test_every_alert_uses_metrics_and_labels_federator_exports(shipped: dict[str, Rule]) -> None:
    exported = exported_families()
    for name, rule in shipped.items():
        expr = str(rule["expr"])
        used = set(METRIC.findall(expr))
        assert used, f"{name}: queries no federator metric"
        assert used <= exported.keys(), f"{name}: not exported: {sorted(used - exported.keys())}"
        for metric in used:
            missing = labels_used(expr) - exported[metric][1]
            assert not missing, f"{name}: {metric} has no label {sorted(missing)}"


def test_no_alert_adds_up_a_counter_every_replica_moves(shipped: dict[str, Rule]) -> None:
    for name, rule in shipped.items():
        expr = str(rule["expr"])
        for counter in MOVES_ON_EVERY_REPLICA:
            if counter in expr:
                assert re.search(MAX_OVER_REPLICAS.format(counter=counter), expr), (
                    f"{name}: {expr}: every replica counts {counter}; take max over replicas"
                )
                assert "every replica" in rule["annotations"]["description"], name


def test_every_counter_is_aggregated_so_an_alert_fires_once_not_once_per_pod(
    shipped: dict[str, Rule],
) -> None:
    counters = {m for m, (kind, _) in exported_families().items() if kind == "counter"}
    for name, rule in shipped.items():
        expr = str(rule["expr"])
        for counter in counters & set(METRIC.findall(expr)):
            aggregated = (
                rf"\b(?:sum|max)\s*(?:by\s*\([^)]*\)\s*)?\(\s*(?:increase|rate)\(\s*{counter}\b"
            )
            assert re.search(aggregated, expr), f"{name}: {expr}: aggregate {counter} over pods"


def test_every_alert_has_a_severity_and_says_what_to_do(shipped: dict[str, Rule]) -> None:
    for name, rule in shipped.items():
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), name
        assert rule["annotations"]["summary"], name
        assert rule["annotations"]["description"], name


def render(kustomization: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is needed to render deploy/ (kubectl kustomize); install it")
    result = subprocess.run(
        [kubectl, "kustomize", str(kustomization)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_the_component_renders_into_the_example_overlay(tmp_path: Path) -> None:
    """An overlay that adds the component, as the doc says, gets the rule in federator's
    namespace, unchanged, beside the ServiceMonitor."""
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                # kustomize refuses absolute paths; relative ones may leave the root
                "resources": [os.path.relpath(EXAMPLE, tmp_path)],
                "components": [os.path.relpath(COMPONENT, tmp_path)],
            }
        )
    )
    objects = render(tmp_path)
    (rule,) = [o for o in objects if o["kind"] == "PrometheusRule"]
    (monitor,) = [o for o in objects if o["kind"] == "ServiceMonitor"]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["namespace"] == monitor["metadata"]["namespace"] == "federator"
    assert alert_rules(rule) == alert_rules(yaml.safe_load(RULE_FILE.read_text()))
