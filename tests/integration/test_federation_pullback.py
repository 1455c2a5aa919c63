"""Pull-back on the real sandbox: a bursted copy still starting up comes home when on-prem frees.

On-prem is full (two opted-out blockers), so an 8-GPU Kueue job bursts. Its cloud pod is bound
to a node but still starting (KWOK keeps it `ContainerCreating` for `STARTUP_S`, as an image
pull would): the copy is `Pending`, one of the two states `_pull_back` treats as "no real work
yet". Then the blockers go.

* With pull-back on (no hysteresis) federator deletes the copy, reactivates the Workload, Kueue
  admits the Job on-prem and it completes there once; no copy is left in any cloud.
* With `pull_back_after_s` (the policy's `burst.cooldown`) longer than the copy's startup, the
  copy stays through several passes that saw on-prem room, runs, and the job completes in the
  cloud once.

The startup delay applies on-prem too (the copy's pod template is the Job's own): a pulled-back
job starts as slowly there as it would have in the cloud.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from federator.federation import FederationSettings
from federator.sandbox import SandboxEnv
from federator.sandbox.kubeapi import KubeApi
from tests import federation_harness as harness
from tests import invariants

pytestmark = [pytest.mark.sandbox, pytest.mark.slow, pytest.mark.timeout(300)]

GPUS = 8
RUN_S = 5.0
# Long enough that blockers are deleted and a pass or two has run before the copy's pod is
# Running even on a busy machine; short, because a pulled-back job starts this slowly on-prem.
STARTUP_S = 20.0
BLOCKERS_S = 300.0  # a long wait behind them is what makes the job burst
READY_DELAY = "pod-ready.stage.kwok.x-k8s.io/delay"
READY_JITTER = "pod-ready.stage.kwok.x-k8s.io/jitter-delay"
RETURNED = "federator.io/returned-on-prem"  # the note a return on-prem leaves on the Job


@dataclass(frozen=True)
class Placed:
    """The bursted job as seen right before on-prem capacity is freed."""

    uid: str
    cluster: str
    pool: str
    copy: str
    node: str


def slow_starting_job(name: str, namespace: str) -> dict[str, Any]:
    """An 8-GPU Kueue job whose pod stays ContainerCreating `STARTUP_S`, then runs `RUN_S`."""
    job = harness.gpu_job(name, namespace, gpus=GPUS, seconds=RUN_S, queue="team-a")
    delay = f"{int(STARTUP_S * 1000)}ms"
    job["spec"]["template"]["metadata"]["annotations"].update(
        {READY_DELAY: delay, READY_JITTER: delay}
    )
    return job


async def homing_job(api: KubeApi, namespace: str) -> dict[str, Any]:
    """The scenario's on-prem Job, which must exist (the test never deletes it)."""
    job: dict[str, Any] | None = await api.get("Job", "homing", namespace)
    assert job is not None, f"{namespace}/homing is gone"
    return job


async def burst_while_full(apis: Mapping[str, KubeApi], namespace: str) -> tuple[list[str], Placed]:
    """Fill on-prem, submit the job, and wait until its copy's pod is bound but not Running."""
    onprem = apis["onprem"]
    blockers = await harness.fill_onprem(onprem, namespace, queue="team-a", seconds=BLOCKERS_S)
    await onprem.apply(slow_starting_job("homing", namespace))
    uid = (await homing_job(onprem, namespace))["metadata"]["uid"]
    found: list[Placed] = []

    async def copy_starting() -> bool:
        record = await harness.job_record(onprem, namespace, "homing")
        if not record or record["phase"] != "placed":
            return False
        pods = await harness.copy_pods(apis[record["cluster"]], namespace, uid)
        bound = [p for p in pods if p["spec"].get("nodeName")]
        if not bound:
            return False
        pod = bound[0]
        assert pod["status"].get("phase") == "Pending", f"the copy started too soon: {pod}"
        owner = pod["metadata"]["ownerReferences"][0]["name"]
        found.append(Placed(uid, record["cluster"], record["pool"], owner, pod["spec"]["nodeName"]))
        return True

    await harness.wait_for(
        copy_starting, timeout_s=90, interval_s=0.5, what="the job to burst and its pod to bind"
    )
    return blockers, found[-1]


