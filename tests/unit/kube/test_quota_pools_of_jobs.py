"""Each on-prem job is seen waiting in its own quota pool (ClusterQueue or cohort).

Two teams, a ClusterQueue each: `vision` full, `nlp` with 8 GPUs free. Before, the snapshot
summed every ClusterQueue into one pool, so a vision job looked as if it started now on nlp's
idle quota, and was never priced for the cloud.
"""

from __future__ import annotations

import copy
from typing import Any

from federator.core.models import QuotaPool
from federator.kube.onprem import OnPremCluster
from tests.unit.kube import objects as o
from tests.unit.kube.test_cloud_edge import FakeApiserver
from tests.unit.kube.test_convert import admitted_to, named_queue


def local_queue(namespace: str, name: str, cluster_queue: str) -> dict[str, Any]:
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "LocalQueue",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": "7"},
        "spec": {"clusterQueue": cluster_queue},
    }


def cluster_with(*objects: dict[str, Any]) -> OnPremCluster:
    onprem = OnPremCluster(FakeApiserver("onprem"))
    for obj in objects:
        kind = obj["kind"]
        cache = {
            "Job": onprem.jobs,
            "Workload": onprem.workloads,
            "ClusterQueue": onprem.cluster_queues,
            "LocalQueue": onprem.local_queues,
        }[kind]
        cache.put(copy.deepcopy(obj))
    return onprem


async def test_pending_jobs_wait_in_the_pool_of_their_local_queues_cluster_queue() -> None:
    vision = o.job("v", uid="u-v", namespace="vision", labels={"kueue.x-k8s.io/queue-name": "q"})
    nlp = o.job("n", uid="u-n", namespace="nlp", labels={"kueue.x-k8s.io/queue-name": "q"})
    plain = o.job("p", uid="u-p", namespace="batch", labels={"federator.io/burst": "allow"})
    del plain["metadata"]["labels"]["kueue.x-k8s.io/queue-name"]
    onprem = cluster_with(
        named_queue("vision-cq", nominal=16, reserved=16),
        named_queue("nlp-cq", nominal=16, reserved=8),
        local_queue("vision", "q", "vision-cq"),
        local_queue("nlp", "q", "nlp-cq"),
        vision,
        nlp,
        plain,
        o.workload(vision),
        o.workload(nlp),
    )
    view = await onprem.snapshot(o.T0_S)
    assert view.state.quota_pools == (
        QuotaPool("clusterqueue/nlp-cq", 16, 8),
        QuotaPool("clusterqueue/vision-cq", 16, 0),
    )
    pools = {job.key: job.spec.quota_pool for job in view.jobs}
    assert pools == {
        "vision/v": "clusterqueue/vision-cq",
        "nlp/n": "clusterqueue/nlp-cq",
        "batch/p": "",  # outside Kueue: replayed against the whole cluster
    }


async def test_an_admitted_job_is_in_the_pool_it_was_admitted_in() -> None:
    """A placed job whose Workload Kueue admitted meanwhile: its admission names the queue."""
    job = o.job("v", uid="u-v", namespace="vision", labels={"kueue.x-k8s.io/queue-name": "gone"})
    workload = admitted_to(
        o.workload(job, conditions=[o.condition("QuotaReserved", at=o.T0)]), "vision-cq"
    )
    onprem = cluster_with(named_queue("vision-cq", 16, 4, cohort="research"), job, workload)
    view = await onprem.snapshot(o.T0_S)
    assert [r.quota_pool for r in view.state.running] == ["cohort/research"]
