"""A spot preemption that happens while federator is not running is still a preemption.

The copy's node disappears while no federator watches; by the time one runs again the cluster's
pod GC has removed the copy's pod and the Job controller has ended the copy. Federator must
re-place the job, not fail it on-prem: the Job's own `backoffLimit` is 0 (common for training
jobs), and before, the lost pod counted against it, so the copy ended `Failed`
(`BackoffLimitExceeded`) with nothing left to say it was preempted, and the next pass mirrored
that failure onto the on-prem Job.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from federator.federation import FederationSettings
from federator.sandbox import SandboxEnv
from tests import federation_harness as harness
from tests import invariants

PLAIN = {"federator.io/burst": "allow"}  # only federator can run it: it bursts at once
# Longer than the cluster takes to clean up after a lost node (the pod GC removes the pod about
# 50 s after the node went): a shorter pod would complete first, on a node already gone.
RUN_S = 120

pytestmark = [pytest.mark.sandbox, pytest.mark.slow, pytest.mark.timeout(600)]


def failed_condition(job: dict[str, Any]) -> dict[str, Any] | None:
    conditions = (job.get("status") or {}).get("conditions") or ()
    return next((c for c in conditions if c["type"] == "Failed" and c["status"] == "True"), None)


async def test_a_copy_preempted_while_federator_was_away_is_re_placed(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str]
) -> None:
    namespace = namespace_factory("onprem", prefix="away")
    apis = harness.apis(sandbox)
    onprem = apis["onprem"]
    instance = harness.instance_name()
    settings = FederationSettings(
        instance=instance, interval_s=2.0, gc_grace_s=5.0, replace_backoff_s=2.0
    )
    first: dict[str, Any] = {}
    try:
        async with harness.running_federation(
            sandbox.kubeconfig, instance=instance, namespaces=[namespace], settings=settings
        ):
            await onprem.apply(
                harness.gpu_job(
                    "victim", namespace, gpus=8, seconds=RUN_S, queue=None, labels=PLAIN
                )
            )
            uid = (await onprem.get("Job", "victim", namespace))["metadata"]["uid"]

            async def running_in_cloud() -> bool:
                record = await harness.job_record(onprem, namespace, "victim")
                if not record or record["phase"] != "placed":
                    return False
                pods = await harness.copy_pods(apis[record["cluster"]], namespace, uid)
                running = [p for p in pods if p["status"].get("phase") == "Running"]
                if running:
                    first.update(record, node=running[0]["spec"]["nodeName"])
                return bool(running)

            await harness.wait_for(running_in_cloud, timeout_s=120, what="the copy to run")
        # federator is stopped: the node goes, and the cluster cleans up after it alone.
        cloud = apis[first["cluster"]]
        await cloud.delete("Node", first["node"])
        copy_name = f"/apis/batch/v1/namespaces/{namespace}/jobs"

        async def copy_ended_without_pods() -> bool:
            copies = (await cloud.request("GET", copy_name))["items"]
            pods = await harness.copy_pods(cloud, namespace, uid)
            return bool(copies) and failed_condition(copies[0]) is not None and not pods

        await harness.wait_for(
            copy_ended_without_pods, timeout_s=240, what="the pod GC and the Job controller"
        )
        ended = (await cloud.request("GET", copy_name))["items"][0]
        print(f"\nthe copy ended: {failed_condition(ended)}")

        async with harness.running_federation(
            sandbox.kubeconfig, instance=instance, namespaces=[namespace], settings=settings
        ):

            async def finished() -> bool:
                return harness.finished(await onprem.get("Job", "victim", namespace))

            await harness.wait_for(finished, timeout_s=240, what="the on-prem Job to finish")
            await invariants.wait_no_orphans(apis, [namespace], instance, timeout_s=60)
        record = await harness.job_record(onprem, namespace, "victim")
        victim = await onprem.get("Job", "victim", namespace)
    finally:
        await harness.delete_cloud_namespaces(sandbox, [namespace])
        if first.get("cluster"):
            await harness.restore_nodes(sandbox, first["cluster"])

    print(f"first {first['cluster']}/{first['pool']} on {first['node']}; now {record}")
    assert failed_condition(victim) is None, f"failed on-prem: {failed_condition(victim)}"
    assert any(c["type"] == "Complete" for c in victim["status"]["conditions"])
    assert record is not None
    assert record["attempt"] >= 2
    assert record["preemptions"] >= 1
    invariants.check_one_terminal_state([victim])
