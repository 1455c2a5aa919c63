"""A Job re-created with an earlier Job's annotations, on the real sandbox, is decided afresh.

`kubectl get job X -o json | kubectl replace --force -f -` re-creates a Job, with a new uid,
with all its annotations: the old placement's `federator.io/record`, `placement` and
`remote-state`. Read as the new Job's, a PLACED record found no copy of the new uid and
federator created one on the old pool without any decision, even with bursting off.

A plain suspended Job (only federator runs it) is bursted and federator stopped while its copy
runs; the Job is deleted and created again under its name with all its annotations. Restarted
with bursting off (`burst.policy: never`), federator must create no copy of the new Job, drop
the stale annotations and say so once in a Warning Event; restarted with bursting on, the new
Job bursts afresh (attempt 1, its record naming its own uid) and completes once, and the old
Job's copy is collected.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from federator.federation import FederationSettings
from federator.sandbox import SandboxEnv
from tests import federation_harness as harness
from tests import invariants

pytestmark = [pytest.mark.sandbox, pytest.mark.slow, pytest.mark.timeout(600)]

PLAIN = {"federator.io/burst": "allow"}  # only federator runs it: it bursts at once
NAME = "rerun"
STALE = ("federator.io/record", "federator.io/placement", "federator.io/remote-state")


def record_in(notes: dict[str, str]) -> dict[str, Any]:
    text = notes.get("federator.io/record")
    assert text, f"no record in {sorted(notes)}"
    data: dict[str, Any] = json.loads(text)
    return data


async def cloud_copies(apis: dict[str, Any], namespace: str, uid: str) -> list[str]:
    """The cloud Jobs of the on-prem Job `uid`, as `<cluster>/<name>`."""
    found = []
    for site, api in apis.items():
        if site == "onprem":
            continue
        listed = await api.request(
            "GET",
            f"/apis/batch/v1/namespaces/{namespace}/jobs",
            params={"labelSelector": f"federator.io/source-uid={uid}"},
        )
        found += [f"{site}/{j['metadata']['name']}" for j in listed.get("items", [])]
    return found


async def test_a_recreated_job_is_decided_afresh_not_carried_on_the_old_record(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str]
) -> None:
    started = time.monotonic()
    namespace = namespace_factory("onprem", prefix="rerun")
    apis = harness.apis(sandbox)
    onprem = apis["onprem"]
    instance = harness.instance_name()
    settings = FederationSettings(instance=instance, interval_s=1.0, gc_grace_s=3.0)
    try:
        # 1. The first Job bursts, and federator stops while its copy runs.
        async with harness.running_federation(
            sandbox.kubeconfig, instance=instance, namespaces=[namespace], settings=settings
        ):
            await onprem.apply(
                harness.gpu_job(NAME, namespace, gpus=8, seconds=20, queue=None, labels=PLAIN)
            )
            first = await onprem.get("Job", NAME, namespace)
            assert first is not None
            old_uid = first["metadata"]["uid"]

            async def copy_runs() -> bool:
                record = await harness.job_record(onprem, namespace, NAME)
                if not record or record["phase"] != "placed":
                    return False
                pods = await harness.copy_pods(apis[record["cluster"]], namespace, old_uid)
                return any(p["status"].get("phase") == "Running" for p in pods)

            await harness.wait_for(copy_runs, timeout_s=90, interval_s=1, what="the first copy")
        old = await onprem.get("Job", NAME, namespace)
        assert old is not None
        notes = dict(old["metadata"]["annotations"])
        old_record = record_in(notes)
        assert old_record["uid"] == old_uid, "the record names its Job"
        assert all(name in notes for name in STALE), notes

        # 2. Re-created, as `kubectl replace --force` does: same name, all annotations.
        await onprem.delete("Job", NAME, namespace)

        async def gone() -> bool:
            return await onprem.get("Job", NAME, namespace) is None

        await harness.wait_for(gone, timeout_s=30, interval_s=0.5, what="the old Job deleted")
        again = harness.gpu_job(
            NAME, namespace, gpus=8, seconds=10, queue=None, labels=PLAIN, annotations=notes
        )
        await onprem.apply(again)
        created = await onprem.get("Job", NAME, namespace)
        assert created is not None
        new_uid = created["metadata"]["uid"]
        assert new_uid != old_uid
        assert all(name in created["metadata"]["annotations"] for name in STALE)

        # 3. Bursting off: no decision may burst it, so no copy of it may appear at all.
        async with harness.running_federation(
            sandbox.kubeconfig,
            instance=instance,
            namespaces=[namespace],
            settings=FederationSettings(
                instance=instance, interval_s=1.0, gc_grace_s=3.0, burst_enabled=False
            ),
        ):

            async def told() -> list[dict[str, Any]]:
                listed = await onprem.request("GET", f"/api/v1/namespaces/{namespace}/events")
                return [
                    e
                    for e in listed.get("items", [])
                    if e.get("reason") == "FederatorRecordIgnored"
                ]

            async def cleaned() -> bool:
                job = await onprem.get("Job", NAME, namespace)
                notes_now = (job or {}).get("metadata", {}).get("annotations") or {}
                return not any(name in notes_now for name in STALE) and bool(await told())

            await harness.wait_for(cleaned, timeout_s=30, interval_s=1, what="the stale record")
            await asyncio.sleep(8)  # eight passes more: nothing may create a copy
            copies_while_off = await cloud_copies(apis, namespace, new_uid)
            events = await told()

        # 4. Bursting on: decided afresh, it bursts from attempt 1 and completes once.
        async with harness.running_federation(
            sandbox.kubeconfig, instance=instance, namespaces=[namespace], settings=settings
        ):

            async def done() -> bool:
                job = await onprem.get("Job", NAME, namespace)
                return job is not None and harness.finished(job)

            await harness.wait_for(done, timeout_s=120, interval_s=1, what="the new Job to end")
            await invariants.wait_no_orphans(apis, [namespace], instance, timeout_s=60)
        final = await onprem.get("Job", NAME, namespace)
        assert final is not None
        record = record_in(final["metadata"]["annotations"])
        copies_after = await cloud_copies(apis, namespace, new_uid)
        old_copies = await cloud_copies(apis, namespace, old_uid)
    finally:
        await harness.delete_cloud_namespaces(sandbox, [namespace])

    took = time.monotonic() - started
    print(f"\n{took:.0f} s; old record {old_record}; new record {record}; event {events}")
    assert copies_while_off == [], "a copy of the re-created Job with no decision"
    assert len(events) == 1
    assert events[0]["type"] == "Warning"
    assert events[0]["involvedObject"]["uid"] == new_uid
    assert old_uid in events[0]["message"]
    assert (record["uid"], record["attempt"], record["phase"]) == (new_uid, 1, "done")
    assert record["placed_at"] > old_record["placed_at"]
    assert copies_after == [], "collected once done"
    assert old_copies == [], "the old Job's copy is collected"
    invariants.check_one_terminal_state([final])
