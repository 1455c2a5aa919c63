"""The fake GPU nodes of each site, labelled the way cloud GPU node pools are.

onprem has two 8 x A100 nodes behind Kueue. cloud-a and cloud-b each have a spot pool of
four 8-GPU nodes and an on-demand pool of two, with a different GPU type, instance type and
zones per cloud, so that placement code must read the labels rather than assume a shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from federator.sandbox.kwok import NODE_ANNOTATION

POOL_LABEL = "federator.io/pool"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
CAPACITY_TYPE_LABEL = "node.kubernetes.io/capacity-type"
ZONE_LABEL = "topology.kubernetes.io/zone"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
GPU_RESOURCE = "nvidia.com/gpu"


@dataclass(frozen=True, slots=True)
class Pool:
    """A group of identical fake nodes."""

    name: str
    nodes: int
    gpus_per_node: int
    gpu_product: str
    capacity_type: str  # "spot" | "on-demand"
    instance_type: str
    zones: tuple[str, ...]
    cpu: int = 96
    memory_gi: int = 1024


POOLS: dict[str, tuple[Pool, ...]] = {
    "onprem": (Pool("onprem-a100", 2, 8, "A100", "on-demand", "dgx-a100", ("dc1-row1",)),),
    "cloud-a": (
        Pool("a100-spot", 4, 8, "A100", "spot", "p4d.24xlarge", ("us-east-1a", "us-east-1b")),
        Pool("a100-ondemand", 2, 8, "A100", "on-demand", "p4d.24xlarge", ("us-east-1a",)),
    ),
    "cloud-b": (
        Pool(
            "h100-spot", 4, 8, "H100", "spot", "a3-highgpu-8g", ("us-central1-a", "us-central1-b")
        ),
        Pool("h100-ondemand", 2, 8, "H100", "on-demand", "a3-highgpu-8g", ("us-central1-a",)),
    ),
}


def node_name(site: str, pool: Pool, index: int) -> str:
    return f"{site}-{pool.name}-{index}" if site == "onprem" else f"{pool.name}-{index}"


def nodes_for(site: str) -> list[dict[str, Any]]:
    """The Node objects of `site`, ready to create (KWOK keeps the capacity we set)."""
    return [
        _node(node_name(site, pool, i), pool, pool.zones[i % len(pool.zones)])
        for pool in POOLS[site]
        for i in range(pool.nodes)
    ]


def _node(name: str, pool: Pool, zone: str) -> dict[str, Any]:
    capacity = {
        "cpu": str(pool.cpu),
        "memory": f"{pool.memory_gi}Gi",
        "pods": "110",
        GPU_RESOURCE: str(pool.gpus_per_node),
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                POOL_LABEL: pool.name,
                GPU_PRODUCT_LABEL: pool.gpu_product,
                CAPACITY_TYPE_LABEL: pool.capacity_type,
                ZONE_LABEL: zone,
                INSTANCE_TYPE_LABEL: pool.instance_type,
            },
        },
        "spec": {},
        "status": {"capacity": capacity, "allocatable": capacity},
    }
