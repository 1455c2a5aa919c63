"""Each on-prem quota pool's total and free GPUs are on /metrics, as the pass saw them."""

from __future__ import annotations

from federator import metrics
from federator.core.models import OnPremState, QuotaPool
from federator.federation.cluster_gauges import ClusterGauges
from federator.federation.ports import OnPremView


def sample(pool: str, state: str) -> float | None:
    labels = {"pool": pool, "state": state}
    return metrics.REGISTRY.get_sample_value("federator_onprem_quota_gpus", labels)


def test_each_quota_pools_total_and_free_gpus_are_published() -> None:
    pools = (QuotaPool("cohort/research-qg", 32, 8), QuotaPool("clusterqueue/batch-qg", 8, 0))
    state = OnPremState(total_gpus=40, free_gpus=8, quota_pools=pools)
    ClusterGauges().publish(OnPremView(up=True, synced=True, state=state), {})
    assert sample("cohort/research-qg", "total") == 32
    assert sample("cohort/research-qg", "free") == 8
    assert sample("clusterqueue/batch-qg", "total") == 8
    assert sample("clusterqueue/batch-qg", "free") == 0
    later = OnPremState(total_gpus=40, free_gpus=0, quota_pools=(QuotaPool(pools[0].name, 32, 0),))
    ClusterGauges().publish(OnPremView(up=True, synced=True, state=later), {})
    assert sample("cohort/research-qg", "free") == 0
