"""The preemption ledger survives restarts in a ConfigMap on the real on-prem apiserver."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio import config as kube_config

from federator.prices.preemption import PreemptionLedger
from federator.prices.preemption_store import (
    DATA_KEY,
    ConfigMapPreemptionStore,
    CorruptLedger,
)
from federator.sandbox import SandboxEnv

pytestmark = pytest.mark.sandbox

DAY = 86400.0


@pytest.fixture
async def onprem(sandbox: SandboxEnv) -> AsyncIterator[Any]:
    api = await kube_config.new_client_from_config(
        config_file=str(sandbox.kubeconfig), context="onprem", persist_config=False
    )
    try:
        yield api
    finally:
        await api.close()


def evidence(pool: str, preemptions: int, day: float = 3) -> PreemptionLedger:
    return PreemptionLedger().record(pool, preemptions=preemptions, job_hours=5.0,
                                     node_hours=10.0, gpu_hours=80.0, at=day * DAY)  # fmt: skip


async def test_the_ledger_survives_a_restart(
    onprem: Any, namespace_factory: Callable[..., str]
) -> None:
    namespace = namespace_factory(prefix="prices")
    first = ConfigMapPreemptionStore(onprem, namespace=namespace)
    assert await first.load() == PreemptionLedger()  # no ConfigMap yet: the priors only
    ledger = evidence("cloud-a/a100-spot", 2)
    await first.save(ledger)
    ledger = ledger.record("cloud-a/a100-spot", preemptions=1, job_hours=1, node_hours=2,
                           gpu_hours=16, at=4 * DAY)  # fmt: skip
    await first.save(ledger)  # a replace with the resourceVersion just written

    restarted = ConfigMapPreemptionStore(onprem, namespace=namespace)
    assert await restarted.load() == ledger
    stored = await client.CoreV1Api(onprem).read_namespaced_config_map(
        "federator-preemption-stats", namespace
    )
    assert stored.metadata.labels["app.kubernetes.io/managed-by"] == "federator"
    assert PreemptionLedger.from_json(stored.data[DATA_KEY]) == ledger


async def test_two_writers_conflict_and_merge_without_losing_evidence(
    onprem: Any, namespace_factory: Callable[..., str]
) -> None:
    namespace = namespace_factory(prefix="prices")
    one = ConfigMapPreemptionStore(onprem, namespace=namespace)
    two = ConfigMapPreemptionStore(onprem, namespace=namespace)
    await one.load()
    await two.load()
    await one.save(evidence("cloud-a/a100-spot", 2))
    await two.save(evidence("cloud-b/h100-spot", 5))  # 409 on create -> re-read, merge, replace
    merged = await ConfigMapPreemptionStore(onprem, namespace=namespace).load()
    assert sorted(merged.pools) == ["cloud-a/a100-spot", "cloud-b/h100-spot"]
    totals = merged.totals("cloud-b/h100-spot")
    assert totals is not None
    assert totals.preemptions == 5


async def test_unreadable_content_is_never_overwritten_silently(
    onprem: Any, namespace_factory: Callable[..., str]
) -> None:
    namespace = namespace_factory(prefix="prices")
    await client.CoreV1Api(onprem).create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="federator-preemption-stats"),
            data={DATA_KEY: "{not json"},
        ),
    )
    with pytest.raises(CorruptLedger, match="delete the ConfigMap"):
        await ConfigMapPreemptionStore(onprem, namespace=namespace).load()
