"""Store keys kept in a Kubernetes Secret rotate under a running daemon (issue 9: "credentials
rotated while running", for `credentials: {kubernetes_secret: ...}`).

cloud-a's store is a SeaweedFS of the scenario's own (`tests/support/s3server.py`, free ports),
so the shared stores' keys never change. Its keys live in a Secret in the scenario's namespace
on the sandbox's on-prem apiserver (the policy's `state_namespace`). While `federator run`
syncs model versions back from that store:

1. the store's identity is rotated (restart with new keys: the old ones are refused from then
   on) and the Secret is updated; the SAME daemon process must sync the next version back with
   the new keys; the delay from the Secret update to the daemon reading it
   (`store_secret_changed`) and to the version being published on-prem is measured. A copy
   engine built in this process before the rotation (`Stores` with the daemon's Secret reader,
   `federator.store_secrets`) copies a dataset with the new keys too (lean GET/PUT path);
2. the Secret is then deleted: the daemon must warn (`store_secret_unreadable`, naming the
   Secret), keep the keys it has and keep syncing (the next version is synced back); when the
   Secret is back, it says so (`store_secret_readable_again`).

No secret key value may appear in the daemon's log. Objects are checked with plain boto3.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from federator import policy
from federator.kube import clients
from federator.sandbox import SandboxEnv
from federator.sandbox.kubeapi import KubeApi
from federator.sandbox.layout import Layout
from federator.storage.endpoints import Endpoint, Location
from federator.storage.stores import Stores
from federator.store_secrets import StoreSecrets
from tests.reliability import checks
from tests.reliability.test_daemon_sync_faults import (
    MiB,
    new_keys,
    policy_copy,
    publish,
    random_file,
    registry_state,
    rotated_store_policy,
    wait_progress,
)
from tests.support.daemon import Daemon
from tests.support.s3server import OwnSeaweed

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.flaky(reruns=0),  # the figures reported must come from the one run
]

SECRET = "cloud-a-s3-keys"


def secret_body(namespace: str, keys: tuple[str, str]) -> dict[str, Any]:
    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET, "namespace": namespace},
        "data": {"access_key_id": b64(keys[0]), "secret_access_key": b64(keys[1])},
    }


async def put_secret(api: KubeApi, namespace: str, keys: tuple[str, str]) -> None:
    """Create or replace the Secret, as an operator's `kubectl apply` would."""
    path = f"/api/v1/namespaces/{namespace}/secrets"
    existing = await api.request("GET", path, params={"fieldSelector": f"metadata.name={SECRET}"})
    if existing.get("items"):
        await api.request("PUT", f"{path}/{SECRET}", body=secret_body(namespace, keys))
    else:
        await api.request("POST", path, body=secret_body(namespace, keys))


def logged_after(daemon: Daemon, event: str, lines_before: int) -> dict[str, Any] | None:
    """The first `event` the daemon logged after its first `lines_before` log events."""
    return next((e for e in daemon.log_events()[lines_before:] if e.get("event") == event), None)


async def wait_logged(daemon: Daemon, event: str, lines_before: int, timeout_s: float) -> float:
    """Seconds until `event` is in the daemon's log (after `lines_before` events)."""
    started = time.monotonic()
    await wait_progress(
        lambda: logged_after(daemon, event, lines_before) is not None,
        timeout_s=timeout_s,
        what=f"{event} in the daemon's log",
        daemon=daemon,
    )
    return time.monotonic() - started