async def copies_anywhere(apis: Mapping[str, KubeApi], namespace: str, uid: str) -> list[str]:
    """Every cloud Job that is a copy of `uid`, on every cloud (deleted ones are gone)."""
    left = []
    for site in harness.CLOUDS:
        selector = f"{invariants.SOURCE_UID}={uid}"
        for job in await apis[site].list("Job", namespace, labelSelector=selector):
            left.append(f"{site}/{job['metadata']['name']}")
    return left


async def copy_pod_phases(api: KubeApi, namespace: str, uid: str) -> list[str]:
    return [str(p["status"].get("phase")) for p in await harness.copy_pods(api, namespace, uid)]


async def events_of(api: KubeApi, namespace: str, name: str) -> dict[str, str]:
    """reason -> message of the Events federator (and Kubernetes) wrote about the Job."""
    listed = await api.request(
        "GET",
        f"/api/v1/namespaces/{namespace}/events",
        params={"fieldSelector": f"involvedObject.kind=Job,involvedObject.name={name}"},
    )
    return {e["reason"]: e.get("message", "") for e in listed.get("items", [])}


async def free_blockers(api: KubeApi, namespace: str, blockers: list[str]) -> float:
    for name in blockers:
        await api.delete("Job", name, namespace)
    return time.monotonic()


def where_it_ran(sampler: invariants.Sampler, uid: str) -> set[str]:
    return {w.split("/")[0] for s in sampler.samples for w in s.running.get(uid, [])}


async def test_a_copy_still_starting_is_pulled_back_when_on_prem_frees_up(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str]
) -> None:
    began = time.monotonic()
    namespace = namespace_factory("onprem", prefix="pullback", local_queue="team-a")
    apis = harness.apis(sandbox)
    onprem = apis["onprem"]
    instance = harness.instance_name()
    sampler = invariants.Sampler(apis, frozenset({namespace}), interval_s=0.5)
    settings = FederationSettings(instance=instance, interval_s=2.0, gc_grace_s=5.0)
    assert settings.pull_back
    assert settings.pull_back_after_s == 0.0
    cloud_phases: set[str] = set()
    try:
        async with harness.running_federation(
            sandbox.kubeconfig, instance=instance, namespaces=[namespace], settings=settings
        ):
            sampling = asyncio.create_task(sampler.run())
            blockers, placed = await burst_while_full(apis, namespace)
            freed = await free_blockers(onprem, namespace, blockers)

            async def pulled_back() -> bool:
                phases = await copy_pod_phases(apis[placed.cluster], namespace, placed.uid)
                cloud_phases.update(phases)
                assert "Running" not in phases, "the copy started before it was pulled back"
                record = await harness.job_record(onprem, namespace, "homing")
                return record is None and not await copies_anywhere(apis, namespace, placed.uid)

            await harness.wait_for(
                pulled_back, timeout_s=60, interval_s=0.25, what="the copy to be pulled back"
            )
            pulled = time.monotonic()

            async def complete_on_prem() -> bool:
                return harness.finished(await homing_job(onprem, namespace))

            await harness.wait_for(
                complete_on_prem, timeout_s=120, interval_s=0.5, what="the job to finish on-prem"
            )
            completed = time.monotonic()
            await invariants.wait_no_orphans(apis, [namespace], instance, timeout_s=60)
            await invariants.cancel(sampling)
            left = await copies_anywhere(apis, namespace, placed.uid)
    finally:
        await harness.delete_cloud_namespaces(sandbox, [namespace])

    print(
        f"\nbursted to {placed.cluster}/{placed.pool}; pulled back {pulled - freed:.1f} s after"
        f" on-prem freed; Complete on-prem {completed - freed:.1f} s after;"
        f" scenario {time.monotonic() - began:.1f} s"
    )
    job = await homing_job(onprem, namespace)
    invariants.check_one_terminal_state([job])
    invariants.check_never_two_running(sampler)
    assert any(c["type"] == "Complete" for c in job["status"]["conditions"])
    assert job["status"].get("succeeded") == 1, "the one pod ran once, on-prem"
    assert not job["spec"].get("suspend"), "Kueue un-suspended it on-prem"
    workloads = await onprem.list("Workload", namespace)
    mine = [w for w in workloads if w["metadata"]["ownerReferences"][0]["uid"] == placed.uid]
    assert len(mine) == 1
    assert mine[0]["spec"].get("active", True), "the Workload is active again"
    assert any(c["type"] == "Admitted" for c in mine[0]["status"]["conditions"])
    assert left == [], "no copy is left in any cloud"
    assert cloud_phases <= {"Pending"}, f"the copy never ran: {cloud_phases}"
    assert where_it_ran(sampler, placed.uid) == {placed.cluster, "onprem"}, "copy, then on-prem"
    annotations = job["metadata"].get("annotations") or {}
    gone = {invariants.RECORD, "federator.io/placement", "federator.io/remote-state"}
    assert not gone & set(annotations), "no placement left on the Job"
    print(f"{RETURNED}: {annotations.get(RETURNED)}")
    stamp, _, why = annotations.get(RETURNED, "").partition(" ")
    assert why == f"pulled back from {placed.cluster}/{placed.pool}: on-prem has room", annotations
    assert stamp.endswith("Z"), f"the note says when: {stamp!r}"
    events = await events_of(onprem, namespace, "homing")
    assert "Bursted" in events
    assert events.get("ReturnedOnPrem", "").startswith(
        f"pulled back from {placed.cluster}/{placed.pool}: on-prem has room"
    ), events
    assert "CompletedInCloud" not in events


