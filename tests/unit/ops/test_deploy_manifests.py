"""The rendered deploy/ manifests keep the promises docs/operations.md makes about them.

These render the real kustomizations with `kubectl kustomize` (kubectl is part of the
machine's toolset; a missing kubectl fails loudly). The sandbox tests in
tests/integration/test_deploy_sandbox.py then let a real apiserver validate and enforce them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from federator import metrics
from federator.policy import load_policy
from federator.policy.operations import Server

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
DASHBOARD = DEPLOY / "components" / "grafana-dashboard" / "federator-dashboard.json"

Obj = dict[str, Any]


def render(directory: Path) -> list[Obj]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is needed to render deploy/ (kubectl kustomize); install it")
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def one(objects: list[Obj], kind: str, name: str | None = None) -> Obj:
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def example() -> list[Obj]:
    return render(DEPLOY / "overlays" / "example")


@pytest.fixture(scope="module")
def cloud() -> list[Obj]:
    return render(DEPLOY / "cloud")


def container(objects: list[Obj]) -> Obj:
    (only,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(only)


def test_two_replicas_that_never_run_three(example: list[Obj]) -> None:
    """Two replicas for availability; no surge, because a third would only contend the Lease."""
    spec = one(example, "Deployment")["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"]["maxSurge"] == 0
    assert one(example, "PodDisruptionBudget")["spec"]["minAvailable"] == 1


def test_the_container_runs_unprivileged_on_a_read_only_root(example: list[Obj]) -> None:
    """Non-root, read-only root filesystem, no capabilities, RuntimeDefault seccomp."""
    pod = one(example, "Deployment")["spec"]["template"]["spec"]
    security = container(example)["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}


def test_probes_use_the_health_endpoints_on_the_served_port(example: list[Obj]) -> None:
    """Liveness on /healthz, readiness on /readyz, on the port federator listens on by default."""
    main = container(example)
    assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
    (port,) = main["ports"]
    assert port["containerPort"] == Server().port
    assert main["livenessProbe"]["httpGet"]["port"] == port["name"]


def test_prometheus_scrapes_the_port_the_service_exposes(example: list[Obj]) -> None:
    """ServiceMonitor → Service port name → container port name line up."""
    service_port = one(example, "Service")["spec"]["ports"][0]
    endpoint = one(example, "ServiceMonitor")["spec"]["endpoints"][0]
    assert endpoint["port"] == service_port["name"] == container(example)["ports"][0]["name"]
    assert endpoint["path"] == "/metrics"
    selector = one(example, "ServiceMonitor")["spec"]["selector"]["matchLabels"]
    assert selector.items() <= one(example, "Service")["metadata"]["labels"].items()


def test_the_policy_comes_from_a_generated_configmap(example: list[Obj]) -> None:
    """The Deployment mounts the ConfigMap generated from the overlay's config/ directory."""
    config_maps = [o for o in example if o["kind"] == "ConfigMap" and "federator.yaml" in o["data"]]
    (config_map,) = config_maps
    volumes = one(example, "Deployment")["spec"]["template"]["spec"]["volumes"]
    policy = next(v for v in volumes if v["name"] == "policy")
    assert policy["configMap"]["name"] == config_map["metadata"]["name"]
    assert "--config" in container(example)["args"]
    assert "/etc/federator/policy/federator.yaml" in container(example)["args"]


def test_secret_templates_are_not_applied_with_the_overlay(example: list[Obj]) -> None:
    """`apply -k` never overwrites real credentials with the templates' placeholders."""
    assert not [o for o in example if o["kind"] == "Secret"]
    for template in (DEPLOY / "overlays" / "example" / "secrets").glob("*.yaml"):
        assert "REPLACE" in template.read_text()


def rules(objects: list[Obj]) -> Iterator[tuple[str, Obj]]:
    for obj in objects:
        if obj["kind"] in ("ClusterRole", "Role"):
            for rule in obj["rules"]:
                yield obj["metadata"]["name"], rule


@pytest.mark.parametrize("bundle", ["example", "cloud"])
def test_rbac_has_no_wildcards_and_no_escalation_verbs(
    bundle: str, request: pytest.FixtureRequest
) -> None:
    """Least privilege: named groups/resources/verbs only; never bind, escalate, impersonate."""
    for role, rule in rules(request.getfixturevalue(bundle)):
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], (role, rule)
        assert not {"bind", "escalate", "impersonate"} & set(rule["verbs"]), (role, rule)


