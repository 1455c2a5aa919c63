"""Retiring a cloud on the real sandbox: restarts with cloud-b draining, then with it removed.

A job is bursted to cloud-b (the cheapest here) and federator is stopped while its copy runs.
Restarted with cloud-b `draining`, federator must leave that job where it is: it completes on
cloud-b once, its copy is collected, and a new job goes to cloud-a. Restarted with cloud-b not
configured at all, the job placed there is neither lost nor re-placed: it keeps its record, gets
one `FederatorClusterNotConfigured` Warning Event, and no second copy appears anywhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from federator.federation import FederationSettings
from federator.sandbox import SandboxEnv
from tests import federation_harness as harness
from tests import invariants

pytestmark = [pytest.mark.sandbox, pytest.mark.slow, pytest.mark.timeout(900)]

PLAIN = {"federator.io/burst": "allow"}  # only federator runs it: it bursts at once


def offers() -> list[Any]:
    """The sandbox's pools with cloud-b the cheapest, so a free choice goes there."""
    return [
        replace(o, price_per_gpu_hour_usd=0.5) if o.cluster == "cloud-b" else o
        for o in harness.sandbox_offers()
    ]


async def burst_to_cloud_b(
    sandbox: SandboxEnv, namespace: str, instance: str, name: str, *, seconds: float
) -> str:
    """Run federator until the job's copy runs on cloud-b, then stop it; the job's uid."""
    apis = harness.apis(sandbox)
    onprem = apis["onprem"]
    async with harness.running_federation(
        sandbox.kubeconfig, instance=instance, namespaces=[namespace], offers=offers()
    ):
        await onprem.apply(
            harness.gpu_job(name, namespace, gpus=8, seconds=seconds, queue=None, labels=PLAIN)
        )
        created = await onprem.get("Job", name, namespace)
        assert created is not None
        uid: str = created["metadata"]["uid"]

        async def running_on_cloud_b() -> bool:
            record = await harness.job_record(onprem, namespace, name)
            if not record or record["cluster"] != "cloud-b" or record["phase"] != "placed":
                return False
            pods = await harness.copy_pods(apis["cloud-b"], namespace, uid)
            return any(p["status"].get("phase") == "Running" for p in pods)

        await harness.wait_for(running_on_cloud_b, timeout_s=120, what="a copy on cloud-b")
    return uid


async def test_a_draining_cloud_finishes_its_job_and_takes_no_new_one(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str]
) -> None:
    namespace = namespace_factory("onprem", prefix="drain")
    apis = harness.apis(sandbox)
    onprem = apis["onprem"]
    instance = harness.instance_name()
    sampler = invariants.Sampler(apis, frozenset({namespace}))
    sampling = asyncio.create_task(sampler.run())
    started = asyncio.get_running_loop().time()
    settings = FederationSettings(
        instance=instance,
        interval_s=2.0,
        gc_grace_s=5.0,
        draining_clusters=frozenset({"cloud-b"}),
    )
    try:
        await burst_to_cloud_b(sandbox, namespace, instance, "old", seconds=40)
        async with harness.running_federation(
            sandbox.kubeconfig,
            instance=instance,
            namespaces=[namespace],
            settings=settings,
            offers=offers(),
        ):
            await onprem.apply(
                harness.gpu_job("new", namespace, gpus=8, seconds=10, queue=None, labels=PLAIN)
            )

            async def both_done() -> bool:
                jobs = await harness.onprem_jobs(onprem, [namespace])
                return len(jobs) == 2 and all(harness.finished(j) for j in jobs)

            await harness.wait_for(both_done, timeout_s=240, what="both jobs to finish")
            await invariants.wait_no_orphans(apis, [namespace], instance, timeout_s=90)
        await invariants.cancel(sampling)
        old = await harness.job_record(onprem, namespace, "old")
        new = await harness.job_record(onprem, namespace, "new")
    finally:
        if not sampling.done():
            await invariants.cancel(sampling)
        await harness.delete_cloud_namespaces(sandbox, [namespace])

    took = asyncio.get_running_loop().time() - started
    print(f"\n{took:.0f} s; old: {old}; new: {new}")
    assert old is not None
    assert new is not None
    assert (old["cluster"], old["attempt"], old["phase"]) == ("cloud-b", 1, "done")
    assert new["cluster"] == "cloud-a", "no new job on the draining cloud"
    invariants.check_one_terminal_state(await harness.onprem_jobs(onprem, [namespace]))
    invariants.check_never_two_running(sampler)


async def test_a_removed_cloud_s_job_is_left_alone_and_told_once(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str]
) -> None:
    namespace = namespace_factory("onprem", prefix="removed")
    apis = harness.apis(sandbox)
    onprem = apis["onprem"]
    instance = harness.instance_name()
    settings = FederationSettings(instance=instance, interval_s=2.0, gc_grace_s=5.0)
    try:
        uid = await burst_to_cloud_b(sandbox, namespace, instance, "kept", seconds=600)
        async with harness.running_federation(
            sandbox.kubeconfig,
            instance=instance,
            namespaces=[namespace],
            settings=settings,
            offers=offers(),
            cloud_names=("cloud-a",),  # cloud-b removed from the policy
        ):

            async def told() -> list[dict[str, Any]]:
                listed = await onprem.request("GET", f"/api/v1/namespaces/{namespace}/events")
                events: list[dict[str, Any]] = listed.get("items", [])
                return [e for e in events if e.get("reason") == "FederatorClusterNotConfigured"]

            async def told_once() -> bool:
                return bool(await told())

            await harness.wait_for(told_once, timeout_s=60, what="the warning Event")
            await asyncio.sleep(20)  # ten passes more: nothing may move
            events = await told()
            record = await harness.job_record(onprem, namespace, "kept")
            on_a = await harness.copy_pods(apis["cloud-a"], namespace, uid)
            on_b = await harness.copy_pods(apis["cloud-b"], namespace, uid)
    finally:
        await harness.delete_cloud_namespaces(sandbox, [namespace])

    print(f"\nrecord {record}; event: {events[0].get('message')}")
    assert record is not None
    assert (record["cluster"], record["attempt"], record["phase"]) == ("cloud-b", 1, "placed")
    assert on_a == [], "no second copy"
    assert len(on_b) == 1, "the copy on cloud-b runs on"
    assert len(events) == 1
    assert events[0]["type"] == "Warning"
    assert events[0].get("count", 1) == 1
    assert "draining: true" in events[0]["message"]
