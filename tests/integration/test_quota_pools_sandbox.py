"""Two teams' ClusterQueues on the real Kueue: a job waits for its own queue's quota.

Team A and team B each get a ClusterQueue of 8 GPUs (no cohort) and a LocalQueue `q`. A's queue
is taken by a 10-minute job; B's is idle, and so is the sandbox's shared 16-GPU queue. A second
A job is then pending in Kueue. `federator plan --json` must see it wait for A's quota (about
ten minutes), not start at once on quota that other queues have free: summed into one
cluster-wide pool, as before, it read "starts on-prem now" and was never priced for the cloud.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from federator.sandbox import SandboxEnv, run_sync
from federator.sandbox.kubeapi import KubeApi
from federator.sandbox.layout import Layout
from tests import federation_harness as harness
from tests.support import configs

pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(420)]

BLOCKER_S = 600.0


def cluster_queue(name: str, gpus: int) -> dict[str, Any]:
    """A ClusterQueue of its own on the sandbox's `gpu` flavor, in no cohort."""
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "ClusterQueue",
        "metadata": {"name": name},
        "spec": {
            "namespaceSelector": {},
            "resourceGroups": [
                {
                    "coveredResources": ["cpu", "memory", "nvidia.com/gpu"],
                    "flavors": [
                        {
                            "name": "gpu",
                            "resources": [
                                {"name": "cpu", "nominalQuota": "64"},
                                {"name": "memory", "nominalQuota": "256Gi"},
                                {"name": "nvidia.com/gpu", "nominalQuota": str(gpus)},
                            ],
                        }
                    ],
                }
            ],
        },
    }


def local_queue(namespace: str, cluster_queue: str) -> dict[str, Any]:
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "LocalQueue",
        "metadata": {"name": "q", "namespace": namespace},
        "spec": {"clusterQueue": cluster_queue},
    }


def plan(config: Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "federator", "plan", "--config", str(config), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def test_a_job_waits_for_its_own_cluster_queues_quota_not_another_teams(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str], tmp_path: Path
) -> None:
    team_a, team_b = namespace_factory(prefix="qpa"), namespace_factory(prefix="qpb")
    queue_a, queue_b = f"{team_a}-cq", f"{team_b}-cq"
    api = KubeApi.for_site(Layout(sandbox.root), "onprem")
    config = configs.scenario_config(tmp_path, instance="pools", namespaces=[team_a, team_b])

    async def set_up() -> None:
        for queue in (queue_a, queue_b):
            await api.apply(cluster_queue(queue, 8))
        await api.apply(local_queue(team_a, queue_a))
        await api.apply(local_queue(team_b, queue_b))
        blocker = harness.gpu_job(
            "blocker",
            team_a,
            gpus=8,
            seconds=BLOCKER_S,
            queue="q",
            labels={"federator.io/burst": "never"},
        )
        await api.apply(blocker)

        async def admitted() -> bool:
            job = await api.get("Job", "blocker", team_a)
            return job is not None and not job["spec"].get("suspend")

        await harness.wait_for(admitted, timeout_s=120, interval_s=0.5, what="A's blocker")
        waiting = harness.gpu_job("waiting", team_a, gpus=8, seconds=3600, queue="q")
        await api.apply(waiting)

    async def tear_down() -> None:
        # The namespaces go with the test (namespace_factory); their Workloads first, so that
        # Kueue lets the ClusterQueues go (it keeps one while a Workload holds its quota).
        for namespace in (team_a, team_b):
            for job in await api.list("Job", namespace):
                await api.delete("Job", job["metadata"]["name"], namespace)
            await api.delete("LocalQueue", "q", namespace)
        for queue in (queue_a, queue_b):
            await api.delete("ClusterQueue", queue)

        async def queues_gone() -> bool:
            return all(
                [await api.get("ClusterQueue", queue) is None for queue in (queue_a, queue_b)]
            )

        await harness.wait_for(queues_gone, timeout_s=120, what="the scenario's ClusterQueues")

    try:
        run_sync(set_up())
        time.sleep(3)  # Kueue has seen the second job and left it pending
        decisions = {d["job_key"]: d for d in plan(config)["decisions"]}
        waiting = decisions[f"{team_a}/waiting"]
        # A's blocker gives its 8 GPUs back in about ten minutes: that is the wait.
        assert BLOCKER_S - 120 < waiting["terms"]["stay_wait_s"] <= BLOCKER_S, waiting
        assert "starts on-prem now" not in waiting["reason"], waiting
        assert f"{team_a}/blocker" not in decisions  # admitted: not pending
    finally:
        run_sync(tear_down())
