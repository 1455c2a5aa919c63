"""Files that must load, and what they load into."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from federator.policy import load_policy, parse_policy
from federator.policy.clusters import CatalogPrice
from tests.unit.policy.helpers import BASE, edited

REPO = Path(__file__).resolve().parents[3]

VALID = {
    "the minimal file": BASE,
    "in-cluster connection": edited(
        (
            "    connection: {kubeconfig: kube.yaml, context: onprem}",
            "    connection: {in_cluster: true}",
        )
    ),
    "a catalog price": edited(
        (
            "        price: {source: fixed, usd_per_gpu_hour: 1.5}",
            "        price: {source: catalog, file: vms.csv, instance_type: p4d.24xlarge, "
            "region: us-east-1}",
        )
    ),
    "live spot prices": edited(
        (
            "        price: {source: fixed, usd_per_gpu_hour: 1.5}",
            "        price: {source: aws-spot-api, instance_type: p4d.24xlarge, region: us-east-1}",
        )
    ),
    "env credentials": edited(
        append="datasets: []\n",
    ).replace(
        "    connection: {kubeconfig: kube.yaml, context: onprem}\n",
        "    connection: {kubeconfig: kube.yaml, context: onprem}\n"
        "    object_store:\n"
        "      credentials: {env: {access_key_id: S3_KEY_ID, secret_access_key: S3_SECRET}}\n",
    ),
    "a tenant that never bursts": edited(
        append="tenants:\n  - name: t\n    namespaces: [a]\n    allowed_clusters: []\n"
    ),
    "YAML anchors and merge keys": edited(
        append="tenants:\n  - &t {name: a, namespaces: [a], budget_usd_per_month: 10}\n"
        "  - <<: *t\n    name: b\n    namespaces: [b]\n"
    ),
    "compound durations and decimal sizes": edited(
        append="burst: {min_wait: 1h30m, cooldown: 500ms}\nsync: {part_size: 2TB}\n"
    ),
}


@pytest.mark.parametrize("text", VALID.values(), ids=VALID.keys())
def test_valid_file_loads(text: str) -> None:
    parse_policy(text, "policy.yaml")


def test_merge_keys_copy_the_anchored_fields() -> None:
    config = parse_policy(VALID["YAML anchors and merge keys"])
    assert [(t.name, t.budget_usd_per_month) for t in config.tenants] == [("a", 10), ("b", 10)]


def test_durations_and_sizes_load_as_explicit_values() -> None:
    config = parse_policy(edited(append="burst: {min_wait: 1h30m}\nsync: {part_size: 2TB}\n"))
    assert config.burst.min_wait == timedelta(hours=1, minutes=30)
    assert config.sync.part_size == 2 * 1000**4
    assert config.sync.multipart_threshold == 64 * 1024**2  # the default


def test_relative_paths_are_resolved_against_the_files_directory(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    policy = tmp_path / "conf" / "policy.yaml"
    policy.write_text(
        edited(
            (
                "        price: {source: fixed, usd_per_gpu_hour: 1.5}",
                "        price: {source: catalog, file: ../data/vms.csv, "
                "instance_type: p4d.24xlarge, region: us-east-1}",
            )
        )
    )
    config = load_policy(policy)
    price = config.cloud_clusters[0].pools[0].price
    assert isinstance(price, CatalogPrice)
    assert price.file == tmp_path / "data" / "vms.csv"
    assert config.onprem_cluster.connection.kubeconfig == tmp_path / "conf" / "kube.yaml"


def test_parse_policy_without_a_base_directory_keeps_paths_relative() -> None:
    config = parse_policy(BASE)
    assert config.onprem_cluster.connection.kubeconfig == Path("kube.yaml")


def test_a_pool_without_a_node_selector_selects_by_the_pool_label() -> None:
    pool = parse_policy(BASE).cloud_clusters[0].pools[0]
    assert pool.selector == {"federator.io/pool": "a100-spot"}


@pytest.mark.parametrize("name", ["sandbox.yaml", "federator.example.yaml"])
def test_committed_config_files_are_valid(name: str) -> None:
    load_policy(REPO / "config" / name)


def test_sandbox_config_matches_the_sandbox_contract() -> None:
    config = load_policy(REPO / "config" / "sandbox.yaml")
    root = REPO
    assert config.onprem_cluster.connection.kubeconfig == root / ".sandbox" / "kubeconfig"
    pools = {c.name: {p.name: p.capacity_type for p in c.pools} for c in config.cloud_clusters}
    assert pools == {
        "cloud-a": {"a100-spot": "spot", "a100-ondemand": "on-demand"},
        "cloud-b": {"h100-spot": "spot", "h100-ondemand": "on-demand"},
    }
    endpoints = {c.name: c.object_store.endpoint for c in config.clusters if c.object_store}
    assert endpoints == {
        "onprem": "http://127.0.0.1:18310",
        "cloud-a": "http://127.0.0.1:18320",
        "cloud-b": "http://127.0.0.1:18330",
    }
    for cluster in config.clusters:
        assert cluster.connection.context == cluster.name
        store = cluster.object_store
        assert store is not None
        assert store.credentials.file == root / ".sandbox" / "credentials" / f"{cluster.name}.json"
    for tenant in config.tenants:
        assert set(tenant.allowed_clusters or ()) == {"cloud-a", "cloud-b"}
    for cluster in config.cloud_clusters:
        for pool in cluster.pools:
            assert isinstance(pool.price, CatalogPrice)
            assert pool.price.file.is_file(), pool.price.file
