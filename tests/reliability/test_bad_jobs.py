"""Jobs that ask for the absurd: the daemon decides safely for them and keeps serving the rest.

With on-prem full, three jobs arrive together: one asks for 1,000 GPUs (more than any pool or
cluster has), one names a dataset the policy does not know in `federator.io/datasets`, and a
normal 4-GPU job as the control. Expected: the control is placed in a cloud (one bad job must
not stall a pass for everyone), the 1,000-GPU job is never placed anywhere, the daemon stays
alive, and /debug/decisions explains each job it decided on.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from federator.sandbox import SandboxEnv
from tests import federation_harness as harness
from tests.support import configs
from tests.support.daemon import Daemon

pytestmark = [pytest.mark.sandbox, pytest.mark.slow, pytest.mark.timeout(400)]


async def test_absurd_jobs_get_a_safe_decision_and_do_not_stall_the_others(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str], tmp_path: Path
) -> None:
    namespace = namespace_factory("onprem", prefix="relbad", local_queue="q")
    onprem = harness.apis(sandbox)["onprem"]

    def settings(config: dict[str, Any]) -> None:
        config["state_namespace"] = namespace
        config["leader_election"]["enabled"] = False

    config = configs.scenario_config(
        tmp_path, instance=f"rel-bad-{namespace[-8:]}", namespaces=[namespace], edit=settings
    )
    daemon = Daemon(config, tmp_path / "d.log").start()
    try:
        await harness.fill_onprem(onprem, namespace, queue="q", seconds=90)
        await onprem.apply(harness.gpu_job("absurd", namespace, gpus=1000, seconds=20, queue="q"))
        await onprem.apply(
            harness.gpu_job(
                "unknown-data",
                namespace,
                gpus=4,
                seconds=20,
                queue="q",
                annotations={"federator.io/datasets": "no-such-dataset=1000000"},
            )
        )
        await onprem.apply(harness.gpu_job("control", namespace, gpus=4, seconds=20, queue="q"))

        async def control_placed() -> bool:
            record = await harness.job_record(onprem, namespace, "control")
            return bool(record and record["phase"] == "placed")

        await harness.wait_for(control_placed, timeout_s=150, what="the control job placed")
        status, text = daemon.get("/debug/decisions?limit=100")
        absurd = await harness.job_record(onprem, namespace, "absurd")
        unknown = await harness.job_record(onprem, namespace, "unknown-data")
        assert daemon.alive(), daemon.log_text()[-2000:]
    finally:
        daemon.stop()
        await harness.delete_cloud_namespaces(sandbox, [namespace])
    decisions = json.loads(text) if status == 200 else []
    decisions = decisions.get("decisions", decisions) if isinstance(decisions, dict) else decisions
    by_job = {d["job_key"].split("/")[-1]: d for d in decisions}
    print(f"\nabsurd: {by_job.get('absurd')}\nunknown-data record: {unknown}")
    assert absurd is None, f"a 1,000-GPU job must not be placed: {absurd}"
    assert "absurd" in by_job, "the daemon must explain its decision on the absurd job"
    assert by_job["absurd"]["kind"] != "burst"
    assert by_job["absurd"]["reason"]
