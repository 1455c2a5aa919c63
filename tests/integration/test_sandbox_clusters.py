"""Smoke tests of the sandbox's clusters: versions, fake GPU pools, Kueue admission, KWOK runs.

They talk to the clusters the way federator does, through kubernetes-asyncio and the
contexts of `.sandbox/kubeconfig`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.api_client import ApiClient

from federator import sandbox as sandbox_api
from federator.sandbox import SandboxEnv
from federator.sandbox.kwok import FAIL_ANNOTATION, completion_annotations
from federator.sandbox.layout import K8S_VERSION

pytestmark = pytest.mark.sandbox

SITES = ("onprem", "cloud-a", "cloud-b")
EXPECTED_POOLS = {
    "cloud-a": {"a100-spot": (4, "A100", "spot"), "a100-ondemand": (2, "A100", "on-demand")},
    "cloud-b": {"h100-spot": (4, "H100", "spot"), "h100-ondemand": (2, "H100", "on-demand")},
}


async def api_client(sandbox: SandboxEnv, context: str) -> ApiClient:
    return await config.new_client_from_config(
        config_file=str(sandbox.kubeconfig), context=context, persist_config=False
    )


@pytest.fixture
async def clients(sandbox: SandboxEnv) -> AsyncIterator[dict[str, ApiClient]]:
    made = {site: await api_client(sandbox, site) for site in SITES}
    yield made
    for api in made.values():
        await api.close()


def gpu_job(name: str, gpus: int, seconds: float, **pod_spec: Any) -> dict[str, Any]:
    """A one-pod Job asking for GPUs that KWOK completes after `seconds`."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {}},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": completion_annotations(seconds)},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "train",
                            "image": "example.invalid/train:1",
                            "resources": {
                                "requests": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": gpus},
                                "limits": {"nvidia.com/gpu": gpus},
                            },
                        }
                    ],
                    **pod_spec,
                },
            },
        },
    }


async def wait_for_job(
    api: ApiClient, namespace: str, name: str, condition: str, timeout_s: float = 90.0
) -> dict[str, Any]:
    batch = client.BatchV1Api(api)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = await batch.read_namespaced_job(name, namespace)
        for cond in job.status.conditions or []:
            if cond.type == condition and cond.status == "True":
                return api.sanitize_for_serialization(job)  # type: ignore[no-any-return]
        await asyncio.sleep(0.5)
    raise AssertionError(
        f"job {namespace}/{name} not {condition} after {timeout_s} s: {job.status}"
    )


@pytest.mark.parametrize("site", SITES)
async def test_apiserver_reports_pinned_version(clients: dict[str, ApiClient], site: str) -> None:
    version = await client.VersionApi(clients[site]).get_code()
    assert version.git_version == K8S_VERSION


@pytest.mark.parametrize("site", ["cloud-a", "cloud-b"])
async def test_cloud_pools_look_like_cloud_node_pools(
    clients: dict[str, ApiClient], site: str
) -> None:
    nodes = (await client.CoreV1Api(clients[site]).list_node()).items
    by_pool: dict[str, list[Any]] = {}
    for node in nodes:
        by_pool.setdefault(node.metadata.labels["federator.io/pool"], []).append(node)
    assert set(by_pool) == set(EXPECTED_POOLS[site])
    for pool, (count, product, capacity_type) in EXPECTED_POOLS[site].items():
        assert len(by_pool[pool]) == count
        for node in by_pool[pool]:
            labels = node.metadata.labels
            assert labels["nvidia.com/gpu.product"] == product
            assert labels["node.kubernetes.io/capacity-type"] == capacity_type
            assert labels["topology.kubernetes.io/zone"]
            assert labels["node.kubernetes.io/instance-type"]
            assert node.status.allocatable["nvidia.com/gpu"] == "8"
            ready = [c for c in node.status.conditions if c.type == "Ready"]
            assert [c.status for c in ready] == ["True"]


