"""A watch that gets `410 Gone` from the real apiserver relists and keeps the cache right (R8).

The unit tests check that a 410 is translated into `Gone`; here the on-prem apiserver itself
answers 410. The test compacts the on-prem etcd and restarts the on-prem apiserver (so its watch
cache starts at the current revision: the anchors' "etcd compaction or API-server restart"),
then makes the reflector's first watch start from resourceVersion "1" (the race of a list whose
version expires before the watch starts). Expected: the reflector logs `watch_expired`,
relists, watches again, and its cache then follows creations and deletions.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from structlog.testing import capture_logs

from federator import sandbox as sandbox_api
from federator.kube import clients
from federator.kube.watching import Reflector, Resource
from federator.sandbox import SandboxEnv
from tests import federation_harness as harness
from tests import invariants

pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(240)]

ONPREM_ETCD = "http://127.0.0.1:16600"  # the sandbox's on-prem etcd client URL (plain HTTP)


def compact_and_restart_onprem(sandbox: SandboxEnv) -> None:
    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            ONPREM_ETCD + path, data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer

    revision = post("/v3/kv/range", {"key": "YQ=="})["header"]["revision"]
    post("/v3/kv/compaction", {"revision": revision, "physical": True})
    try:
        assert sandbox_api.stop_component("onprem", "apiserver", root=sandbox.root)
    finally:
        sandbox_api.start_component("onprem", "apiserver", root=sandbox.root)


async def test_a_watch_answered_410_gone_relists_and_follows_changes_again(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str]
) -> None:
    await asyncio.to_thread(compact_and_restart_onprem, sandbox)
    namespace = namespace_factory("onprem", prefix="relgone")
    onprem = harness.apis(sandbox)["onprem"]
    await onprem.apply(harness.gpu_job("before", namespace, gpus=1, seconds=5, queue=None))
    cluster = await clients.connect(sandbox.kubeconfig, "onprem")
    reflector = Reflector(
        cluster,
        Resource("Job", f"/apis/batch/v1/namespaces/{namespace}/jobs"),
        watch_timeout_s=20,
        max_backoff_s=2.0,
    )
    real_relist = reflector.relist

    async def list_then_expire() -> None:
        await real_relist()
        if reflector.relists == 1:
            reflector.resource_version = "1"  # the version is gone before the watch starts

    reflector.relist = list_then_expire  # type: ignore[method-assign]
    with capture_logs() as logs:
        task = asyncio.create_task(reflector.run())
        try:

            async def relisted() -> bool:
                return reflector.relists >= 2 and reflector.synced

            await harness.wait_for(relisted, timeout_s=30, interval_s=0.2, what="a relist")
            await onprem.apply(harness.gpu_job("after", namespace, gpus=1, seconds=5, queue=None))

            async def sees_after() -> bool:
                return f"{namespace}/after" in reflector.items

            await harness.wait_for(sees_after, timeout_s=30, interval_s=0.2, what="the watch")
            await onprem.delete("Job", "before", namespace)

            async def forgot_before() -> bool:
                return f"{namespace}/before" not in reflector.items

            await harness.wait_for(forgot_before, timeout_s=30, interval_s=0.2, what="a delete")
        finally:
            await invariants.cancel(task)
            await cluster.close()
    events = [entry["event"] for entry in logs]
    print(f"\nrelists: {reflector.relists}; events: {sorted(set(events))}")
    assert "watch_expired" in events, events
