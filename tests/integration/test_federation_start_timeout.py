"""Capacity that never comes, on the real sandbox: a pool whose nodes refuse the copy's pods.

Every node of cloud-a's a100-spot pool (the cheapest) gets a NoSchedule taint the copy does not
tolerate, so its pod stays Pending. With a 20 s `start_timeout` the copy must be deleted, the
pool blocked, and the job (a plain suspended Job, so only federator can run it) placed on
another pool, where it completes; the on-prem Job carries a `CloudStartTimeout` Event and its
record counts no preemption.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest

from federator.federation import FederationSettings
from federator.sandbox import SandboxEnv
from federator.sandbox.kubeapi import KubeApi, KubeError
from tests import federation_harness as harness
from tests import invariants

PLAIN = {"federator.io/burst": "allow"}
REFUSING = ("cloud-a", "a100-spot")  # the cheapest pool: the first decision picks it
TAINT = {"key": "federator.io/test-no-capacity", "value": "true", "effect": "NoSchedule"}

pytestmark = [pytest.mark.sandbox, pytest.mark.slow, pytest.mark.timeout(300)]


async def pool_nodes(api: KubeApi, pool: str) -> list[str]:
    nodes = await api.list("Node", labelSelector=f"federator.io/pool={pool}")
    return [node["metadata"]["name"] for node in nodes]


async def set_taints(api: KubeApi, nodes: list[str], taints: list[dict[str, str]] | None) -> None:
    for name in nodes:
        await api.request(
            "PATCH",
            f"/api/v1/nodes/{name}",
            body={"spec": {"taints": taints}},
            content_type="application/merge-patch+json",
        )


async def events_of(api: KubeApi, namespace: str, name: str, reason: str) -> list[dict[str, Any]]:
    listing = await api.request("GET", f"/api/v1/namespaces/{namespace}/events")
    return [
        e
        for e in listing["items"]
        if e.get("reason") == reason and e["involvedObject"].get("name") == name
    ]


async def test_a_copy_whose_pool_refuses_its_pods_is_re_placed_after_the_start_timeout(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str]
) -> None:
    namespace = namespace_factory("onprem", prefix="nostart")
    apis = harness.apis(sandbox)
    onprem, refusing = apis["onprem"], apis[REFUSING[0]]
    instance = harness.instance_name()
    settings = FederationSettings(
        instance=instance,
        interval_s=2.0,
        gc_grace_s=5.0,
        replace_backoff_s=2.0,
        start_timeout_s=20.0,
    )
    nodes = await pool_nodes(refusing, REFUSING[1])
    assert nodes, f"no nodes labelled federator.io/pool={REFUSING[1]} on {REFUSING[0]}"
    try:
        await set_taints(refusing, nodes, [TAINT])
        async with harness.running_federation(
            sandbox.kubeconfig, instance=instance, namespaces=[namespace], settings=settings
        ):
            job = harness.gpu_job(
                "starved", namespace, gpus=8, seconds=10, queue=None, labels=PLAIN
            )
            await onprem.apply(job)
            first: dict[str, Any] = {}

            async def placed_first() -> bool:
                record = await harness.job_record(onprem, namespace, "starved")
                if record and record["phase"] == "placed" and record["attempt"] == 1:
                    first.update(record)
                return bool(first)

            await harness.wait_for(placed_first, timeout_s=60, what="the first placement")
            assert (first["cluster"], first["pool"]) == REFUSING, first

            async def done() -> bool:
                return harness.finished(await onprem.get("Job", "starved", namespace))

            await harness.wait_for(done, timeout_s=120, what="the re-placed job to finish")
            await invariants.wait_no_orphans(apis, [namespace], instance, timeout_s=60)
            record = await harness.job_record(onprem, namespace, "starved")
            told = await events_of(onprem, namespace, "starved", "CloudStartTimeout")
    finally:
        with contextlib.suppress(KubeError, OSError):
            await set_taints(refusing, nodes, None)
        await harness.delete_cloud_namespaces(sandbox, [namespace])

    assert record is not None
    print(f"\nfirst {first['cluster']}/{first['pool']}; now {record}; told {told[0]['message']}")
    assert (record["cluster"], record["pool"]) != REFUSING
    assert record["attempt"] == 2
    assert record["history"] == ["/".join(REFUSING)]
    assert record["preemptions"] == 0, "capacity that never came is no preemption"
    assert len(told) == 1
    assert told[0]["type"] == "Warning"
    assert told[0]["message"] == (
        "no pod of the copy started within 20s on cloud-a/a100-spot; re-placing"
    )
    finished = await onprem.get("Job", "starved", namespace)
    invariants.check_one_terminal_state([finished])
    assert any(c["type"] == "Complete" for c in finished["status"]["conditions"])
