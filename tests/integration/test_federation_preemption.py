"""Spot preemption on the real sandbox: the node under a running cloud copy disappears.

The job (a plain suspended Job, so only federator can run it) must be re-placed on another pool
(the preempted one is blocked for a while), complete,
and end Complete on-prem exactly once, without two copies ever running at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from federator.federation import FederationSettings
from federator.sandbox import SandboxEnv
from tests import federation_harness as harness
from tests import invariants

# A plain suspended Job (no Kueue queue): only federator can run it, so it bursts at once.
PLAIN = {"federator.io/burst": "allow"}

pytestmark = [pytest.mark.sandbox, pytest.mark.slow, pytest.mark.timeout(600)]


async def test_a_copy_that_loses_its_node_is_replaced_and_completes(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str]
) -> None:
    namespace = namespace_factory("onprem", prefix="preempt")
    apis = harness.apis(sandbox)
    onprem = apis["onprem"]
    instance = harness.instance_name()
    sampler = invariants.Sampler(apis, frozenset({namespace}))
    settings = FederationSettings(
        instance=instance, interval_s=2.0, gc_grace_s=5.0, replace_backoff_s=2.0
    )
    deleted_on: str | None = None
    try:
        async with harness.running_federation(
            sandbox.kubeconfig, instance=instance, namespaces=[namespace], settings=settings
        ):
            sampling = asyncio.create_task(sampler.run())
            victim = harness.gpu_job(
                "victim", namespace, gpus=8, seconds=40, queue=None, labels=PLAIN
            )
            await onprem.apply(victim)
            uid = (await onprem.get("Job", "victim", namespace))["metadata"]["uid"]
            first: dict[str, object] = {}

            async def running_in_cloud() -> bool:
                record = await harness.job_record(onprem, namespace, "victim")
                if not record or record["phase"] != "placed":
                    return False
                pods = await harness.copy_pods(apis[record["cluster"]], namespace, uid)
                bound = [p for p in pods if p["status"].get("phase") == "Running"]
                if bound:
                    first.update(record, node=bound[0]["spec"]["nodeName"])
                return bool(bound)

            await harness.wait_for(running_in_cloud, timeout_s=120, what="the copy to run")
            deleted_on = str(first["cluster"])
            await apis[deleted_on].delete("Node", str(first["node"]))

            async def replaced() -> bool:
                record = await harness.job_record(onprem, namespace, "victim")
                return bool(record and record["attempt"] >= 2 and record["phase"] != "requeued")

            await harness.wait_for(replaced, timeout_s=120, what="the job to be re-placed")

            async def victim_done() -> bool:
                job = await onprem.get("Job", "victim", namespace)
                return harness.finished(job)

            await harness.wait_for(victim_done, timeout_s=180, what="the re-placed job to finish")
            await invariants.wait_no_orphans(apis, [namespace], instance, timeout_s=60)
            await invariants.cancel(sampling)
            record = await harness.job_record(onprem, namespace, "victim")
    finally:
        await harness.delete_cloud_namespaces(sandbox, [namespace])
        if deleted_on is not None:
            await harness.restore_nodes(sandbox, deleted_on)

    assert record is not None
    print(f"\nfirst {first['cluster']}/{first['pool']} on {first['node']}; now {record}")
    assert record["preemptions"] >= 1
    assert f"{first['cluster']}/{first['pool']}" in record["history"]
    assert (record["cluster"], record["pool"]) != (first["cluster"], first["pool"])
    victim_job = await onprem.get("Job", "victim", namespace)
    invariants.check_one_terminal_state([victim_job])
    assert any(c["type"] == "Complete" for c in victim_job["status"]["conditions"])
    invariants.check_never_two_running(sampler)
