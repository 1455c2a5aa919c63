"""Pool blocks on the real sandbox: kept in a ConfigMap, so a restart does not forget them.

1. The store on a real apiserver: created, read back by a new process, merged over a 409,
   unreadable content read as no blocks (loudly).
2. A restart right after a preemption: the copy of a plain Job (only federator can run it)
   loses its node on cloud-a/a100-spot; the federation re-queues it (backing off 30 s) and is
   stopped; a new federation, over new connections and the same ConfigMap, places the job's
   next attempt on cloud-a/a100-ondemand. Before, the block lived only in memory and the new
   process put the job straight back on a100-spot, its cheapest pool.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import structlog.testing

from federator.federation import Federation, FederationSettings
from federator.federation.blocks import BlockCause, PoolBlock, PoolBlocks
from federator.kube import clients
from federator.kube.pool_block_store import DATA_KEY, ConfigMapPoolBlockStore
from federator.sandbox import SandboxEnv
from tests import federation_harness as harness

pytestmark = [pytest.mark.sandbox]

PLAIN = {"federator.io/burst": "allow"}
STORE = "fed-pool-blocks"


def blocks(now: float, **until_in_s: float) -> PoolBlocks:
    return PoolBlocks(
        {
            ("cloud-a", pool): PoolBlock(now + s, BlockCause.PREEMPTION, f"ns/{pool}")
            for pool, s in until_in_s.items()
        }
    )


async def test_the_blocks_survive_a_new_process_a_conflicting_writer_and_bad_content(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str]
) -> None:
    namespace = namespace_factory("onprem", prefix="blocks")
    cluster = await clients.connect(sandbox.kubeconfig, "onprem")
    now = 1_800_000_000.0
    try:
        first = ConfigMapPoolBlockStore(cluster, namespace=namespace, name=STORE)
        second = ConfigMapPoolBlockStore(cluster, namespace=namespace, name=STORE)
        assert await first.load() == PoolBlocks(), "no ConfigMap yet: no blocks"
        assert await second.load() == PoolBlocks()
        await first.save(blocks(now, spot=600, gone=-1), now=now)
        assert await ConfigMapPoolBlockStore(cluster, namespace=namespace, name=STORE).load() == (
            blocks(now, spot=600)
        ), "a new process reads the block back; the ended one was never written"

        # `second` still thinks there is no ConfigMap: its create is a 409, it re-reads and
        # merges; on a100-spot the later block wins.
        await second.save(blocks(now, spot=300, ondemand=900), now=now)
        expected = blocks(now, spot=600, ondemand=900)
        assert await ConfigMapPoolBlockStore(cluster, namespace=namespace, name=STORE).load() == (
            expected
        )
        await first.save(blocks(now, spot=600), now=now)  # a stale resourceVersion: a PUT 409
        third = ConfigMapPoolBlockStore(cluster, namespace=namespace, name=STORE)
        assert await third.load() == expected

        api = harness.apis(sandbox)["onprem"]
        await api.request(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/configmaps/{STORE}",
            body={"data": {DATA_KEY: "not json"}},
            content_type="application/merge-patch+json",
        )
        with structlog.testing.capture_logs() as logged:
            assert await third.load() == PoolBlocks()
        assert [(e["event"], e["configmap"]) for e in logged] == [
            ("pool_blocks_unreadable", f"{namespace}/{STORE}")
        ]
    finally:
        await cluster.close()


@contextlib.asynccontextmanager
async def federation_with_blocks(
    kubeconfig: Path, *, instance: str, namespace: str, settings: FederationSettings
) -> AsyncIterator[Federation]:
    """The harness's federation over cloud-a's two A100 pools, keeping its pool blocks in
    ConfigMap `STORE` of the test's namespace (a new process: new connections, new store)."""
    async with harness.running_federation(
        kubeconfig,
        instance=instance,
        namespaces=[namespace],
        settings=settings,
        policy=harness.sandbox_policy(),
        offers=[o for o in harness.sandbox_offers() if o.cluster == "cloud-a"],
        cloud_names=["cloud-a"],
        pool_blocks_in=(namespace, STORE),
    ) as running:
        yield running.federation


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_a_restart_after_a_preemption_does_not_place_the_job_on_the_blocked_pool(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str]
) -> None:
    namespace = namespace_factory("onprem", prefix="blocked")
    apis = harness.apis(sandbox)
    onprem = apis["onprem"]
    instance = harness.instance_name()
    # A 30 s backoff: the re-queued job waits long enough for the first process to be stopped.
    settings = FederationSettings(
        instance=instance,
        interval_s=2.0,
        gc_grace_s=5.0,
        replace_backoff_s=30.0,
        block_pool_for_s=600.0,
    )
    deleted_node = False
    record: dict[str, object] | None = None
    try:
        async with federation_with_blocks(
            sandbox.kubeconfig, instance=instance, namespace=namespace, settings=settings
        ):
            await onprem.apply(
                harness.gpu_job("victim", namespace, gpus=8, seconds=60, queue=None, labels=PLAIN)
            )
            uid = (await onprem.get("Job", "victim", namespace))["metadata"]["uid"]
            node: list[str] = []

            async def running_on_spot() -> bool:
                found = await harness.job_record(onprem, namespace, "victim")
                if not found or found["phase"] != "placed":
                    return False
                assert found["pool"] == "a100-spot", "the cheapest pool first"
                pods = await harness.copy_pods(apis["cloud-a"], namespace, uid)
                node[:] = [
                    p["spec"]["nodeName"] for p in pods if p["status"].get("phase") == "Running"
                ]
                return bool(node)

            await harness.wait_for(running_on_spot, timeout_s=120, what="the copy to run")
            await apis["cloud-a"].delete("Node", node[0])
            deleted_node = True

            async def requeued() -> bool:
                found = await harness.job_record(onprem, namespace, "victim")
                return bool(found and found["phase"] == "requeued")

            await harness.wait_for(requeued, timeout_s=120, interval_s=0.5, what="the requeue")
        # The first process is gone; its block is in the ConfigMap, nowhere else.
        cluster = await clients.connect(sandbox.kubeconfig, "onprem")
        try:
            kept = await ConfigMapPoolBlockStore(cluster, namespace=namespace, name=STORE).load()
        finally:
            await cluster.close()
        block = kept.pools[("cloud-a", "a100-spot")]
        assert (block.cause, block.job) == (BlockCause.PREEMPTION, f"{namespace}/victim")

        async with federation_with_blocks(
            sandbox.kubeconfig, instance=instance, namespace=namespace, settings=settings
        ) as restarted:

            async def replaced() -> bool:
                found = await harness.job_record(onprem, namespace, "victim")
                return bool(found and found["attempt"] >= 2 and found["phase"] == "placed")

            await harness.wait_for(replaced, timeout_s=120, what="the job to be placed again")
            record = await harness.job_record(onprem, namespace, "victim")
            blocked_until = restarted.blocked_until
    finally:
        await harness.delete_cloud_namespaces(sandbox, [namespace])
        if deleted_node:
            await harness.restore_nodes(sandbox, "cloud-a")

    assert record is not None
    print(f"\nblocked until {block.until:.0f} ({block.cause} of {block.job}); now {record}")
    assert (record["cluster"], record["pool"], record["attempt"]) == ("cloud-a", "a100-ondemand", 2)
    assert "cloud-a/a100-spot" in record["history"]  # type: ignore[operator]
    assert blocked_until == {("cloud-a", "a100-spot"): block.until}, "read from the ConfigMap"
