"""Opt-out and residency on the real sandbox: such jobs never leave on-prem, even under pressure.

On-prem is full, so an ordinary job next to them bursts (the control that proves the pressure
was real); the opted-out one, the one labelled resident, and the one reading a dataset the
policy keeps on-prem wait and run on-prem.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

import pytest

from federator.federation import FederationSettings
from federator.sandbox import SandboxEnv
from tests import federation_harness as harness
from tests import invariants

pytestmark = [pytest.mark.sandbox, pytest.mark.slow, pytest.mark.timeout(600)]


async def test_opted_out_and_resident_jobs_never_leave_on_prem(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str]
) -> None:
    namespace = namespace_factory("onprem", prefix="resid", local_queue="team-a")
    apis = harness.apis(sandbox)
    onprem = apis["onprem"]
    instance = harness.instance_name()
    policy = replace(harness.sandbox_policy(), resident_datasets=("patients-*",))
    kept = {
        "opted-out": {"labels": {"federator.io/burst": "never"}},
        "resident": {"labels": {"federator.io/residency": "onprem"}},
        "medical": {"annotations": {"federator.io/datasets": "patients-2026=1000000"}},
    }
    sampler = invariants.Sampler(apis, frozenset({namespace}))
    settings = FederationSettings(instance=instance, interval_s=2.0, gc_grace_s=5.0)
    try:
        async with harness.running_federation(
            sandbox.kubeconfig,
            instance=instance,
            namespaces=[namespace],
            settings=settings,
            policy=policy,
        ):
            sampling = asyncio.create_task(sampler.run())
            await harness.fill_onprem(onprem, namespace, queue="team-a", seconds=60)
            for name, extra in kept.items():
                await onprem.apply(
                    harness.gpu_job(name, namespace, gpus=4, seconds=20, queue="team-a", **extra)  # type: ignore[arg-type]
                )
            await onprem.apply(
                harness.gpu_job("control", namespace, gpus=4, seconds=20, queue="team-a")
            )

            async def all_done() -> bool:
                jobs = await harness.onprem_jobs(onprem, [namespace])
                return len(jobs) == 6 and all(harness.finished(j) for j in jobs)

            await harness.wait_for(all_done, timeout_s=300, what="every job to finish")
            await invariants.wait_no_orphans(apis, [namespace], instance, timeout_s=60)
            await invariants.cancel(sampling)
    finally:
        await harness.delete_cloud_namespaces(sandbox, [namespace])

    jobs = {j["metadata"]["name"]: j for j in await harness.onprem_jobs(onprem, [namespace])}
    invariants.check_one_terminal_state(jobs.values())
    invariants.check_never_two_running(sampler)
    assert invariants.record_of(jobs["control"]) is not None, "the control job bursts"
    for name in kept:
        uid = jobs[name]["metadata"]["uid"]
        assert invariants.record_of(jobs[name]) is None, f"{name} was placed in a cloud"
        clouds = {w for s in sampler.samples for w in s.running.get(uid, []) if w != "onprem"}
        assert not clouds, f"{name} ran in {clouds}"
