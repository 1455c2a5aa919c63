"""`sandbox up` frees on-prem quota that a Workload stuck in deletion would hold for ever."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest

from federator.sandbox import SandboxEnv
from federator.sandbox.kubeapi import KubeApi
from federator.sandbox.kueue import release_stuck_workloads
from federator.sandbox.layout import Layout

pytestmark = [pytest.mark.sandbox]

HOLD = "test.federator.io/hold"  # a finalizer nobody removes, as Kueue's when it was down


def orphan_workload(name: str, namespace: str) -> dict[str, object]:
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "Workload",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "finalizers": [HOLD],
            "ownerReferences": [
                {"apiVersion": "batch/v1", "kind": "Job", "name": "gone", "uid": str(uuid.uuid4())}
            ],
        },
        "spec": {
            "queueName": "nowhere",
            "podSets": [
                {
                    "name": "main",
                    "count": 1,
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [
                                {
                                    "name": "c",
                                    "image": "x",
                                    "resources": {"requests": {"cpu": "1"}},
                                }
                            ],
                        }
                    },
                }
            ],
        },
    }


async def test_a_workload_stuck_in_deletion_without_its_job_is_released(
    sandbox: SandboxEnv, namespace_factory: Callable[..., str]
) -> None:
    namespace = namespace_factory("onprem", prefix="stuck")
    api = KubeApi.for_site(Layout(sandbox.root), "onprem")
    await api.apply(orphan_workload("orphan", namespace))
    await api.delete("Workload", "orphan", namespace)
    deleting = await api.get("Workload", "orphan", namespace)
    assert deleting is not None
    assert deleting["metadata"]["deletionTimestamp"]
    said: list[str] = []

    young = await release_stuck_workloads(api, said.append)
    assert f"{namespace}/orphan" not in young, "a deletion younger than a minute is Kueue's"
    released = await release_stuck_workloads(api, said.append, now=time.time() + 120)
    assert f"{namespace}/orphan" in released
    assert await api.get("Workload", "orphan", namespace) is None
    assert any("orphan" in line for line in said)
