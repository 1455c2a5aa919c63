"""The dataset copy engine: make a target prefix hold exactly the source prefix's objects.

How it keeps its promises (docs/sync.md has the long version):
- Incremental: both sides are listed (two paginated listings, no per-object HEAD) and
  `syncing.plans` decides what to copy from sizes and ETags.
- Verified before visible: a single-part object is PUT with Content-MD5 equal to the source's
  MD5 ETag, so the store rejects any other bytes; a multipart object is copied with the source's
  own part boundaries, each part sent with its Content-MD5, and the upload is completed only if
  the parts' MD5s compose to the source's ETag. The target's answer (its ETag) is checked again.
  Nothing partial is ever visible at the final key: a PUT is atomic and an upload is invisible
  until completed.
- A changing source is detected: every read carries `If-Match: <source ETag>`, so a source
  overwritten mid-copy answers 412; the engine aborts that copy, re-reads the object's new
  version (one HEAD) and copies it again.
- Resumable: multipart uploads are recorded in the target's sync state before their first part,
  and a rerun reuses the parts already there (ListParts). Uploads nobody references are aborted.
- Adaptive concurrency: each endpoint's requests in flight are bounded by an AIMD limiter
  (`storage.throttle`), halved when the store throttles (503 SlowDown), regrown by one after a
  window of successes.
- Server-side CopyObject when source and target share endpoint and credentials. Multipart
  server-side copies (UploadPartCopy) are not used: SeaweedFS gives them a wrong ETag
  (testenv-recipe §8), which would defeat verification; larger objects stream instead.

Why not s3transfer's managed upload for the copies: it can neither resume an existing
multipart upload nor hand back part MD5s before completing, and it picks its own part layout.
The engine keeps s3transfer's model (a bounded pool of part workers, bounded memory =
part workers x part size) and uses s3transfer's executor for it.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import itertools
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Concatenate, Literal, ParamSpec, TypeVar

from botocore.exceptions import ClientError

from federator.storage import retrying
from federator.storage.endpoints import Endpoint, Location, make_client
from federator.storage.leanpath import LeanS3
from federator.storage.listings import list_location
from federator.storage.syncstate import SyncState, UploadRecord
from federator.storage.throttle import AdaptiveLimiter
from federator.syncing import parts as partlib
from federator.syncing.plans import CopyItem, DeletePolicy, SyncPlan, SyncReport, plan_sync
from federator.syncing.throttling import LimiterStats

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

MiB = 1024 * 1024
_WINDOW = 4  # objects submitted ahead of the copy workers, per worker
P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class TransferSettings:
    """Knobs of one copy run; defaults suit a 2-core host and a LAN/WAN link alike."""

    object_concurrency: int = 16  # objects in flight
    part_concurrency: int = 8  # multipart parts in flight, over all objects
    part_size: int = 16 * MiB  # for layouts the engine chooses
    multipart_threshold: int = 16 * MiB  # single-part sources above this go in parts
    server_side_copy: bool = True  # CopyObject when endpoint and credentials are shared
    stale_upload_age_s: float = 3600.0  # unreferenced multipart uploads older than this go
    max_source_changes: int = 3  # recopies of one object whose source keeps changing
    lean_requests: bool = True  # data GET/PUT via `leanpath` (about 3x less client CPU)


class SourceChanged(Exception):
    """The source object is no longer the version being copied (412 on If-Match)."""


class Stopped(Exception):
    """The copy was asked to stop (`DatasetCopier.stop`): the daemon is shutting down."""


class VerificationFailed(Exception):
    """The target holds other bytes than the source, after a copy that reported success."""


class _ObjectFailed(Exception):
    """A part not started because another part of its object failed (nobody reads it)."""


@dataclass(frozen=True, slots=True)
class CopyOutcome:
    key: str
    bytes_copied: int
    resumed_parts: int = 0
    recopies: int = 0  # how often the source changed under the copy
    vanished: bool = False  # deleted at the source before it could be copied
    verified_pair: tuple[str, str] | None = None  # (source, target) ETag when they differ


@dataclass
class _Progress:
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


def _in_slot(
    side: Literal["source", "target"],
) -> Callable[
    [Callable[Concatenate[DatasetCopier, P], T]], Callable[Concatenate[DatasetCopier, P], T]
]:
    """Run each attempt of an S3 call in a slot of its endpoint's limiter (inside the retry, so
    no slot is held while a retry sleeps)."""

    def wrap(
        method: Callable[Concatenate[DatasetCopier, P], T],
    ) -> Callable[Concatenate[DatasetCopier, P], T]:
        @functools.wraps(method)
        def call(self: DatasetCopier, /, *args: P.args, **kwargs: P.kwargs) -> T:
            limiter = self.source_limiter if side == "source" else self.target_limiter
            with limiter.slot(self.retries_stop_on()):
                return method(self, *args, **kwargs)

        return call

    return wrap


def _naming_store(
    side: Literal["source", "target"],
) -> Callable[
    [Callable[Concatenate[DatasetCopier, P], T]], Callable[Concatenate[DatasetCopier, P], T]
]:
    """An S3 failure the retries did not cure, as our error naming the store that failed
    (`retrying.translated`), so each object's line in `SyncReport.failures` says which store
    refused or was down. Outside the retry, which must see botocore's errors to judge them."""

    def wrap(
        method: Callable[Concatenate[DatasetCopier, P], T],
    ) -> Callable[Concatenate[DatasetCopier, P], T]:
        @functools.wraps(method)
        def call(self: DatasetCopier, /, *args: P.args, **kwargs: P.kwargs) -> T:
            where = self.source if side == "source" else self.target
            doing = (
                f"{'reading' if side == 'source' else 'writing'} s3://{where.bucket}/{where.prefix}"
            )
            with retrying.translated(where.endpoint.label, doing):
                return method(self, *args, **kwargs)

        return call

    return wrap


