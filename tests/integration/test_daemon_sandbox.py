"""`federator run` on the sandbox: an overflowing Kueue queue bursts, every job completes where
its owner submitted it, and the daemon explains itself (metrics, /debug/decisions, Events).

This is the production composition root (`federator.daemon`) end to end, the same process a
Deployment runs: policy file → clients → observe → cost model → burst → mirror → Complete.
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

from federator.replay import kueue_gpu_job
from federator.sandbox import SandboxEnv, run_sync
from federator.sandbox.kubeapi import KubeApi
from federator.sandbox.layout import Layout
from tests.support import configs
from tests.support.daemon import Daemon, daemons, wait_until

pytestmark = pytest.mark.sandbox

JOBS = 8
GPUS = 8
DURATION_S = 20


def gpu_job(namespace: str, index: int) -> dict[str, Any]:
    return kueue_gpu_job(
        name=f"train-{index}", namespace=namespace, queue="q", gpus=GPUS, duration_s=DURATION_S
    )


def state_in(namespace: str) -> Callable[[dict[str, Any]], None]:
    """Keep the daemon's Lease and state objects in the test's own namespace."""

    def edit(config: dict[str, Any]) -> None:
        config["state_namespace"] = namespace

    return edit


def jobs_of(api: KubeApi, namespaces: list[str]) -> list[Any]:
    async def listing() -> list[Any]:
        found: list[Any] = []
        for namespace in namespaces:
            found += await api.list("Job", namespace)
        return found

    return run_sync(listing())


def complete(job: Any) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Complete" and c["status"] == "True" for c in conditions)


def test_the_daemon_bursts_an_overflowing_queue_and_explains_every_decision(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str], tmp_path: Path
) -> None:
    namespaces = [namespace_factory(prefix="dmn", local_queue="q") for _ in range(2)]
    instance = f"e2e-{int(time.time()) % 100000}"
    config = configs.scenario_config(
        tmp_path, instance=instance, namespaces=namespaces, edit=state_in(namespaces[0])
    )
    api = KubeApi.for_site(Layout(sandbox.root), "onprem")

    async def submit() -> None:
        for index in range(JOBS):
            await api.apply(gpu_job(namespaces[index % 2], index))

    with daemons(Daemon(config, tmp_path / "daemon.log")) as (daemon,):
        run_sync(submit())
        wait_until(
            lambda: sum(complete(j) for j in jobs_of(api, namespaces)) == JOBS,
            timeout_s=360,
            what=f"all {JOBS} on-prem Jobs to reach Complete",
        )
        jobs = jobs_of(api, namespaces)
        bursted = [
            j for j in jobs if "federator.io/placement" in (j["metadata"].get("annotations") or {})
        ]
        status, body = daemon.get("/debug/decisions")
        decisions = json.loads(body)
        ready, _ = daemon.get("/readyz")
        burst_total = daemon.metric("federator_decisions_total", decision="burst")
        placed = daemon.metric("federator_placements_total", cluster="cloud-a", outcome="placed")
        placed_b = daemon.metric("federator_placements_total", cluster="cloud-b", outcome="placed")
        leader = daemon.metric("federator_is_leader")
        forecast = {
            name: daemon.metric(f"federator_onprem_wait_{name}_total", gpus="5-8")
            for name in ("forecasts", "forecast_seconds", "real_seconds")
        }

    # 8 jobs x 8 GPUs = 64 GPUs against 16 on-prem GPUs: the queue overflows, some must burst.
    # (How many stay depends on what else holds the shared on-prem queue at the time.)
    assert bursted, f"none of {JOBS} jobs bursted"
    assert all(complete(j) for j in jobs), "every on-prem Job ends Complete"
    assert status == 200
    assert ready == 200
    records = decisions if isinstance(decisions, list) else decisions.get("decisions", [])
    bursts = [d for d in records if d["kind"] == "burst"]
    assert bursts, "the burst decisions are served with their reasons"
    assert all(d["reason"] and d["cluster"] in ("cloud-a", "cloud-b") for d in bursts)
    assert all(d["expected_cost_usd"] > 0 and d["terms"] for d in bursts)
    assert (burst_total or 0) >= len(bursted)
    assert (placed or 0) + (placed_b or 0) >= len(bursted)
    assert leader == 1.0
    # A stay decision's first wait forecast is settled when the job starts on-prem; a burst
    # forgets it. So at most the jobs that ran on-prem count (the ones Kueue admitted before
    # any pass saw them waiting were never forecast).
    print(f"on-prem wait forecasts, 8-GPU jobs: {forecast}")
    assert None not in forecast.values(), "the series exist from the start"
    assert 0 <= (forecast["forecasts"] or 0) <= len(jobs) - len(bursted)
    if forecast["forecasts"]:
        # settled at a later pass than the forecast, so each real wait is at least one interval
        assert (forecast["real_seconds"] or 0) > 0
    else:
        assert forecast["forecast_seconds"] == forecast["real_seconds"] == 0

    events = [
        event
        for namespace in namespaces
        for event in run_sync(api.request("GET", f"/api/v1/namespaces/{namespace}/events"))["items"]
    ]
    bursted_names = {j["metadata"]["name"] for j in bursted}
    explained = [
        e
        for e in events
        if e["involvedObject"].get("name") in bursted_names and "$" in e["message"]
    ]
    assert explained, "a bursted Job carries an Event with the decision's reason and cost"


def test_plan_prints_each_pending_job_with_its_decision_and_reason(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str], tmp_path: Path
) -> None:
    namespaces = [namespace_factory(prefix="pln", local_queue="q")]
    config = configs.scenario_config(tmp_path, instance="plan", namespaces=namespaces)
    api = KubeApi.for_site(Layout(sandbox.root), "onprem")

    async def submit() -> None:
        for index in range(4):
            await api.apply(gpu_job(namespaces[0], index))

    run_sync(submit())
    time.sleep(3)  # let Kueue admit what fits, so the rest is pending
    result = subprocess.run(
        [sys.executable, "-m", "federator", "plan", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "federator plan" in result.stdout
    assert f"{namespaces[0]}/train-" in result.stdout
    assert "Traceback" not in result.stderr
    # Nothing was written: no Job carries a placement.
    for job in jobs_of(api, namespaces):
        assert "federator.io/placement" not in (job["metadata"].get("annotations") or {})