async def test_a_copy_younger_than_the_cooldown_stays_and_completes_in_the_cloud(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str]
) -> None:
    began = time.monotonic()
    namespace = namespace_factory("onprem", prefix="cooldown", local_queue="team-a")
    apis = harness.apis(sandbox)
    onprem = apis["onprem"]
    instance = harness.instance_name()
    sampler = invariants.Sampler(apis, frozenset({namespace}), interval_s=0.5)
    settings = FederationSettings(
        instance=instance, interval_s=2.0, gc_grace_s=5.0, pull_back_after_s=600.0
    )
    eligible_passes: set[float] = set()  # passes that saw room on-prem while the copy started
    try:
        async with harness.running_federation(
            sandbox.kubeconfig, instance=instance, namespaces=[namespace], settings=settings
        ) as running:
            sampling = asyncio.create_task(sampler.run())
            blockers, placed = await burst_while_full(apis, namespace)
            await free_blockers(onprem, namespace, blockers)
            room_since: list[float] = []

            async def copy_running() -> bool:
                phases = await copy_pod_phases(apis[placed.cluster], namespace, placed.uid)
                if "Running" in phases or "Succeeded" in phases:
                    return True
                view = await running.onprem.snapshot(time.time())
                if not room_since and view.state.free_gpus >= GPUS:
                    room_since.append(time.time())  # federator's own view has room from here
                report = running.federation.last_report
                if room_since and report is not None and report.now > room_since[0]:
                    eligible_passes.add(report.now)
                record = await harness.job_record(onprem, namespace, "homing")
                assert record is not None, "the copy was pulled back"
                assert record["phase"] == "placed", f"the copy was moved: {record}"
                return False

            await harness.wait_for(
                copy_running, timeout_s=90, interval_s=0.25, what="the copy to start"
            )

            async def complete() -> bool:
                return harness.finished(await homing_job(onprem, namespace))

            await harness.wait_for(complete, timeout_s=120, interval_s=0.5, what="the job to end")
            await invariants.wait_no_orphans(apis, [namespace], instance, timeout_s=60)
            await invariants.cancel(sampling)
    finally:
        await harness.delete_cloud_namespaces(sandbox, [namespace])

    print(
        f"\ncopy on {placed.cluster}/{placed.pool} kept through {len(eligible_passes)} passes"
        f" with on-prem room; scenario {time.monotonic() - began:.1f} s"
    )
    assert len(eligible_passes) >= 2, "passes saw on-prem room while the copy had not started"
    job = await homing_job(onprem, namespace)
    invariants.check_one_terminal_state([job])
    invariants.check_never_two_running(sampler)
    assert any(c["type"] == "Complete" for c in job["status"]["conditions"])
    record = invariants.record_of(job)
    assert record is not None
    assert (record["cluster"], record["pool"], record["attempt"], record["phase"]) == (
        placed.cluster,
        placed.pool,
        1,
        "done",
    ), record
    assert where_it_ran(sampler, placed.uid) == {placed.cluster}, "never on-prem"
    events = await events_of(onprem, namespace, "homing")
    assert "CompletedInCloud" in events
    assert "ReturnedOnPrem" not in events
    assert RETURNED not in (job["metadata"].get("annotations") or {})
