"""Pure: the cloud pools that get no new job for a while, and why.

After a spot preemption or a start timeout (`burst.replacement.block_pool_for`, 30m by
default) a pool offers 0 GPUs, so the job that was lost there is not placed straight back on
it. The blocks are a value; the federation loop keeps them in a ConfigMap through a
`PoolBlockStore` port (`federator/kube/pool_block_store.py`), so a restart or a new leader
still avoids the pool (docs/design.md §9).

Two writers can only disagree around a leader hand-over, and both only ever block: per pool,
the later `until` wins (`merged`), so a merge never shortens a block and never loses one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

Pool = tuple[str, str]  # (cluster, pool)

FORMAT_VERSION = 1


class BlockCause(StrEnum):
    """Why the pool was blocked; read as "blocked ... after a <cause> of <job>"."""

    PREEMPTION = "preemption"
    START_TIMEOUT = "start timeout"


@dataclass(frozen=True, slots=True)
class PoolBlock:
    until: float  # epoch seconds: the pool offers GPUs again from then on
    cause: BlockCause
    job: str  # "namespace/name" of the on-prem Job whose copy was lost there

    def explained(self, pool: Pool) -> str:
        """ "cloud-a/spot blocked until 23:10 UTC after a preemption of team-a/train"."""
        at = datetime.fromtimestamp(self.until, tz=UTC).strftime("%H:%M")
        return f"{pool[0]}/{pool[1]} blocked until {at} UTC after a {self.cause} of {self.job}"


@dataclass(frozen=True, slots=True)
class PoolBlocks:
    pools: Mapping[Pool, PoolBlock] = field(default_factory=dict)

    def blocking(self, pool: Pool, now: float) -> PoolBlock | None:
        """The pool's block if it still holds at `now`."""
        block = self.pools.get(pool)
        return block if block is not None and block.until > now else None

    def with_block(self, pool: Pool, block: PoolBlock) -> PoolBlocks:
        return self.merged(PoolBlocks({pool: block}))

    def merged(self, other: PoolBlocks) -> PoolBlocks:
        """Both writers' blocks; where both block a pool, the one that ends later."""
        pools = dict(self.pools)
        for pool, block in other.pools.items():
            kept = pools.get(pool)
            if kept is None or block.until > kept.until:
                pools[pool] = block
        return PoolBlocks(pools)

    def active(self, now: float) -> PoolBlocks:
        """Without the blocks that have ended (what a write keeps)."""
        return PoolBlocks({pool: b for pool, b in self.pools.items() if b.until > now})

    def to_json(self) -> str:
        blocks = [
            {"cluster": c, "pool": p, "until": b.until, "cause": b.cause.value, "job": b.job}
            for (c, p), b in sorted(self.pools.items())
        ]
        return json.dumps({"version": FORMAT_VERSION, "blocks": blocks}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PoolBlocks:
        """The blocks written by `to_json`; "" (a key not written yet) is none.

        Raises ValueError naming what is wrong (the store logs it with the object's name)."""
        if not text.strip():
            return cls()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"not JSON: {error}") from None
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
            raise ValueError(f"expected an object with version {FORMAT_VERSION}")
        raw = data.get("blocks")
        if not isinstance(raw, list):
            raise ValueError("blocks: expected a list")
        pools: dict[Pool, PoolBlock] = {}
        for index, entry in enumerate(raw):
            pool, block = _entry(entry, f"blocks[{index}]")
            pools[pool] = block
        return cls(pools)


def _entry(entry: Any, where: str) -> tuple[Pool, PoolBlock]:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected an object")
    try:
        cluster, pool, job = (str(entry[k]) for k in ("cluster", "pool", "job"))
        until = float(entry["until"])
        cause = BlockCause(entry["cause"])
    except KeyError as missing:
        raise ValueError(f"{where}: missing {missing}") from None
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: {error}") from None
    if not math.isfinite(until):
        raise ValueError(f"{where}.until: expected a finite epoch time")
    return (cluster, pool), PoolBlock(until, cause, job)
