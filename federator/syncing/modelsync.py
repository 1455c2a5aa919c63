"""Bringing models and checkpoints back from the clouds, periodically, and seeding re-placed jobs.

Jobs in a cloud publish model versions and checkpoints to that cloud's staging registry. Every
`interval_s` this loop copies whatever is new there into the on-prem registry (blobs first,
verified, then the manifest; idempotent, so a round interrupted by a crash is simply redone).
When a job is re-placed on another cloud after a preemption, `seed_latest_checkpoint` copies
its newest checkpoint from on-prem into the new cloud's staging registry before it starts, so
it resumes from there instead of from scratch. Blocking S3 work runs in threads.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from federator import metrics


@dataclass(frozen=True, slots=True)
class RoundResult:
    cluster: str
    versions_copied: tuple[str, ...]
    bytes_copied: int
    failures: tuple[tuple[str, str], ...]
    left_for_next_round: int = 0  # versions a shutdown kept the round from reaching


class ModelStores(Protocol):
    """The port to the registries (`federator.storage.stores.Stores`)."""

    def sync_models_back(self, cluster: str) -> RoundResult: ...

    def seed_checkpoint(self, job: str, cluster: str) -> str | None: ...


async def sync_models_once(stores: ModelStores, clusters: Sequence[str]) -> list[RoundResult]:
    results = []
    for cluster in clusters:
        result = await asyncio.to_thread(stores.sync_models_back, cluster)
        metrics.SYNC_BYTES.labels(direction="from_cloud").inc(result.bytes_copied)
        results.append(result)
    return results


async def keep_models_synced(
    stores: ModelStores,
    clusters: Sequence[str],
    *,
    interval_s: float,
    stop: asyncio.Event,
    on_round: Callable[[list[RoundResult]], None] | None = None,
) -> None:
    """Sync every cloud's staging registry back on-prem every `interval_s` until `stop`."""
    while not stop.is_set():
        results = await sync_models_once(stores, clusters)
        if on_round is not None:
            on_round(results)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)


async def seed_latest_checkpoint(stores: ModelStores, job: str, cluster: str) -> str | None:
    """Copy `job`'s newest on-prem checkpoint to `cluster`; its version, or None if none."""
    return await asyncio.to_thread(stores.seed_checkpoint, job, cluster)
