"""Overflow on the real sandbox: 20 GPU jobs against the 16-GPU on-prem queue.

Some stay, some burst to the pools the cost model prefers, all complete, every on-prem Job ends
Complete exactly once, no job ever runs twice, nothing federator created is left behind, and the
spend stays within the budget.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import pytest

from federator.federation import FederationSettings
from federator.sandbox import SandboxEnv
from tests import federation_harness as harness
from tests import invariants

pytestmark = [pytest.mark.sandbox, pytest.mark.slow, pytest.mark.timeout(900)]

BUDGET_USD_PER_DAY = 20.0


async def test_overflow_bursts_some_jobs_and_every_job_completes_once(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str]
) -> None:
    team_a = namespace_factory("onprem", prefix="team-a", local_queue="team-a")
    team_b = namespace_factory("onprem", prefix="team-b", local_queue="team-b")
    namespaces = [team_a, team_b]
    apis = harness.apis(sandbox)
    instance = harness.instance_name()
    rng = random.Random(6)
    jobs = [
        harness.gpu_job(
            f"job-{i:02d}",
            namespaces[i % 2],
            gpus=rng.choice((4, 8)),
            seconds=rng.randint(20, 45),
            queue="team-a" if i % 2 == 0 else "team-b",
        )
        for i in range(20)
    ]
    sampler = invariants.Sampler(apis, frozenset(namespaces))
    settings = FederationSettings(instance=instance, interval_s=2.0, gc_grace_s=5.0)
    started = time.time()
    try:
        async with harness.running_federation(
            sandbox.kubeconfig,
            instance=instance,
            namespaces=namespaces,
            settings=settings,
            policy=harness.sandbox_policy(budget_usd_per_day=BUDGET_USD_PER_DAY),
        ) as running:
            sampling = asyncio.create_task(sampler.run())
            for job in jobs:
                await apis["onprem"].apply(job)

            async def all_finished() -> bool:
                found = await harness.onprem_jobs(apis["onprem"], namespaces)
                return len(found) == 20 and all(harness.finished(j) for j in found)

            await harness.wait_for(all_finished, timeout_s=600, what="all 20 jobs to finish")
            await invariants.wait_no_orphans(apis, namespaces, instance, timeout_s=90)
            await invariants.cancel(sampling)
            decisions = running.federation.last_report
    finally:
        await harness.delete_cloud_namespaces(sandbox, namespaces)

    final = await harness.onprem_jobs(apis["onprem"], namespaces)
    invariants.check_one_terminal_state(final)
    invariants.check_never_two_running(sampler)
    complete = [j for j in final if _complete(j)]
    assert len(complete) == 20, "every on-prem Job ends Complete"
    for namespace in namespaces:  # what a user sees, with the tools a user has
        waited = await asyncio.to_thread(
            harness.kubectl, sandbox, "wait", "--for=condition=complete", "job", "--all",
            "-n", namespace, "--timeout=30s",
        )  # fmt: skip
        assert waited.returncode == 0, waited.stderr
        assert waited.stdout.count("condition met") == 10, waited.stdout
        listed = await asyncio.to_thread(
            harness.kubectl, sandbox, "get", "jobs", "-n", namespace, "--no-headers"
        )
        rows = listed.stdout.strip().splitlines()
        assert len(rows) == 10, listed.stdout
        assert all(" Complete " in row and " 1/1 " in row for row in rows), listed.stdout
    bursted = [j for j in final if invariants.record_of(j)]
    placements = sorted(
        f"{r['cluster']}/{r['pool']}" for j in bursted if (r := invariants.record_of(j))
    )
    print(f"\nbursted {len(bursted)}/20 in {time.time() - started:.0f} s: {placements}")
    assert 0 < len(bursted) < 20, "some jobs stay on-prem and some burst"
    assert "cloud-a/a100-spot" in placements, "the cheapest pool is preferred"
    spend = invariants.recorded_spend_usd(final, now=time.time())
    print(f"recorded spend ${spend:.3f} (budget ${BUDGET_USD_PER_DAY:.2f}/day)")
    assert spend <= BUDGET_USD_PER_DAY
    assert decisions is not None


def _complete(job: dict[str, object]) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or ()  # type: ignore[union-attr]
    return any(c.get("type") == "Complete" and c.get("status") == "True" for c in conditions)