def grants(objects: list[Obj], resource: str, verb: str) -> list[Mapping[str, Any]]:
    return [r for _, r in rules(objects) if resource in r["resources"] and verb in r["verbs"]]


def test_onprem_identity_never_creates_or_deletes_jobs(example: list[Obj]) -> None:
    """On-prem, federator only observes and annotates jobs; it never creates or deletes one."""
    assert not grants(example, "jobs", "create")
    assert not grants(example, "jobs", "delete")


def test_onprem_identity_cannot_read_nodes(example: list[Obj]) -> None:
    """No on-prem code reads Nodes (its reflectors: jobs, workloads, cluster and local
    queues), so the on-prem identity gets no access to them; cloud identities read them."""
    assert not [r for _, r in rules(example) if "nodes" in r["resources"]]


def test_secrets_are_readable_only_by_name_and_only_in_its_own_namespace(
    example: list[Obj],
) -> None:
    """No cluster-wide secret access unless the opt-in component is included."""
    for role, rule in rules(example):
        if "secrets" in rule["resources"]:
            assert role == "federator"  # the namespaced Role
            assert rule["verbs"] == ["get"]
            assert rule["resourceNames"]
    opt_in = render(DEPLOY / "components" / "onprem-copy-secrets")
    assert grants(opt_in, "secrets", "get")


def test_cloud_identity_manages_copies_but_not_secrets_or_namespaces_deletion(
    cloud: list[Obj],
) -> None:
    """On a cloud cluster: create/delete Jobs, create namespaces, read nodes/pods — no more."""
    assert grants(cloud, "jobs", "create")
    assert grants(cloud, "jobs", "delete")
    assert grants(cloud, "namespaces", "create")
    assert not grants(cloud, "namespaces", "delete")
    assert not [r for _, r in rules(cloud) if "secrets" in r["resources"]]
    assert not grants(cloud, "pods", "create")
    token = one(cloud, "Secret")
    assert token["type"] == "kubernetes.io/service-account-token"


def declared_metric_names() -> set[str]:
    names: set[str] = set()
    for family in metrics.REGISTRY.collect():
        names.update(_sample_names(family.name, family.type))
    return names


def _sample_names(name: str, kind: str) -> set[str]:
    if kind == "counter":
        return {f"{name}_total"}
    if kind == "histogram":
        return {name, f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    return {name}


def test_every_dashboard_query_uses_a_declared_metric() -> None:
    """A renamed metric would silently blank a panel; this catches it."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {m for expr in exprs for m in re.findall(r"\bfederator_[a-z_]+\b", expr)}
    declared = declared_metric_names()
    assert used, "the dashboard queries no federator metric"
    assert used <= declared, sorted(used - declared)


def test_the_dashboard_covers_queue_bursts_spend_sync_and_health() -> None:
    """The five things issue 8 asks the dashboard to show are all there."""
    text = DASHBOARD.read_text()
    for metric in (
        "federator_queue_pending_workloads",
        "federator_bursted_jobs",
        "federator_cloud_spend_usd_total",
        "federator_sync_lag_seconds",
        "federator_sync_failures_total",  # a replica that keeps failing holds its jobs
        "federator_cluster_up",
    ):
        assert metric in text


def test_the_image_runs_as_a_numeric_non_root_user() -> None:
    """The Dockerfile's final stage drops root with a numeric UID that runAsNonRoot can check."""
    stages = (DEPLOY / "Dockerfile").read_text().split("\nFROM ")
    final = stages[-1]
    (user,) = re.findall(r"^USER (\S+)$", final, flags=re.MULTILINE)
    uid = user.split(":")[0]
    assert uid.isdigit()
    assert int(uid) != 0
    assert len(stages) >= 3  # preamble + build + runtime: a multi-stage build
    assert "pip install" not in final  # nothing is built in the runtime stage


def test_the_example_policy_is_valid_and_matches_the_manifests(example: list[Obj]) -> None:
    """The overlay's policy file loads, and its namespace, Lease and port match deploy/."""
    config = load_policy(DEPLOY / "overlays" / "example" / "config" / "federator.yaml")
    role = one(example, "Role")
    lease_names = {
        n for r in role["rules"] if "leases" in r["resources"] for n in r.get("resourceNames", [])
    }
    assert config.state_namespace == role["metadata"]["namespace"]
    assert lease_names == {config.leader_election.lease_name}
    assert container(example)["ports"][0]["containerPort"] == config.server.port
