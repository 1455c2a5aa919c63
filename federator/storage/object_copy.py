"""One object's copy: make the target key hold the source object's bytes, verified.

`DatasetCopier` runs many of these at once; this module owns what happens to one object
(docs/sync.md, "Copying: verified before visible"):
- which way it goes: a server-side CopyObject (same endpoint and credentials), one verified
  PUT, or a multipart upload with the source's own part layout when the store tells it (or the
  engine's layout otherwise);
- verification: every PUT and part carries its Content-MD5 and the target's answer is checked;
  an upload is completed only once its parts compose to the source's ETag;
- resuming: an upload recorded in the sync state keeps the parts already there (ListParts);
- a changing source: a copy whose source changed under it (`SourceChanged`) is aborted and the
  new version copied, up to `TransferSettings.max_source_changes` times;
- stopping: no object or part is started once the copier is stopped (`Stopped`).

The exceptions' class names are part of each failure's line in `SyncReport.failures`.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from federator.storage.copy_requests import CopyRequests, SourceChanged
from federator.storage.syncstate import SyncState, UploadRecord
from federator.syncing import parts as partlib
from federator.syncing.plans import CopyItem

if TYPE_CHECKING:
    from federator.storage.copying import TransferSettings


class Stopped(Exception):
    """The copy was asked to stop (`DatasetCopier.stop`): the daemon is shutting down."""


class VerificationFailed(Exception):
    """The target holds other bytes than the source, after a copy that reported success."""


class _ObjectFailed(Exception):
    """A part not started because another part of its object failed (nobody reads it)."""


def stop_if_asked(stopping: threading.Event, what: str) -> None:
    """Raise `Stopped` for `what` once the copy was asked to stop."""
    if stopping.is_set():
        raise Stopped(f"{what}: the copy was stopped (shutting down); the next run resumes")


@dataclass(frozen=True, slots=True)
class CopyOutcome:
    key: str
    bytes_copied: int
    resumed_parts: int = 0
    recopies: int = 0  # how often the source changed under the copy
    vanished: bool = False  # deleted at the source before it could be copied
    verified_pair: tuple[str, str] | None = None  # (source, target) ETag when they differ


@dataclass
class Progress:
    """Callbacks for progress bars and byte counters; each may be called from any thread."""

    on_bytes: Callable[[int], None] | None = None
    on_object: Callable[[str], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bytes(self, count: int) -> None:
        if self.on_bytes is not None and count:
            self.on_bytes(count)

    def object(self, key: str) -> None:
        if self.on_object is not None:
            self.on_object(key)


class ObjectCopier:
    """Copies single objects by a copier's requests; one per `DatasetCopier`, shared by its
    copy workers (it keeps no per-object state)."""

    def __init__(
        self,
        requests: CopyRequests,
        settings: TransferSettings,
        *,
        server_side: bool,
    ) -> None:
        self.requests = requests
        self.settings = settings
        self.server_side = server_side

    @property
    def _stopping(self) -> threading.Event:
        """The copier's stop, as its requests hold it (one event for the whole copy)."""
        return self.requests.retries_stop_on()

    def copy(
        self, item: CopyItem, state: SyncState, progress: Progress, parts: ThreadPoolExecutor
    ) -> CopyOutcome:
        """Copy `item`, again with its new version each time the source changes under the
        copy; `parts` is the run's pool of part workers, shared by every object."""
        size, etag = item.size, item.source_etag
        stop_if_asked(self._stopping, item.key)
        for recopies in range(self.settings.max_source_changes + 1):
            try:
                outcome = self._copy_version(item.key, size, etag, state, progress, parts)
            except SourceChanged:
                current = self.requests.head_source(item.key)
                if current is None:
                    return CopyOutcome(item.key, 0, recopies=recopies + 1, vanished=True)
                size, etag = current
                continue
            return CopyOutcome(
                outcome.key,
                outcome.bytes_copied,
                resumed_parts=outcome.resumed_parts,
                recopies=recopies,
                verified_pair=outcome.verified_pair,
            )
        raise SourceChanged(
            f"{item.key} changed {self.settings.max_source_changes + 1} times while being copied"
        )

    def _copy_version(
        self,
        key: str,
        size: int,
        etag: str,
        state: SyncState,
        progress: Progress,
        parts: ThreadPoolExecutor,
    ) -> CopyOutcome:
        if self.server_side and size <= partlib.MAX_SINGLE_PUT:
            return self._server_side_copy(key, size, etag, progress)
        if partlib.parts_in_etag(etag) is not None:
            layout = partlib.matching_layout(size, etag, self.requests.first_part_size(key, etag))
            exact = layout is not None
        elif size > self.settings.multipart_threshold:
            layout, exact = None, False
        else:
            return self._single_copy(key, size, etag, progress)
        if layout is None:
            layout = partlib.split(size, partlib.fit_part_size(size, self.settings.part_size))
        return self._multipart_copy(key, etag, layout, exact, state, progress, parts)

    # -- single objects ----------------------------------------------------------------------

    def _single_copy(self, key: str, size: int, etag: str, progress: Progress) -> CopyOutcome:
        body = self.requests.read(key, etag, byte_range=None)
        md5 = hashlib.md5(body, usedforsecurity=False)
        if partlib.is_md5_etag(etag) and md5.hexdigest() != etag:
            raise SourceChanged(f"{key}: read bytes do not match the source ETag")
        written = self.requests.put(key, body, md5.digest())
        if written != md5.hexdigest():
            raise VerificationFailed(f"{key}: target stored ETag {written}, sent {md5.hexdigest()}")
        progress.bytes(size)
        pair = None if written == etag else (etag, written)
        return CopyOutcome(key, size, verified_pair=pair)

    def _server_side_copy(self, key: str, size: int, etag: str, progress: Progress) -> CopyOutcome:
        written = self.requests.copy_object(key, etag)
        progress.bytes(size)
        return CopyOutcome(key, size, verified_pair=None if written == etag else (etag, written))

    # -- multipart ---------------------------------------------------------------------------

    def _multipart_copy(
        self,
        key: str,
        etag: str,
        layout: tuple[partlib.Part, ...],
        exact: bool,
        state: SyncState,
        progress: Progress,
        pool: ThreadPoolExecutor,
    ) -> CopyOutcome:
        upload_id, done = self._resume_or_create(key, etag, layout, state)
        resumed = len(done)
        todo = [part for part in layout if part.number not in done]
        try:
            self._copy_parts(key, etag, upload_id, todo, done, progress, pool)
        except SourceChanged:
            self.requests.abort_upload(key, upload_id, state)
            raise
        md5s = [done[part.number] for part in layout]
        composed = partlib.multipart_etag(md5s)
        if exact and composed != etag and self._source_etag_now(key) != etag:
            self.requests.abort_upload(key, upload_id, state)
            raise SourceChanged(f"{key}: parts compose to {composed}, the source is {etag}")
        # Parts composing to another ETag from an unchanged source (every part was read with
        # If-Match) mean the source's parts differ in size (`partlib.matching_layout`): the
        # copy is then one of our own layout, verified part by part, and its pair is recorded.
        written = self.requests.complete(key, upload_id, md5s)
        state.forget_upload(key)
        if written != composed:
            raise VerificationFailed(f"{key}: target completed as {written}, parts give {composed}")
        pair = None if written == etag else (etag, written)
        sent = sum(part.size for part in todo)
        return CopyOutcome(key, sent, resumed_parts=resumed, verified_pair=pair)

    def _copy_parts(
        self,
        key: str,
        etag: str,
        upload_id: str,
        todo: list[partlib.Part],
        done: dict[int, bytes],
        progress: Progress,
        pool: ThreadPoolExecutor,
    ) -> None:
        """Copy the parts in the shared pool, filling `done` with their MD5s. The first failure
        stops the object: its queued parts are cancelled, and any a worker picks up meanwhile
        see `failed` and do not start (the pool serves every object, so they would otherwise
        hold part workers for an object already lost)."""
        failed = threading.Event()
        futures: dict[Future[bytes], partlib.Part] = {
            pool.submit(self._copy_part, key, etag, upload_id, part, progress, failed): part
            for part in todo
        }
        try:
            for future in as_completed(futures):
                done[futures[future].number] = future.result()
        except BaseException:
            failed.set()
            for future in futures:
                future.cancel()
            raise

    def _source_etag_now(self, key: str) -> str | None:
        current = self.requests.head_source(key)
        return None if current is None else current[1]

    def _resume_or_create(
        self, key: str, etag: str, layout: tuple[partlib.Part, ...], state: SyncState
    ) -> tuple[str, dict[int, bytes]]:
        record = state.uploads.get(key)
        fits = record is not None and (record.source_etag, record.part_size, record.parts) == (
            etag,
            layout[0].size,
            len(layout),
        )
        if record is not None and fits:
            existing = self.requests.list_parts(key, record.upload_id)
            if existing is not None:
                return record.upload_id, {
                    number: bytes.fromhex(part_etag)
                    for number, (part_etag, size) in existing.items()
                    if number <= len(layout)
                    and size == layout[number - 1].size
                    and partlib.is_md5_etag(part_etag)
                }
        if record is not None:
            self.requests.abort_upload(key, record.upload_id, state)
        upload_id = self.requests.create_upload(key)
        state.record_upload(key, UploadRecord(upload_id, etag, layout[0].size, len(layout)))
        return upload_id, {}

    def _copy_part(
        self,
        key: str,
        etag: str,
        upload_id: str,
        part: partlib.Part,
        progress: Progress,
        failed: threading.Event,
    ) -> bytes:
        stop_if_asked(self._stopping, f"{key} part {part.number}")
        if failed.is_set():
            raise _ObjectFailed(f"{key} part {part.number}: not started, another part failed")
        body = self.requests.read(key, etag, byte_range=part.byte_range)
        if len(body) != part.size:
            raise SourceChanged(f"{key}: part {part.number} read {len(body)} of {part.size} bytes")
        md5 = hashlib.md5(body, usedforsecurity=False).digest()
        written = self.requests.upload_part(key, upload_id, part.number, body, md5)
        if written != md5.hex():
            raise VerificationFailed(f"{key}: part {part.number} stored as {written}")
        progress.bytes(part.size)
        return md5
