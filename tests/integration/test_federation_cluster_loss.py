"""A cloud cluster lost on the real sandbox: cloud-b's apiserver is stopped under a running copy.

After the lost-cluster timeout the job is re-placed on cloud-a and completes there; when cloud-b
comes back, the stale copy is deleted, and the job still has exactly one terminal state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

import pytest

from federator import sandbox as sandbox_api
from federator.federation import FederationSettings
from federator.sandbox import Sandbox, SandboxEnv
from federator.sandbox.layout import Layout
from tests import federation_harness as harness
from tests import invariants

pytestmark = [pytest.mark.sandbox, pytest.mark.slow, pytest.mark.timeout(900)]

# A plain suspended Job (no Kueue queue): only federator can run it, so it bursts at once.
PLAIN = {"federator.io/burst": "allow"}
LOST_AFTER_S = 20.0


async def test_jobs_of_a_lost_cluster_are_replaced_and_its_stale_copies_deleted(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str]
) -> None:
    namespace = namespace_factory("onprem", prefix="loss")
    apis = harness.apis(sandbox)
    onprem = apis["onprem"]
    instance = harness.instance_name()
    box = Sandbox(Layout(sandbox.root))
    # cloud-b is the cheapest here, so the job goes there first.
    offers = [
        replace(o, price_per_gpu_hour_usd=0.5) if o.cluster == "cloud-b" else o
        for o in harness.sandbox_offers()
    ]
    settings = FederationSettings(
        instance=instance,
        interval_s=2.0,
        gc_grace_s=5.0,
        replace_backoff_s=2.0,
        lost_cluster_timeout_s={"cloud-b": LOST_AFTER_S},
    )
    sampler = invariants.Sampler(apis, frozenset({namespace}))
    stopped = False
    try:
        async with harness.running_federation(
            sandbox.kubeconfig,
            instance=instance,
            namespaces=[namespace],
            settings=settings,
            offers=offers,
        ):
            sampling = asyncio.create_task(sampler.run())
            await onprem.apply(
                harness.gpu_job("victim", namespace, gpus=8, seconds=45, queue=None, labels=PLAIN)
            )
            uid = (await onprem.get("Job", "victim", namespace))["metadata"]["uid"]

            async def running_on_cloud_b() -> bool:
                record = await harness.job_record(onprem, namespace, "victim")
                if not record or record["cluster"] != "cloud-b" or record["phase"] != "placed":
                    return False
                pods = await harness.copy_pods(apis["cloud-b"], namespace, uid)
                return any(p["status"].get("phase") == "Running" for p in pods)

            await harness.wait_for(running_on_cloud_b, timeout_s=120, what="a copy on cloud-b")
            assert box.stop_component("cloud-b", "apiserver", kill=True)
            stopped = True
            lost_at = asyncio.get_running_loop().time()

            async def moved_to_cloud_a() -> bool:
                record = await harness.job_record(onprem, namespace, "victim")
                return bool(
                    record and record["cluster"] == "cloud-a" and record["phase"] == "placed"
                )

            await harness.wait_for(moved_to_cloud_a, timeout_s=120, what="re-placement on cloud-a")
            moved_after = asyncio.get_running_loop().time() - lost_at
            assert moved_after >= LOST_AFTER_S - 1, "nothing moves before the timeout"

            async def victim_done() -> bool:
                return harness.finished(await onprem.get("Job", "victim", namespace))

            await harness.wait_for(victim_done, timeout_s=180, what="the job to finish on cloud-a")
            await box.start_component("cloud-b", "apiserver")
            stopped = False
            await invariants.wait_no_orphans(apis, [namespace], instance, timeout_s=90)
            await invariants.cancel(sampling)
            record = await harness.job_record(onprem, namespace, "victim")
    finally:
        if stopped:
            await box.start_component("cloud-b", "apiserver")
        # Every cluster component back (KWOK and the controllers of cloud-b lost their
        # apiserver too); `up` is idempotent and reuses whatever still runs.
        await asyncio.to_thread(
            sandbox_api.up, sandbox.root, frozenset({sandbox_api.PART_CLUSTERS}), build=False
        )
        await harness.delete_cloud_namespaces(sandbox, [namespace])

    print(f"\nre-placed {moved_after:.0f} s after cloud-b stopped; record {record}")
    assert record is not None
    assert any(s.startswith("cloud-b/") for s in record["stale"])
    victim_job = await onprem.get("Job", "victim", namespace)
    invariants.check_one_terminal_state([victim_job])
    invariants.check_never_two_running(sampler)