async def test_store_keys_in_a_secret_rotate_without_a_restart(
    sandbox: SandboxEnv,
    namespace_factory: Callable[..., str],
    bucket_factory: Callable[..., str],
    tmp_path: Path,
) -> None:
    namespace = namespace_factory("onprem", prefix="relsecrot")
    registry_bucket = bucket_factory("onprem", prefix="relreg")
    staging_b = bucket_factory("cloud-b", prefix="relstgb")
    source_bucket = bucket_factory("onprem", prefix="relsrc")
    onprem = sandbox.boto3_client("onprem")
    api = KubeApi.for_site(Layout(sandbox.root), "onprem")
    old, new = new_keys(), new_keys()
    await put_secret(api, namespace, old)
    small = {"model.bin": random_file(tmp_path / "model.bin", 2 * MiB)}
    figures: dict[str, Any] = {}
    with OwnSeaweed(tmp_path / "own-s3", *old) as store:
        await asyncio.to_thread(store.client().create_bucket, Bucket="rotated")

        def staging_with(keys: tuple[str, str]) -> Location:
            endpoint = Endpoint("cloud-a", store.url, access_key_id=keys[0],
                                secret_access_key=keys[1])  # fmt: skip
            return Location(endpoint, "rotated", "staging/")

        await asyncio.to_thread(publish, staging_with(old), store.client(), "gpt", "v1", small)

        own_store = rotated_store_policy(
            store.url,
            {"kubernetes_secret": {"name": SECRET}},  # in the state namespace
            registry_bucket=registry_bucket,
            staging_b=staging_b,
            source_bucket=source_bucket,
        )
        config, _ = policy_copy(tmp_path, namespace, edit=own_store)
        # A copy engine as the daemon builds it, with the daemon's Secret reader, made before
        # the rotation and used after it.
        kube = await clients.connect(sandbox.kubeconfig, "onprem", name="onprem")
        daemon = Daemon(config, tmp_path / "d.log")
        try:

            async def read(ns: str, name: str) -> dict[str, str]:
                return await clients.read_secret(kube, ns, name)

            secrets = StoreSecrets(read, asyncio.get_running_loop(), default_namespace=namespace)
            await secrets.load(None, SECRET)
            copier = Stores(policy.load_policy(config), read_secret=secrets).dataset_copier(
                "rotset", "cloud-a"
            )
            onprem.put_object(Bucket=source_bucket, Key="rotset/a", Body=os.urandom(3 * MiB))
            first_copy = await asyncio.to_thread(copier.run)

            def published(version: str) -> bool:
                state = registry_state(onprem, registry_bucket, "registry/", "gpt")
                return version in state["versions"]

            daemon.start()
            await wait_progress(lambda: published("v1"), timeout_s=120, what="v1 synced back",
                                daemon=daemon)  # fmt: skip
            pid = daemon.pid

            # -- 1. rotation: the server takes only the new keys, then the Secret follows
            await asyncio.to_thread(store.rotate, *new)
            with pytest.raises(ClientError) as refused:
                await asyncio.to_thread(store.client(old).list_buckets)
            await asyncio.to_thread(publish, staging_with(new), store.client(new), "gpt", "v2",
                                    small)  # fmt: skip
            seen = len(daemon.log_events())
            await put_secret(api, namespace, new)
            updated_at = time.monotonic()
            figures["read_s"] = await wait_logged(daemon, "store_secret_changed", seen, 60)
            await wait_progress(lambda: published("v2"), timeout_s=90, what="v2 synced back",
                                daemon=daemon)  # fmt: skip
            figures["v2_published_s"] = time.monotonic() - updated_at
            onprem.put_object(Bucket=source_bucket, Key="rotset/b", Body=os.urandom(20 * MiB))
            copy_started = time.monotonic()
            second_copy = await asyncio.to_thread(copier.run)
            figures["copy_s"] = time.monotonic() - copy_started
            replica = checks.Place(store.client(new), "rotated", "rotset/")
            expected = checks.Place(onprem, source_bucket, "rotset/").digests()
            checks.check_replica_equals(expected, replica)

            # -- 2. the Secret cannot be read for a while: the keys in hand are kept
            seen = len(daemon.log_events())
            await api.request("DELETE", f"/api/v1/namespaces/{namespace}/secrets/{SECRET}")
            figures["warned_s"] = await wait_logged(daemon, "store_secret_unreadable", seen, 60)
            warning = logged_after(daemon, "store_secret_unreadable", seen)
            await asyncio.to_thread(publish, staging_with(new), store.client(new), "gpt", "v3",
                                    small)  # fmt: skip
            await wait_progress(lambda: published("v3"), timeout_s=90,
                                what="v3 synced back while the Secret is gone",
                                daemon=daemon)  # fmt: skip
            seen = len(daemon.log_events())
            await put_secret(api, namespace, new)
            await wait_logged(daemon, "store_secret_readable_again", seen, 60)
            same_process = daemon.alive() and daemon.pid == pid
        finally:
            daemon.stop()
            await kube.close()
    final = registry_state(onprem, registry_bucket, "registry/", "gpt")
    print(
        f"\nold keys refused with {refused.value.response['Error']['Code']}; after the Secret "
        f"update: read by the daemon in {figures['read_s']:.1f} s, v2 published on-prem "
        f"{figures['v2_published_s']:.1f} s after it; same process: {same_process}; copies "
        f"with one engine: before {first_copy.copied} ok={first_copy.ok}, after "
        f"{second_copy.copied} ok={second_copy.ok} ({figures['copy_s']:.1f} s); Secret deleted: "
        f"warned after {figures['warned_s']:.1f} s ({warning}), v3 synced back anyway; "
        f"registry {final}"
    )
    assert first_copy.ok, first_copy.failures
    assert second_copy.ok, second_copy.failures
    assert second_copy.copied == 1
    assert same_process, "the rotation must take effect without a restart"
    assert warning is not None
    assert warning["level"] == "warning"
    assert warning["name"] == f"{namespace}/{SECRET}"
    assert final["versions"] == ["v1", "v2", "v3"]
    assert not final["problems"], final["problems"]
    checks.check_no_secret_in({"daemon log": daemon.log_text()}, [old[1], new[1]])
