"""A dataset added, moved and removed by policy reloads, copied by the daemon's own wiring
(`_assemble`: Stores, Replicator, data gate) between the sandbox's real S3 servers, without a
restart. The cluster clients are fakes: no Kubernetes is involved."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from federator import errors
from federator.sandbox import SandboxEnv
from tests.support import configs
from tests.unit.daemon.test_reload_datasets import Daemon

pytestmark = pytest.mark.sandbox


def keys(sandbox: SandboxEnv, store: str, bucket: str, prefix: str) -> list[str]:
    listed = sandbox.boto3_client(store).list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(entry["Key"] for entry in listed.get("Contents", []))


async def test_a_reloaded_dataset_is_copied_to_its_new_locations_without_a_restart(
    sandbox: SandboxEnv, bucket_factory: Callable[..., str], tmp_path: Path
) -> None:
    source, target = bucket_factory("onprem", prefix="reloadsrc"), bucket_factory("cloud-a")
    onprem = sandbox.boto3_client("onprem")
    for name in ("a.bin", "b.bin"):
        onprem.put_object(Bucket=source, Key=f"data/{name}", Body=name.encode() * 1000)
    running = Daemon(tmp_path, configs.sandbox_config())
    replicator = running.parts.replicator

    def add(raw: dict[str, Any]) -> None:
        raw["datasets"].append(
            {
                "name": "reloaded",
                "source": f"s3://{source}/data/",
                "replicas": {"cloud-a": f"s3://{target}/first/"},
            }
        )

    await running.reload(add)
    assert not await running.gate("reloaded", "cloud-a")  # was: unknown dataset 'reloaded'
    assert (await replicator.sync_now("reloaded", "cloud-a")).ready
    assert keys(sandbox, "cloud-a", target, "first/") == ["first/a.bin", "first/b.bin"]

    def move(raw: dict[str, Any]) -> None:
        raw["datasets"][-1]["replicas"]["cloud-a"] = f"s3://{target}/second/"

    await running.reload(move)
    assert not await running.gate("reloaded", "cloud-a"), "the new location is empty"
    assert (await replicator.sync_now("reloaded", "cloud-a")).ready
    assert keys(sandbox, "cloud-a", target, "second/") == ["second/a.bin", "second/b.bin"]

    def remove(raw: dict[str, Any]) -> None:
        raw["datasets"].pop()

    await running.reload(remove)
    with pytest.raises(errors.UserError, match="unknown dataset or cluster 'reloaded'"):
        await running.gate("reloaded", "cloud-a")
    assert keys(sandbox, "cloud-a", target, "") == [  # nothing was deleted by a reload
        "first/a.bin",
        "first/b.bin",
        "second/a.bin",
        "second/b.bin",
    ]
