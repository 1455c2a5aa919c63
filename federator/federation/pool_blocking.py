"""Pool blocking: the pools that get no new job for a while after one lost a copy there.

A preemption or a copy that never started blocks its pool for `block_pool_for_s`: the pool
offers 0 GPUs to the cost model until then. The blocks are a value (`blocks.PoolBlocks`, pure);
this module keeps them over passes and processes: in memory, and in the `PoolBlockStore` so
that a restart or a new leader does not place a job straight back on the pool that just lost
one. The leader writes them (a block the store did not take is written again at the end of
each pass), a follower reads them at every pass.

The federation loop creates one `PoolBlocking`; its requeue blocks a pool, its decision round
asks which offered pools are blocked (`blocked_room`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import structlog

from federator import errors
from federator.core.models import Offer
from federator.federation.blocks import BlockCause, Pool, PoolBlock, PoolBlocks
from federator.federation.ports import OnPremJob, PoolBlockStore

log = structlog.get_logger(__name__)


class PoolBlocking:
    """The pool blocks of this process, loaded from and saved to the store."""

    def __init__(
        self,
        store: PoolBlockStore | None,
        *,
        may_write: Callable[[], bool],
        block_for_s: Callable[[], float],
    ) -> None:
        self.store = store  # fenced by the federation, like every write
        self._may_write = may_write  # the leader reads the store once, a follower each pass
        self._block_for_s = block_for_s  # the settings' `block_pool_for_s` (reloadable)
        self.blocks = PoolBlocks()  # pools that offer 0 GPUs for a while, and why
        self._unsaved = False  # a block the store does not hold yet
        # "" until the blocks are read, then who read them: "follower" or "leader" (see `load`)
        self._read_as = ""

    @property
    def blocked_until(self) -> dict[Pool, float]:
        """Until when each pool offers 0 GPUs (epoch seconds), ended blocks included."""
        return {pool: block.until for pool, block in self.blocks.pools.items()}

    async def block(self, pool: Pool, cause: BlockCause, job: OnPremJob, now: float) -> None:
        """Give the pool no new job for `block_pool_for_s`, in memory and in the store.

        A store that does not answer does not stop the requeue: the block holds in this
        process and is written again at the end of each pass until it is kept."""
        block_for_s = self._block_for_s()
        if block_for_s <= 0:
            return
        block = PoolBlock(now + block_for_s, cause, job.key)
        self.blocks = self.blocks.with_block(pool, block)
        self._unsaved = True
        await self.save(now)

    async def load(self) -> None:
        """Read the pool blocks: the leader once, when it starts to lead (from then on it writes
        them), and a follower at every pass: it writes none, and its decisions (`plan`,
        /debug/decisions, the leader it may become) must avoid what the leader blocked since.
        A failure is retried next pass (the pools this process blocked stay blocked)."""
        leads = self._may_write()
        if self.store is None or (leads and self._read_as == "leader"):
            return
        try:
            loaded = await self.store.load()
        except errors.FederatorError as e:
            log.warning("pool_blocks_not_loaded", error=str(e))
            return
        before, self.blocks = self.blocks, self.blocks.merged(loaded)
        self._read_as = "leader" if leads else "follower"
        if self.blocks != before:
            log.info("pool_blocks_loaded", blocked=sorted("/".join(p) for p in loaded.pools))

    async def save(self, now: float) -> None:
        """Write the blocks if one is not kept yet (after a requeue, or at the end of a pass)."""
        if self.store is None or not self._unsaved:
            return
        try:
            saved = await self.store.save(self.blocks, now=now)
        except errors.FederatorError as e:
            log.warning("pool_blocks_not_saved", error=str(e), retry="at the end of the pass")
            return
        self.blocks = self.blocks.merged(saved).active(now)  # with another writer's, if any
        self._unsaved = False

    def blocked_room(
        self, offers: Sequence[Offer], now: float
    ) -> dict[Pool, tuple[PoolBlock, int]]:
        """The blocked pools among the offers, with the GPUs each would offer unblocked."""
        room: dict[Pool, tuple[PoolBlock, int]] = {}
        for offer in offers:
            block = self.blocks.blocking((offer.cluster, offer.pool), now)
            if block is not None:
                room[(offer.cluster, offer.pool)] = (block, offer.free_gpus)
        return room
