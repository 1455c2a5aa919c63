"""The data gate: the federation's port to the data, adapted to the replicator and stores.

A job bursts only once its datasets' replicas are ready on the cloud (or at once when the
policy says the copy may run beside it), and its cloud copy is removed only once its outputs
are home in the on-prem registry.
"""

from __future__ import annotations

import asyncio

from federator.daemon.policy_file import PolicyHolder
from federator.federation.ports import DataReadiness
from federator.storage.stores import Stores
from federator.syncing.replication import ReplicaState, Replicator


class DataGate:
    """The federation's view of the data: replicas out before a job starts, outputs back after.

    Datasets go through the `Replicator` (copies run in the background; a job stays gated until
    its replica is complete). Outputs come back by syncing the cloud's registry staging area to
    the on-prem registry; without a registry section there is nothing to bring back.
    """

    def __init__(self, replicator: Replicator, stores: Stores, holder: PolicyHolder) -> None:
        self._replicator = replicator
        self._stores = stores
        self._holder = holder

    async def ensure_replicated(self, dataset: str, cluster: str) -> DataReadiness:
        """Start (or check) the copy. The job may start once the replica is complete, or
        at once when the dataset has `sync_before_start: false` (the copy then runs beside the
        job); while the replica's last copy or listing failed, its status message is the
        problem (it says when the replica is tried again)."""
        status = await self._replicator.ensure_replicated(dataset, cluster)
        failed = status.state is ReplicaState.FAILED
        return DataReadiness(
            may_start=status.ready or not self._waits_for(dataset),
            problem=(status.message or "the last copy failed") if failed else "",
        )

    def _waits_for(self, dataset: str) -> bool:
        try:
            return self._holder.config.dataset(dataset).sync_before_start
        except KeyError:
            return True  # a dataset the policy does not know: the safe way is to wait

    async def outputs_synced(self, job_key: str, cluster: str) -> bool:
        if self._holder.config.registry is None:
            return True
        from federator.storage import registry as registry_edge
        from federator.syncing import manifests

        model = manifests.checkpoint_model(job_key)
        source, target = self._stores.staging(cluster), self._stores.registry()
        report = await asyncio.to_thread(
            registry_edge.sync_back, source, target, only=lambda name: name == model
        )
        # A shutdown that cut the round short left versions in the cloud: not home yet.
        return not report.failures and not report.left_for_next_round