class DatasetCopier:
    """Copies one source location to one target location; reusable for repeated runs."""

    def __init__(
        self,
        source: Location,
        target: Location,
        *,
        settings: TransferSettings | None = None,
        deletes: DeletePolicy | None = None,
        source_client: S3Client | None = None,
        target_client: S3Client | None = None,
        source_limiter: AdaptiveLimiter | None = None,
        target_limiter: AdaptiveLimiter | None = None,
    ) -> None:
        self.source = source
        self.target = target
        self.settings = settings or TransferSettings()
        self.deletes = deletes or DeletePolicy()
        self.src = source_client or make_client(source.endpoint)
        self.dst = target_client or make_client(target.endpoint)
        self.server_side = self.settings.server_side_copy and (
            source.endpoint.shares_identity_with(target.endpoint)
        )
        pool = self.settings.object_concurrency + self.settings.part_concurrency + 4
        # Pass limiters in to share them between copiers of one store (`Stores` does); by
        # default each copier bounds its own two endpoints (one limiter if they are the same).
        ceiling = self.settings.object_concurrency + self.settings.part_concurrency
        self.source_limiter = source_limiter or AdaptiveLimiter.with_ceiling(
            source.endpoint.name, ceiling
        )
        same_store = source.endpoint.url == target.endpoint.url
        self.target_limiter = target_limiter or (
            self.source_limiter
            if same_store and source_limiter is None
            else AdaptiveLimiter.with_ceiling(target.endpoint.name, ceiling)
        )
        self._stopping = threading.Event()
        self._stoppable_calls: dict[Callable[..., object], Callable[..., object]] = {}
        self._planned_lock = threading.Lock()
        self._last_planned: tuple[SyncPlan, SyncState] | None = None  # see `run(planned=...)`
        self._lean_src = _LeanPath(source.endpoint, pool, self.settings.lean_requests)
        self._lean_dst = _LeanPath(target.endpoint, pool, self.settings.lean_requests)

    @property
    def lean_src(self) -> LeanS3 | None:
        return self._lean_src.current()

    @property
    def lean_dst(self) -> LeanS3 | None:
        return self._lean_dst.current()

    def stop(self) -> None:
        """Ask a running copy to stop soon, for good (the process is shutting down).

        No further object or part is started; requests already in flight finish (a thread
        cannot be interrupted mid-request, and a part is at most `part_size`), so the run ends
        within one part's transfer time. No store request is tried again after a failure, nor
        sent at all once stopped (`retrying.until_stopped`): listings, the sync state's GET, each
        object's HEADs, reads, writes, completes, aborts, deletes; only a save of the sync state
        still makes its one try. An open multipart upload stays open and recorded in the sync
        state: the next run resumes it from its parts instead of starting over.
        """
        self._stopping.set()

    def retries_stop_on(self) -> threading.Event:
        """What ends this copier's store retries (`retrying.until_stopped`): its stop. A call it
        cuts short raises `retrying.RetriesStopped`, which leaves what it was doing undone and
        recorded as before (an open upload stays in the sync state, resumed next run)."""
        return self._stopping

    def _check_not_stopping(self, key: str) -> None:
        if self._stopping.is_set():
            raise Stopped(f"{key}: the copy was stopped (shutting down); the next run resumes")

    # -- planning ----------------------------------------------------------------------------

    def plan(self, state: SyncState | None = None) -> tuple[SyncPlan, float]:
        """List both sides (in parallel) and plan; returns the plan and the listing time.

        A store that keeps failing raises `errors.StoreUnavailable`, one that refuses (access
        denied, no such bucket) `retrying.StoreRefused`, each naming the store and the call.
        The copier keeps the sync state this last plan was made from, for `run(planned=...)`.
        """
        state = state or SyncState.load(self.dst, self.source, self.target, stopping=self._stopping)
        plan, listed_at = self._plan(state)
        with self._planned_lock:
            self._last_planned = (plan, state)
        return plan, listed_at

    def _plan(self, state: SyncState) -> tuple[SyncPlan, float]:
        listed_at = time.time()
        with ThreadPoolExecutor(2, thread_name_prefix="list") as pool:
            # A stop (shutdown) ends the listings at their next page or retry: a store that
            # is down would otherwise be retried for 90 s in threads the exit waits for.
            source_listing = pool.submit(
                list_location, self.src, self.source, lean=self.lean_src, stopping=self._stopping
            )
            target_listing = pool.submit(
                list_location, self.dst, self.target, lean=self.lean_dst, stopping=self._stopping
            )
            plan = plan_sync(
                source_listing.result(),
                target_listing.result(),
                verified=state.verified,
                deletes=self.deletes,
                missing_since=state.missing_since,
                now=listed_at,
            )
        return plan, listed_at

    def _state_planned_with(self, planned: tuple[SyncPlan, float] | None) -> SyncState | None:
        """The sync state `planned` was made from, if it is this copier's last plan; None
        otherwise. Either way that plan is used up: a run changes the target and the state."""
        with self._planned_lock:
            last, self._last_planned = self._last_planned, None
        if planned is None or last is None or last[0] is not planned[0]:
            return None
        return last[1]

    # -- running -----------------------------------------------------------------------------

    def run(
        self,
        *,
        dry_run: bool = False,
        planned: tuple[SyncPlan, float] | None = None,
        on_plan: Callable[[SyncPlan], None] | None = None,
        on_bytes: Callable[[int], None] | None = None,
        on_object: Callable[[str], None] | None = None,
    ) -> SyncReport:
        """Copy what a plan says, then save the sync state and apply the deletes due.

        Without `planned` the run lists both sides and plans first (`federator sync`). With
        it, the answer of this copier's last `plan()`, made moments ago (the daemon's check
        just before), the run copies from that plan and the sync state it was made from: no
        second listing of the whole dataset, and the state saved is the one the plan read
        (its verified pairs, and the delete hold-back clock the plan advanced from it). A plan
        that is not the copier's last (another copier's, or one a run used already) is not
        trusted: the run lists again. The caller judges freshness: a plan is what both sides
        held when it was made, and a stale one copies and deletes by an old listing.
        """
        started = time.monotonic()
        state = self._state_planned_with(planned)
        if planned is not None and state is not None:
            plan, listed_at = planned
        else:
            state = SyncState.load(self.dst, self.source, self.target, stopping=self._stopping)
            plan, listed_at = self._plan(state)
        if on_plan is not None:
            on_plan(plan)
        if dry_run:
            return SyncReport(plan, listed_at, dry_run=True)
        with self._on_target(f"aborting abandoned uploads under {self._target_uri}"):
            aborted = self._abort_abandoned_uploads(plan, state)
        progress = _Progress(on_bytes, on_object)
        outcomes, failures = self._copy_all(plan.copies, state, progress)
        state.forget_verified(plan.stale_verified)
        state.remember_missing(plan.missing_since)
        state.save()
        self._check_not_stopping(str(self.target))  # never report a cut-short run as done
        deleted = 0
        if plan.deletes and not failures:  # delete-after, and never after an error
            with self._on_target(f"deleting objects under {self._target_uri}"):
                deleted = self._delete(plan.deletes)
        return SyncReport(
            plan=plan,
            listed_at=listed_at,
            dry_run=False,
            copied=sum(1 for o in outcomes if not o.vanished),
            bytes_copied=sum(o.bytes_copied for o in outcomes),
            resumed_parts=sum(o.resumed_parts for o in outcomes),
            recopied_after_change=sum(o.recopies for o in outcomes),
            vanished=sum(1 for o in outcomes if o.vanished),
            deleted=deleted,
            aborted_uploads=aborted,
            failures=tuple(failures),
            seconds=time.monotonic() - started,
            throttling=self._throttling(),
        )

    @property
    def _target_uri(self) -> str:
        return f"s3://{self.target.bucket}/{self.target.prefix}"

    def _on_target(self, doing: str) -> contextlib.AbstractContextManager[None]:
        """S3 failures the retries did not cure, as our errors naming the target store. (Each
        object's own failures are reported in `SyncReport.failures`; the sync state and the
        listings translate theirs.)"""
        return retrying.translated(self.target.endpoint.label, doing)

    def _throttling(self) -> tuple[LimiterStats, ...]:
        limiters = {id(x): x for x in (self.source_limiter, self.target_limiter)}.values()
        return tuple(s for s in (x.stats() for x in limiters) if s.throttles)

    def _copy_all(
        self, items: Iterable[CopyItem], state: SyncState, progress: _Progress
    ) -> tuple[list[CopyOutcome], list[tuple[str, str]]]:
        outcomes: list[CopyOutcome] = []
        failures: list[tuple[str, str]] = []
        workers = self.settings.object_concurrency
        with (
            ThreadPoolExecutor(workers, thread_name_prefix="copy") as objects,
            ThreadPoolExecutor(self.settings.part_concurrency, thread_name_prefix="part") as parts,
        ):
            # A sliding window of submissions rather than one future per object up front:
            # 100,000 pending futures cost about 150 MiB for nothing.
            queue = iter(items)
            pending: dict[Future[CopyOutcome], CopyItem] = {}
            while True:
                room = 0 if self._stopping.is_set() else workers * _WINDOW - len(pending)
                for item in itertools.islice(queue, room):
                    pending[objects.submit(self._copy_item, item, state, progress, parts)] = item
                if not pending:
                    break
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    item = pending.pop(future)
                    try:
                        outcome = future.result()
                    # One failed object must not stop the others; it is reported and retried
                    # by the next run.
                    except Exception as error:  # noqa: BLE001
                        failures.append((item.key, f"{type(error).__name__}: {error}"))
                        continue
                    outcomes.append(outcome)
                    state.record_verified(item.key, outcome.verified_pair)
                    state.save_if_due()
                    progress.object(item.key)
        return outcomes, failures

    def _copy_item(
        self, item: CopyItem, state: SyncState, progress: _Progress, parts: ThreadPoolExecutor
    ) -> CopyOutcome:
        size, etag = item.size, item.source_etag
        self._check_not_stopping(item.key)
        for recopies in range(self.settings.max_source_changes + 1):
            try:
                outcome = self._copy_version(item.key, size, etag, state, progress, parts)
            except SourceChanged:
                current = self._head_source(item.key)
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
        progress: _Progress,
        parts: ThreadPoolExecutor,
    ) -> CopyOutcome:
        if self.server_side and size <= partlib.MAX_SINGLE_PUT:
            return self._server_side_copy(key, size, etag, progress)
        if partlib.parts_in_etag(etag) is not None:
            layout = partlib.matching_layout(size, etag, self._first_part_size(key, etag))
            exact = layout is not None
        elif size > self.settings.multipart_threshold:
            layout, exact = None, False
        else:
            return self._single_copy(key, size, etag, progress)
        if layout is None:
            layout = partlib.split(size, partlib.fit_part_size(size, self.settings.part_size))
        return self._multipart_copy(key, etag, layout, exact, state, progress, parts)

    # -- single objects ----------------------------------------------------------------------

    def _single_copy(self, key: str, size: int, etag: str, progress: _Progress) -> CopyOutcome:
        body = self._read(key, etag, byte_range=None)
        md5 = hashlib.md5(body, usedforsecurity=False)
        if partlib.is_md5_etag(etag) and md5.hexdigest() != etag:
            raise SourceChanged(f"{key}: read bytes do not match the source ETag")
        written = self._put(key, body, md5.digest())
        if written != md5.hexdigest():
            raise VerificationFailed(f"{key}: target stored ETag {written}, sent {md5.hexdigest()}")
        progress.bytes(size)
        pair = None if written == etag else (etag, written)
        return CopyOutcome(key, size, verified_pair=pair)

    def _server_side_copy(self, key: str, size: int, etag: str, progress: _Progress) -> CopyOutcome:
        written = self._copy_object(key, etag)
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
        progress: _Progress,
        pool: ThreadPoolExecutor,
    ) -> CopyOutcome:
        upload_id, done = self._resume_or_create(key, etag, layout, state)
        resumed = len(done)
        todo = [part for part in layout if part.number not in done]
        try:
            self._copy_parts(key, etag, upload_id, todo, done, progress, pool)
        except SourceChanged:
            self._abort_upload(key, upload_id, state)
            raise
        md5s = [done[part.number] for part in layout]
        composed = partlib.multipart_etag(md5s)
        if exact and composed != etag and self._source_etag_now(key) != etag:
            self._abort_upload(key, upload_id, state)
            raise SourceChanged(f"{key}: parts compose to {composed}, the source is {etag}")
        # Parts composing to another ETag from an unchanged source (every part was read with
        # If-Match) mean the source's parts differ in size (`partlib.matching_layout`): the
        # copy is then one of our own layout, verified part by part, and its pair is recorded.
        written = self._complete(key, upload_id, md5s)
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
        progress: _Progress,
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
        current = self._head_source(key)
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
            existing = self._list_parts(key, record.upload_id)
            if existing is not None:
                return record.upload_id, {
                    number: bytes.fromhex(part_etag)
                    for number, (part_etag, size) in existing.items()
                    if number <= len(layout)
                    and size == layout[number - 1].size
                    and partlib.is_md5_etag(part_etag)
                }
        if record is not None:
            self._abort_upload(key, record.upload_id, state)
        upload_id = self._create_upload(key)
        state.record_upload(key, UploadRecord(upload_id, etag, layout[0].size, len(layout)))
        return upload_id, {}

    def _copy_part(
        self,
        key: str,
        etag: str,
        upload_id: str,
        part: partlib.Part,
        progress: _Progress,
        failed: threading.Event,
    ) -> bytes:
        self._check_not_stopping(f"{key} part {part.number}")
        if failed.is_set():
            raise _ObjectFailed(f"{key} part {part.number}: not started, another part failed")
        body = self._read(key, etag, byte_range=part.byte_range)
        if len(body) != part.size:
            raise SourceChanged(f"{key}: part {part.number} read {len(body)} of {part.size} bytes")
        md5 = hashlib.md5(body, usedforsecurity=False).digest()
        written = self._upload_part(key, upload_id, part.number, body, md5)
        if written != md5.hex():
            raise VerificationFailed(f"{key}: part {part.number} stored as {written}")
        progress.bytes(part.size)
        return md5

    # -- S3 calls (each retried on transient errors) -------------------------------------------

    @_naming_store("source")
    @retrying.until_stopped
    @retrying.transient_retry()
    @_in_slot("source")
    def _read(self, key: str, etag: str, *, byte_range: str | None) -> bytes:
        full_key = self.source.key(key)
        try:
            if self.lean_src is not None and LeanS3.plain(self.source.bucket, full_key):
                return self.lean_src.get(
                    self.source.bucket, full_key, if_match=f'"{etag}"', byte_range=byte_range
                )
            if byte_range is None:
                response = self.src.get_object(
                    Bucket=self.source.bucket, Key=self.source.key(key), IfMatch=f'"{etag}"'
                )
            else:
                response = self.src.get_object(
                    Bucket=self.source.bucket,
                    Key=self.source.key(key),
                    IfMatch=f'"{etag}"',
                    Range=byte_range,
                )
            return response["Body"].read()
        except Exception as error:
            if retrying.is_precondition_failed(error) or retrying.is_not_found(error):
                raise SourceChanged(f"{key}: source is no longer ETag {etag}") from error
            raise

    @_naming_store("target")
    @retrying.until_stopped
    @retrying.transient_retry()
    @_in_slot("target")
    def _put(self, key: str, body: bytes, md5: bytes) -> str:
        full_key = self.target.key(key)
        if self.lean_dst is not None and LeanS3.plain(self.target.bucket, full_key):
            return self.lean_dst.put(self.target.bucket, full_key, body, md5)
        response = self.dst.put_object(
            Bucket=self.target.bucket,
            Key=self.target.key(key),
            Body=body,
            ContentMD5=base64.b64encode(md5).decode(),
        )
        return response["ETag"].strip('"')

    @_naming_store("target")
    @retrying.until_stopped
    @retrying.transient_retry()
    @_in_slot("target")
    def _copy_object(self, key: str, etag: str) -> str:
        try:
            response = self.dst.copy_object(
                Bucket=self.target.bucket,
                Key=self.target.key(key),
                CopySource={"Bucket": self.source.bucket, "Key": self.source.key(key)},
                CopySourceIfMatch=f'"{etag}"',
            )
        except Exception as error:
            if retrying.is_precondition_failed(error) or retrying.is_not_found(error):
                raise SourceChanged(f"{key}: source is no longer ETag {etag}") from error
            raise
        return response["CopyObjectResult"].get("ETag", "").strip('"')

    @_naming_store("source")
    @retrying.until_stopped
    @retrying.transient_retry()
    @_in_slot("source")
    def _head_source(self, key: str) -> tuple[int, str] | None:
        try:
            response = self.src.head_object(Bucket=self.source.bucket, Key=self.source.key(key))
        except Exception as error:
            if retrying.is_not_found(error):
                return None
            raise
        return response["ContentLength"], response["ETag"].strip('"')

    @_naming_store("source")
    @retrying.until_stopped
    @retrying.transient_retry()
    @_in_slot("source")
    def _first_part_size(self, key: str, etag: str) -> int | None:
        """The size of the source's part 1, which pins its layout; None if the store won't say."""
        try:
            response = self.src.head_object(
                Bucket=self.source.bucket,
                Key=self.source.key(key),
                PartNumber=1,
                IfMatch=f'"{etag}"',
            )
        except Exception as error:
            if retrying.is_precondition_failed(error) or retrying.is_not_found(error):
                raise SourceChanged(f"{key}: source is no longer ETag {etag}") from error
            if retrying.is_transient(error):
                raise
            # Any other answer, 501 NotImplemented first: the store will not say its part
            # size, and the engine copies with its own layout.
            return None
        return response["ContentLength"] if response.get("PartsCount") else None

    @_naming_store("target")
    @retrying.until_stopped
    @retrying.transient_retry()
    @_in_slot("target")
    def _create_upload(self, key: str) -> str:
        response = self.dst.create_multipart_upload(
            Bucket=self.target.bucket, Key=self.target.key(key)
        )
        return response["UploadId"]

    @_naming_store("target")
    @retrying.until_stopped
    @retrying.transient_retry()
    @_in_slot("target")
    def _upload_part(self, key: str, upload_id: str, number: int, body: bytes, md5: bytes) -> str:
        full_key = self.target.key(key)
        if self.lean_dst is not None and LeanS3.plain(self.target.bucket, full_key):
            return self.lean_dst.put(
                self.target.bucket, full_key, body, md5, upload_id=upload_id, part_number=number
            )
        response = self.dst.upload_part(
            Bucket=self.target.bucket,
            Key=self.target.key(key),
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
            ContentMD5=base64.b64encode(md5).decode(),
        )
        return response["ETag"].strip('"')

    @_naming_store("target")
    @retrying.until_stopped
    @retrying.transient_retry()
    @_in_slot("target")
    def _complete(self, key: str, upload_id: str, md5s: list[bytes]) -> str:
        completed: list[CompletedPartTypeDef] = [
            {"PartNumber": n, "ETag": f'"{md5.hex()}"'} for n, md5 in enumerate(md5s, start=1)
        ]
        response = self.dst.complete_multipart_upload(
            Bucket=self.target.bucket,
            Key=self.target.key(key),
            UploadId=upload_id,
            MultipartUpload={"Parts": completed},
        )
        return response.get("ETag", "").strip('"')

    @_naming_store("target")
    @retrying.until_stopped
    @retrying.transient_retry()
    @_in_slot("target")
    def _list_parts(self, key: str, upload_id: str) -> dict[int, tuple[str, int]] | None:
        found: dict[int, tuple[str, int]] = {}
        marker = 0
        while True:
            try:
                response = self.dst.list_parts(
                    Bucket=self.target.bucket,
                    Key=self.target.key(key),
                    UploadId=upload_id,
                    PartNumberMarker=marker,
                )
            except Exception as error:
                if retrying.is_not_found(error):
                    return None
                raise
            for part in response.get("Parts", ()):
                found[part["PartNumber"]] = (part["ETag"].strip('"'), part["Size"])
            if not response.get("IsTruncated"):
                return found
            marker = response.get("NextPartNumberMarker", 0)

    @_naming_store("target")
    def _abort_upload(self, key: str, upload_id: str, state: SyncState | None) -> None:
        self._abort(self.target.key(key), upload_id)
        if state is not None:
            state.forget_upload(key)

    @retrying.until_stopped
    @retrying.transient_retry()
    @_in_slot("target")
    def _abort(self, full_key: str, upload_id: str) -> None:
        try:
            self.dst.abort_multipart_upload(
                Bucket=self.target.bucket, Key=full_key, UploadId=upload_id
            )
        except Exception as error:
            if not retrying.is_not_found(error):
                raise

    # -- housekeeping ------------------------------------------------------------------------

    def _abort_abandoned_uploads(self, plan: SyncPlan, state: SyncState) -> int:
        """Abort uploads under the target prefix that no planned copy will resume."""
        wanted = {item.key: item.source_etag for item in plan.copies}
        live = {
            key: record
            for key, record in state.uploads.items()
            if wanted.get(key) == record.source_etag
        }
        aborted = 0
        now = datetime.now(UTC)
        for full_key, upload_id, initiated in self._open_uploads():
            key = full_key[len(self.target.prefix) :]
            record = live.get(key)
            if record is not None and record.upload_id == upload_id:
                continue
            ours = key in state.uploads and state.uploads[key].upload_id == upload_id
            if ours or (now - initiated).total_seconds() >= self.settings.stale_upload_age_s:
                self._abort(full_key, upload_id)
                aborted += 1
        for key in [k for k in state.uploads if k not in live]:
            state.forget_upload(key)
        return aborted

    @retrying.until_stopped
    @retrying.transient_retry()
    def _open_uploads(self) -> list[tuple[str, str, datetime]]:
        found: list[tuple[str, str, datetime]] = []
        paginator = self.dst.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.target.bucket, Prefix=self.target.prefix):
            for upload in page.get("Uploads", ()):
                found.append((upload["Key"], upload["UploadId"], upload["Initiated"]))
        return found

    def _delete(self, keys: tuple[str, ...]) -> int:
        deleted = 0
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            deleted += self._delete_batch(batch)
        return deleted

    @retrying.until_stopped
    @retrying.transient_retry()
    @_in_slot("target")
    def _delete_batch(self, keys: tuple[str, ...]) -> int:
        response = self.dst.delete_objects(
            Bucket=self.target.bucket,
            Delete={"Objects": [{"Key": self.target.key(k)} for k in keys], "Quiet": True},
        )
        errors = response.get("Errors", ())
        if errors:
            # A per-key failure inside a 200 answer, raised as the ClientError it would be on
            # its own: the retry and `translated` then tell a passing fault from a refusal.
            first = errors[0]
            message = (
                f"{len(errors)} of {len(keys)} keys not deleted, first {first.get('Key')}: "
                f"{first.get('Message', '')}"
            )
            code = str(first.get("Code", ""))
            raise ClientError({"Error": {"Code": code, "Message": message}}, "DeleteObjects")
        return len(keys)


