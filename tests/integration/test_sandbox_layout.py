"""The sandbox's fixed plan, checked without starting anything: ports, pools, KWOK stages."""

from __future__ import annotations

from collections import Counter

import pytest

from federator.sandbox import kwok, pools
from federator.sandbox.kueue import queue_objects
from federator.sandbox.layout import GRPC_OFFSET, PORTS, all_ports


def test_no_two_sandbox_listeners_share_a_port() -> None:
    ports = list(all_ports().values())
    # SeaweedFS opens a gRPC twin at +10000 of each of its HTTP ports.
    for site_ports in PORTS.values():
        ports += [p + GRPC_OFFSET for p in (site_ports.s3, *site_ports.s3_internal.values())]
    clashes = [port for port, count in Counter(ports).items() if count > 1]
    assert clashes == []


def test_contract_ports() -> None:
    assert [PORTS[s].apiserver for s in ("onprem", "cloud-a", "cloud-b")] == [16443, 16444, 16445]
    assert [PORTS[s].s3 for s in ("onprem", "cloud-a", "cloud-b")] == [18310, 18320, 18330]


def test_onprem_queue_quota_matches_its_nodes() -> None:
    nodes = pools.nodes_for("onprem")
    gpus = sum(int(n["status"]["allocatable"]["nvidia.com/gpu"]) for n in nodes)
    (queue,) = [o for o in queue_objects() if o["kind"] == "ClusterQueue"]
    resources = queue["spec"]["resourceGroups"][0]["flavors"][0]["resources"]
    assert {"name": "nvidia.com/gpu", "nominalQuota": "16"} in resources
    assert gpus == 16


def test_every_node_carries_the_pool_labels_of_the_contract() -> None:
    for site in ("cloud-a", "cloud-b"):
        for node in pools.nodes_for(site):
            labels = node["metadata"]["labels"]
            assert labels[pools.CAPACITY_TYPE_LABEL] in ("spot", "on-demand")
            for key in (
                pools.POOL_LABEL,
                pools.GPU_PRODUCT_LABEL,
                pools.ZONE_LABEL,
                pools.INSTANCE_TYPE_LABEL,
            ):
                assert labels[key]


@pytest.mark.sandbox  # reads KWOK's Stage files, which the sandbox build provides
def test_failing_pods_are_excluded_from_the_completing_stage() -> None:
    stages = {s["metadata"]["name"]: s for s in kwok.stages()}
    complete = stages["pod-complete"]["spec"]
    failing = stages["federator-pod-fail"]["spec"]
    key = '.metadata.annotations["federator.io/kwok-fail"]'
    assert {"key": key, "operator": "NotIn", "values": ["true"]} in complete["selector"][
        "matchExpressions"
    ]
    assert {"key": key, "operator": "In", "values": ["true"]} in failing["selector"][
        "matchExpressions"
    ]
    assert "phase: Failed" in failing["next"]["statusTemplate"]
    assert "phase: Succeeded" in complete["next"]["statusTemplate"]
