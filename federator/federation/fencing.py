"""The write fence, checked right before every write the federation loop makes.

A pass can take longer than the leader's renew deadline (a cloud create may take seconds, and
a pass makes many). Sampling the fence once at the start of a pass would let it go on writing
after the fence closed, when another replica may already lead. So the loop reaches the
clusters, the data gate, the spend store and the pool block store through these wrappers: each
write asks the fence first, and a closed fence raises `FenceClosed`, which ends the pass (it is
not a job's failure, so no per-job guard swallows it). Reads pass straight through.

A write already in flight when the fence closes still lands; the fence's deadline is shorter
than the lease for that reason (see `federator.leadership`).
"""

from __future__ import annotations

from collections.abc import Callable

from federator.federation.blocks import PoolBlocks
from federator.federation.ports import (
    CloudPort,
    CloudView,
    CopyRequest,
    CopyView,
    DataGate,
    DataReadiness,
    OnPremJob,
    OnPremPort,
    OnPremView,
    PoolBlockStore,
    SpendStore,
    Terminal,
)
from federator.federation.records import PlacementRecord
from federator.federation.spending import SpendBook


class FenceClosed(Exception):  # not a FederatorError: no per-job guard may swallow it
    """The write fence closed during a pass: the pass ends before its next write."""


class Fence:
    """`may_write` as a check: `require()` raises `FenceClosed` once writes are not allowed."""

    def __init__(self, may_write: Callable[[], bool]) -> None:
        self.may_write = may_write

    def require(self, what: str) -> None:
        if not self.may_write():
            raise FenceClosed(f"the write fence closed before {what}")


class FencedOnPrem:
    """The on-prem port with the fence checked before each write."""

    def __init__(self, inner: OnPremPort, fence: Fence) -> None:
        self._inner = inner
        self._fence = fence

    async def snapshot(self, now: float) -> OnPremView:
        return await self._inner.snapshot(now)

    async def write_record(self, job: OnPremJob, record: PlacementRecord | None) -> OnPremJob:
        self._fence.require(f"writing the record of {job.key}")
        return await self._inner.write_record(job, record)

    async def write_returned_record(self, job: OnPremJob, record: PlacementRecord) -> OnPremJob:
        self._fence.require(f"writing the kept record of {job.key}")
        return await self._inner.write_returned_record(job, record)

    async def hold_on_prem(self, job: OnPremJob) -> bool:
        self._fence.require(f"holding {job.key} on-prem")
        return await self._inner.hold_on_prem(job)

    async def release_on_prem(self, job: OnPremJob) -> None:
        self._fence.require(f"releasing {job.key} on-prem")
        await self._inner.release_on_prem(job)

    async def note_return(self, job: OnPremJob, *, why: str) -> OnPremJob:
        self._fence.require(f"noting the return of {job.key}")
        return await self._inner.note_return(job, why=why)

    async def mirror(self, job: OnPremJob, *, remote_state: str) -> OnPremJob:
        self._fence.require(f"mirroring {job.key}")
        return await self._inner.mirror(job, remote_state=remote_state)

    async def finish(self, job: OnPremJob, terminal: Terminal) -> OnPremJob:
        self._fence.require(f"finishing {job.key}")
        return await self._inner.finish(job, terminal)

    async def event(self, job: OnPremJob, *, reason: str, message: str, warning: bool) -> None:
        self._fence.require(f"posting {reason} on {job.key}")
        await self._inner.event(job, reason=reason, message=message, warning=warning)


class FencedCloud:
    """One cloud port with the fence checked before each write."""

    def __init__(self, inner: CloudPort, fence: Fence) -> None:
        self.name = inner.name
        self._inner = inner
        self._fence = fence

    async def snapshot(self, now: float) -> CloudView:
        return await self._inner.snapshot(now)

    async def create_copy(self, request: CopyRequest) -> bool:
        self._fence.require(f"creating a copy of {request.source.key} on {self.name}")
        return await self._inner.create_copy(request)

    async def resume_copy(self, copy: CopyView) -> None:
        self._fence.require(f"resuming {copy.name} on {self.name}")
        await self._inner.resume_copy(copy)

    async def delete_copy(self, namespace: str, name: str) -> None:
        self._fence.require(f"deleting {namespace}/{name} on {self.name}")
        await self._inner.delete_copy(namespace, name)

    async def sweep_configs(self, keep_uids: frozenset[str]) -> int:
        self._fence.require(f"sweeping copied configs on {self.name}")
        return await self._inner.sweep_configs(keep_uids)


class FencedData:
    """The data gate with the fence checked first: both calls may copy (out or back)."""

    def __init__(self, inner: DataGate, fence: Fence) -> None:
        self._inner = inner
        self._fence = fence

    async def ensure_replicated(self, dataset: str, cluster: str) -> DataReadiness:
        self._fence.require(f"replicating {dataset} to {cluster}")
        return await self._inner.ensure_replicated(dataset, cluster)

    async def outputs_synced(self, job_key: str, cluster: str) -> bool:
        self._fence.require(f"syncing the outputs of {job_key} back from {cluster}")
        return await self._inner.outputs_synced(job_key, cluster)


class FencedSpendStore:
    """The spend store with the fence checked before a save."""

    def __init__(self, inner: SpendStore, fence: Fence) -> None:
        self._inner = inner
        self._fence = fence

    async def load(self) -> SpendBook:
        return await self._inner.load()

    async def save(self, book: SpendBook) -> None:
        self._fence.require("saving the spend book")
        await self._inner.save(book)


class FencedPoolBlockStore:
    """The pool block store with the fence checked before a save."""

    def __init__(self, inner: PoolBlockStore, fence: Fence) -> None:
        self._inner = inner
        self._fence = fence

    async def load(self) -> PoolBlocks:
        return await self._inner.load()

    async def save(self, blocks: PoolBlocks, *, now: float) -> PoolBlocks:
        self._fence.require("saving the pool blocks")
        return await self._inner.save(blocks, now=now)