async def test_onprem_has_kueue_queues_sized_to_its_nodes(clients: dict[str, ApiClient]) -> None:
    custom = client.CustomObjectsApi(clients["onprem"])
    queue = await custom.get_cluster_custom_object(
        "kueue.x-k8s.io", "v1beta2", "clusterqueues", "onprem"
    )
    quotas = {
        r["name"]: r["nominalQuota"]
        for r in queue["spec"]["resourceGroups"][0]["flavors"][0]["resources"]
    }
    assert quotas["nvidia.com/gpu"] in (16, "16")
    for team in ("team-a", "team-b"):
        local = await custom.get_namespaced_custom_object(
            "kueue.x-k8s.io", "v1beta2", team, "localqueues", team
        )
        assert local["spec"]["clusterQueue"] == "onprem"
    nodes = (await client.CoreV1Api(clients["onprem"]).list_node()).items
    assert len(nodes) == 2
    assert all(n.status.allocatable["nvidia.com/gpu"] == "8" for n in nodes)


async def test_kueue_admits_a_queued_job_and_kwok_completes_it(
    clients: dict[str, ApiClient], namespace_factory: Callable[..., str]
) -> None:
    namespace = namespace_factory("onprem", prefix="kq", local_queue="team-a")
    job = gpu_job("queued", gpus=2, seconds=2)
    job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] = "team-a"
    api = clients["onprem"]
    created = await client.BatchV1Api(api).create_namespaced_job(namespace, job)
    # Kueue's mutating webhook suspends every queued Job until it admits it.
    assert created.spec.suspend is True

    # Generous: on a shared sandbox other tests' jobs may hold the 16 GPUs for a while.
    done = await wait_for_job(api, namespace, "queued", "Complete", timeout_s=240)
    assert done["status"]["succeeded"] == 1
    workloads = await client.CustomObjectsApi(api).list_namespaced_custom_object(
        "kueue.x-k8s.io", "v1beta2", namespace, "workloads"
    )
    (workload,) = workloads["items"]
    conditions = {c["type"]: c["status"] for c in workload["status"]["conditions"]}
    assert conditions.get("Admitted") == "True"
    assert workload["status"]["admission"]["clusterQueue"] == "onprem"


async def test_cloud_a_job_lands_on_a_pool_node_and_completes(
    clients: dict[str, ApiClient], namespace_factory: Callable[..., str]
) -> None:
    namespace = namespace_factory("cloud-a", prefix="burst")
    api = clients["cloud-a"]
    job = gpu_job("burst", gpus=8, seconds=1, nodeSelector={"federator.io/pool": "a100-spot"})
    await client.BatchV1Api(api).create_namespaced_job(namespace, job)
    await wait_for_job(api, namespace, "burst", "Complete")
    pods = (await client.CoreV1Api(api).list_namespaced_pod(namespace)).items
    assert len(pods) == 1
    node = await client.CoreV1Api(api).read_node(pods[0].spec.node_name)
    assert node.metadata.labels["federator.io/pool"] == "a100-spot"
    assert pods[0].status.phase == "Succeeded"


async def test_kwok_fails_pods_annotated_to_fail(
    clients: dict[str, ApiClient], namespace_factory: Callable[..., str]
) -> None:
    namespace = namespace_factory("cloud-b", prefix="fail")
    api = clients["cloud-b"]
    job = gpu_job("doomed", gpus=1, seconds=1)
    job["spec"]["template"]["metadata"]["annotations"][FAIL_ANNOTATION] = "true"
    await client.BatchV1Api(api).create_namespaced_job(namespace, job)
    failed = await wait_for_job(api, namespace, "doomed", "Failed")
    assert failed["status"].get("succeeded", 0) == 0


def test_a_stopped_apiserver_comes_back_with_its_data(sandbox: SandboxEnv) -> None:
    async def node_count() -> int:
        api = await api_client(sandbox, "cloud-b")
        try:
            return len((await client.CoreV1Api(api).list_node(_request_timeout=5)).items)
        finally:
            await api.close()

    before = asyncio.run(node_count())
    assert sandbox_api.stop_component("cloud-b", "apiserver")
    try:
        with pytest.raises(Exception, match=r"(?i)connect"):
            asyncio.run(node_count())
    finally:
        sandbox_api.start_component("cloud-b", "apiserver")
    assert asyncio.run(node_count()) == before == 6