def _lean(endpoint: Endpoint, pool_size: int, wanted: bool) -> LeanS3 | None:
    """The lean GET/PUT path for an endpoint, unless turned off or the endpoint needs boto3's
    addressing or credential chain."""
    if not wanted or not LeanS3.usable_for(endpoint):
        return None
    return LeanS3(endpoint, pool_size=pool_size)


class _LeanPath:
    """An endpoint's lean path, rebuilt when the endpoint's keys rotate.

    `LeanS3` signs with the keys it was built with; boto3 clients follow rotation through
    their refreshable credentials (`storage.rotation`), and this makes the lean path follow
    the same credentials object: each request compares its frozen snapshot (cheap; botocore
    re-reads the source only every few seconds) and a new `LeanS3` is built when it changed.
    """

    def __init__(self, endpoint: Endpoint, pool_size: int, wanted: bool) -> None:
        self._endpoint = endpoint
        self._pool_size = pool_size
        self._lean = _lean(endpoint, pool_size, wanted)
        self._keys = (endpoint.access_key_id, endpoint.secret_access_key, endpoint.session_token)
        self._lock = threading.Lock()

    def current(self) -> LeanS3 | None:
        rotating = self._endpoint.rotating_keys
        if self._lean is None or rotating is None:
            return self._lean
        frozen = rotating.get_frozen_credentials()
        keys = (frozen.access_key, frozen.secret_key, frozen.token)
        with self._lock:
            if keys != self._keys:
                rotated = replace(
                    self._endpoint,
                    access_key_id=keys[0],
                    secret_access_key=keys[1],
                    session_token=keys[2],
                )
                self._lean, self._keys = LeanS3(rotated, pool_size=self._pool_size), keys
            return self._lean
