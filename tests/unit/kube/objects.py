"""Kubernetes objects shaped as the apiserver returns them (batch/v1, core/v1, Kueue v1beta2).

Builders with keyword overrides, so each test states only what matters to it. The shapes follow
what a v1.36 apiserver with Kueue v0.19 sends: RFC 3339 timestamps, quantities as strings,
Kueue conditions as metav1.Condition.
"""

from __future__ import annotations

from typing import Any

T0 = "2026-11-29T08:00:00Z"
T0_S = 1795939200.0  # T0 in epoch seconds


def job(
    name: str = "train",
    *,
    namespace: str = "team-a",
    uid: str = "6f1c2d3e-0000-4000-8000-000000000001",
    gpus_per_pod: int = 4,
    parallelism: int = 1,
    suspend: bool = True,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    status: dict[str, Any] | None = None,
    resource_version: str = "1001",
    pod_spec_extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {
        "containers": [
            {
                "name": "main",
                "image": "registry.onprem/ml/train:1.0",
                "args": ["--data", "s3://onprem-datasets/imagenet/"],
                "env": [{"name": "DATA", "value": "s3://onprem-datasets/imagenet/"}],
                "resources": {
                    "limits": {"nvidia.com/gpu": str(gpus_per_pod), "cpu": "4"},
                    "requests": {"nvidia.com/gpu": str(gpus_per_pod), "cpu": "4"},
                },
            }
        ],
        "restartPolicy": "Never",
        **(pod_spec_extra or {}),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "resourceVersion": resource_version,
            "creationTimestamp": T0,
            "labels": {"kueue.x-k8s.io/queue-name": "team-a", **(labels or {})},
            "annotations": dict(annotations or {}),
        },
        "spec": {
            "parallelism": parallelism,
            "completions": parallelism,
            "backoffLimit": 6,
            "suspend": suspend,
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}},
            "template": {
                "metadata": {
                    "labels": {
                        "batch.kubernetes.io/controller-uid": uid,
                        "batch.kubernetes.io/job-name": name,
                        "app": "train",
                    },
                    "annotations": {"pod-complete.stage.kwok.x-k8s.io/delay": "20s"},
                },
                "spec": pod_spec,
            },
        },
        "status": status if status is not None else {},
    }


def workload(
    job_obj: dict[str, Any],
    *,
    conditions: list[dict[str, Any]] | None = None,
    active: bool | None = None,
    priority: int = 0,
    created: str = T0,
) -> dict[str, Any]:
    meta = job_obj["metadata"]
    spec: dict[str, Any] = {
        "queueName": "team-a",
        "priority": priority,
        "podSets": [
            {
                "name": "main",
                "count": job_obj["spec"]["parallelism"],
                "template": job_obj["spec"]["template"],
            }
        ],
    }
    if active is not None:
        spec["active"] = active
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "Workload",
        "metadata": {
            "name": f"job-{meta['name']}-1a2b3",
            "namespace": meta["namespace"],
            "uid": "aaaa0000-0000-4000-8000-000000000001",
            "resourceVersion": "2002",
            "creationTimestamp": created,
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
        "status": {"conditions": conditions or []},
    }


def condition(kind: str, status: str = "True", at: str = T0, reason: str = "R") -> dict[str, Any]:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": "",
        "lastTransitionTime": at,
        "observedGeneration": 1,
    }


def cluster_queue(*, nominal: int = 16, reserved: int = 0) -> dict[str, Any]:
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "ClusterQueue",
        "metadata": {"name": "onprem", "resourceVersion": "50"},
        "spec": {
            "namespaceSelector": {},
            "resourceGroups": [
                {
                    "coveredResources": ["cpu", "memory", "nvidia.com/gpu"],
                    "flavors": [
                        {
                            "name": "gpu",
                            "resources": [
                                {"name": "cpu", "nominalQuota": "256"},
                                {"name": "memory", "nominalQuota": "1Ti"},
                                {"name": "nvidia.com/gpu", "nominalQuota": str(nominal)},
                            ],
                        }
                    ],
                }
            ],
        },
        "status": {
            "flavorsReservation": [
                {
                    "name": "gpu",
                    "resources": [
                        {"name": "cpu", "total": "8", "borrowed": "0"},
                        {"name": "nvidia.com/gpu", "total": str(reserved), "borrowed": "0"},
                    ],
                }
            ],
            "pendingWorkloads": 1,
            "reservingWorkloads": 1,
            "admittedWorkloads": 1,
        },
    }


def node(name: str, *, pool: str, gpus: int = 8, capacity_type: str = "spot") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "federator.io/pool": pool,
                "nvidia.com/gpu.product": "A100",
                "node.kubernetes.io/capacity-type": capacity_type,
                "type": "kwok",
            },
        },
        "status": {
            "allocatable": {
                "cpu": "96",
                "memory": "1Ti",
                "nvidia.com/gpu": str(gpus),
                "pods": "110",
            },
            "capacity": {"cpu": "96", "memory": "1Ti", "nvidia.com/gpu": str(gpus), "pods": "110"},
        },
    }


def pod(
    name: str,
    *,
    job_name: str,
    namespace: str = "team-a",
    node_name: str | None,
    gpus: int = 4,
    phase: str = "Running",
    labels: dict[str, str] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    pool: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [{"name": "main", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}]
    }
    if node_name:
        spec["nodeName"] = node_name
    if pool:
        spec["nodeSelector"] = {"federator.io/pool": pool}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"batch.kubernetes.io/job-name": job_name, **(labels or {})},
        },
        "spec": spec,
        "status": {"phase": phase, "conditions": conditions or []},
    }
