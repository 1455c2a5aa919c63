"""`federator status` on the sandbox: what the daemon did shows, read back from Kubernetes.

The daemon (`federator run`, with its leader election) bursts a Kueue job that the full on-prem
queue cannot admit; `federator status` then shows the job on the pool its placement record
names, the daemon's replica as the leader, and the spend of the test's tenant. A pool block
written through the pool block store (as the federation writes one after a preemption) shows
in the blocked pools with its cause and job.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from federator.federation.blocks import BlockCause, PoolBlock, PoolBlocks
from federator.kube import clients
from federator.kube.pool_block_store import ConfigMapPoolBlockStore
from federator.sandbox import SandboxEnv, run_sync
from tests import federation_harness as harness
from tests.support import configs
from tests.support.daemon import FEDERATOR, REPO, Daemon, daemons, wait_until

pytestmark = pytest.mark.sandbox


def status(config: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FEDERATOR), "status", "--config", str(config), *flags],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def status_json(config: Path, *flags: str) -> dict[str, Any]:
    done = status(config, "--json", *flags)
    assert done.returncode == 0, done.stderr
    shown: dict[str, Any] = json.loads(done.stdout)
    return shown


@pytest.mark.timeout(600)
def test_status_shows_the_daemons_burst_its_lease_and_a_blocked_pool(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str], tmp_path: Path
) -> None:
    namespace = namespace_factory(prefix="status", local_queue="q")
    instance = harness.instance_name()

    def state_in_namespace(config: dict[str, Any]) -> None:
        config["state_namespace"] = namespace  # the Lease, spend book and blocks live here

    config = configs.scenario_config(
        tmp_path, instance=instance, namespaces=[namespace], edit=state_in_namespace
    )
    onprem = harness.apis(sandbox)["onprem"]
    run_sync(harness.fill_onprem(onprem, namespace, queue="q", seconds=300))
    for index in range(2):
        job = harness.gpu_job(f"train-{index}", namespace, gpus=8, seconds=240, queue="q")
        run_sync(onprem.apply(job))

    def placed() -> dict[str, dict[str, Any]]:
        found = {}
        for index in range(2):
            record = run_sync(harness.job_record(onprem, namespace, f"train-{index}"))
            if record and record["phase"] == "placed":
                found[f"{namespace}/train-{index}"] = record
        return found

    with daemons(Daemon(config, tmp_path / "daemon.log")):
        wait_until(lambda: bool(placed()), timeout_s=240, what="the daemon to burst a job")
        records = placed()
        shown = status_json(config)
        asked = status_json(config, "--clouds")  # each cloud's copies, read from the clouds

        until = time.time() + 600
        blocks = PoolBlocks(
            {("cloud-b", "h100-spot"): PoolBlock(until, BlockCause.PREEMPTION, f"{namespace}/x")}
        )

        async def write_block() -> None:
            cluster = await clients.connect(sandbox.kubeconfig, "onprem")
            try:
                store = ConfigMapPoolBlockStore(
                    cluster, namespace=namespace, name=f"{instance}-pool-blocks"
                )
                await store.load()  # the daemon may have written the ConfigMap already
                await store.save(blocks, now=time.time())
            finally:
                await cluster.close()

        run_sync(write_block())
        blocked = status_json(config)
        table = status(config)

    print(table.stdout)  # what an operator saw, for the test log
    jobs = {j["job"]: j for j in shown["jobs"]}
    for key, record in records.items():
        assert key in jobs, f"{key} is placed on {record['cluster']} but status does not show it"
        assert jobs[key]["placement"] == f"{record['cluster']}/{record['pool']}"
        assert jobs[key]["attempt"] == record["attempt"]
        assert jobs[key]["preemptions"] == record["preemptions"]
    assert all(not k.split("/")[1].startswith("blocker") for k in jobs), "blockers stay on-prem"
    assert (shown["leader"]["holder"] or "").startswith(f"{instance}-"), shown["leader"]
    tenant = {s["scope"]: s for s in shown["spend"] if s["period"] == "this month"}
    assert tenant["tenant:tests"]["cap_usd"] == 20000
    assert tenant["tenant:tests"]["spent_usd"] + tenant["tenant:tests"]["committed_usd"] > 0

    assert "copies" not in shown, "the clouds are asked only with --clouds"
    copies = {c["job"]: c for c in asked["copies"]}
    for key, record in records.items():
        assert key in copies, f"{key}'s copy on {record['cluster']} is not listed: {copies}"
        assert copies[key]["cluster"] == record["cluster"]
        assert copies[key]["fate"] == "the job's copy (record placed)"
        assert copies[key]["state"] in ("Suspended", "Pending", "Running"), copies[key]
    counted = {c["cluster"]: c["copies"] for c in asked["clouds"]}
    for record in records.values():
        assert counted[record["cluster"]] >= 1, asked["clouds"]
    assert all(c["unreachable"] is None for c in asked["clouds"]), asked["clouds"]

    assert [b["placement"] for b in blocked["blocked_pools"]] == ["cloud-b/h100-spot"]
    assert blocked["blocked_pools"][0]["cause"] == "preemption"
    assert blocked["blocked_pools"][0]["job"] == f"{namespace}/x"
    assert table.returncode == 0, table.stderr
    assert "cloud-b/h100-spot" in table.stdout
    assert "in 9m" in table.stdout or "in 10m" in table.stdout
    for key in records:
        assert key in table.stdout
