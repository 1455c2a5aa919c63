"""Keeps the federation's pool blocks (`PoolBlocks`) in a ConfigMap on the on-prem cluster.

State lives in Kubernetes objects, never only in memory: without this, a restart or a leader
hand-over forgot that a pool had just preempted a job (or never started it), and the next pass
could place the re-queued job straight back there.

A ConfigMap of its own (`<instance>-pool-blocks`, key `blocks.json`), not a key in the spend
book's or the preemption ledger's: both of those stores replace their whole object on each
write, so a key of ours in them would vanish at their next save (and theirs at ours); and the
blocks are the decisions of one federator instance, like its spend book, while the preemption
ledger is shared evidence about the pools. The object is tiny: one entry per blocked pool,
and blocks that have ended are dropped at every write.

Only the leader writes (the federation loop asks its write fence first). A write carries the
resourceVersion last read; a 409 (another replica wrote in between, around a hand-over, or
created the object first) is resolved by re-reading, merging (per pool, the later block wins:
both writers only ever block) and writing again, so a save is idempotent and loses no block.
Content that cannot be read is logged as an error naming the object and read as no blocks:
refusing to start would stop every burst, while a pool left unblocked only risks one more
preemption there. The next save replaces the bad content.
"""

from __future__ import annotations

import structlog

from federator.federation.blocks import PoolBlocks
from federator.kube import errors as kube_errors
from federator.kube.clients import Cluster
from federator.kube.configmap_object import VersionedConfigMap

log = structlog.get_logger(__name__)

DATA_KEY = "blocks.json"
CONFLICT_RETRIES = 3


class ConfigMapPoolBlockStore:
    """`PoolBlockStore` in ConfigMap `name` of `namespace` (created on the first save)."""

    def __init__(self, cluster: Cluster, *, namespace: str, name: str) -> None:
        self._object = VersionedConfigMap(cluster, namespace=namespace, name=name, key=DATA_KEY)

    @property
    def where(self) -> str:
        return self._object.where

    async def load(self) -> PoolBlocks:
        text = await self._object.read()
        if text is None:
            return PoolBlocks()
        try:
            return PoolBlocks.from_json(text)
        except ValueError as error:
            log.error(
                "pool_blocks_unreadable",
                configmap=self.where,
                key=DATA_KEY,
                error=str(error),
                hint="every pool starts unblocked; the next block written replaces the content",
            )
            return PoolBlocks()

    async def save(self, blocks: PoolBlocks, *, now: float) -> PoolBlocks:
        pending = blocks.active(now)
        for _ in range(CONFLICT_RETRIES):
            try:
                await self._object.write(pending.to_json())
                return pending
            except (kube_errors.Conflict, kube_errors.AlreadyExists):
                # Someone wrote in between: keep their blocks too (`load` takes the version).
                pending = (await self.load()).merged(blocks).active(now)
                log.info("pool_blocks_write_conflicted", configmap=self.where)
        await self._object.write(pending.to_json())
        return pending
