"""kill -9 at any point: a restarted federator converges to the same state, without duplicates.

The federation runs as its own process (tests/federation_harness.py); the test submits eight
plain suspended Jobs (only federator can run them, so each goes through placement, mirroring
and GC) and four Kueue jobs that overflow the 16-GPU queue (deactivation under crashes), and
kills the process with SIGKILL four times while it works, then lets it finish.
Every job must end Complete exactly once, no job may run twice, and nothing federator created
may be left.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from federator.sandbox import SandboxEnv
from tests import federation_harness as harness
from tests import invariants

pytestmark = [pytest.mark.sandbox, pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
# Plain suspended Jobs: only federator can run them, so every one goes through placement,
# mirroring and GC while the process is being killed.
PLAIN = {"federator.io/burst": "allow"}


def start(sandbox: SandboxEnv, instance: str, namespace: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.federation_harness",
            "--kubeconfig",
            str(sandbox.kubeconfig),
            "--instance",
            instance,
            "--namespaces",
            namespace,
            "--interval",
            "1",
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_kill_9_during_placement_converges_without_duplicates(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str]
) -> None:
    namespace = namespace_factory("onprem", prefix="restart", local_queue="team-a")
    apis = harness.apis(sandbox)
    onprem = apis["onprem"]
    instance = harness.instance_name()
    sampler = invariants.Sampler(apis, frozenset({namespace}), interval_s=0.5)
    sampling = asyncio.create_task(sampler.run())
    process = start(sandbox, instance, namespace)
    kills = 0
    try:
        for i in range(8):
            await onprem.apply(
                harness.gpu_job(f"job-{i}", namespace, gpus=4, seconds=25, queue=None, labels=PLAIN)
            )
        for i in range(4):  # 32 GPUs into the 16-GPU Kueue queue: some wait, some burst
            await onprem.apply(
                harness.gpu_job(f"queued-{i}", namespace, gpus=8, seconds=25, queue="team-a")
            )
        for delay in (3.0, 4.5, 2.0, 6.0):
            await asyncio.sleep(delay)
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            kills += 1
            process = start(sandbox, instance, namespace)

        async def all_done() -> bool:
            jobs = await harness.onprem_jobs(onprem, [namespace])
            return len(jobs) == 12 and all(harness.finished(j) for j in jobs)

        await harness.wait_for(all_done, timeout_s=400, what="every job to finish")
        await invariants.wait_no_orphans(apis, [namespace], instance, timeout_s=90)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        await invariants.cancel(sampling)
        await harness.delete_cloud_namespaces(sandbox, [namespace])

    jobs = await harness.onprem_jobs(onprem, [namespace])
    bursted = [j["metadata"]["name"] for j in jobs if invariants.record_of(j)]
    print(f"\n{kills} kills; bursted: {sorted(bursted)}")
    invariants.check_one_terminal_state(jobs)
    invariants.check_never_two_running(sampler)
    assert {f"job-{i}" for i in range(8)} <= set(bursted), "every plain job is placed"
