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

Who does what: `DatasetCopier` (here) plans and runs a copy of the whole prefix (listing,
the window of objects in flight, the sync state's saves, aborting abandoned uploads, the
deletes); `storage.object_copy` copies one object (the way it goes, verification, resuming,
recopying a changed source); `storage.copy_requests` makes each of its S3 calls (retries, the
endpoint's limiter, the lean path, errors naming the store).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from federator.storage import retrying
from federator.storage.copy_requests import CopyRequests, SourceChanged, in_slot
from federator.storage.endpoints import Location, make_client
from federator.storage.leanpath import LeanS3
from federator.storage.listings import list_location
from federator.storage.object_copy import (
    CopyOutcome,
    ObjectCopier,
    Progress,
    Stopped,
    VerificationFailed,
    stop_if_asked,
)
from federator.storage.syncstate import SyncState
from federator.storage.throttle import AdaptiveLimiter
from federator.syncing.plans import CopyItem, DeletePolicy, SyncPlan, SyncReport, plan_sync
from federator.syncing.throttling import LimiterStats

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# The engine's names for its callers. The exceptions live with the code that raises them
# (`object_copy`, `copy_requests`); a caller of the engine finds them here.
__all__ = [
    "CopyOutcome",
    "DatasetCopier",
    "SourceChanged",
    "Stopped",
    "TransferSettings",
    "VerificationFailed",
]

MiB = 1024 * 1024
_WINDOW = 4  # objects submitted ahead of the copy workers, per worker


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
        # Pass limiters in to share them between copiers of one store (`Stores` does); by
        # default each copier bounds its own two endpoints (one limiter if they are the same).
        ceiling = self.settings.object_concurrency + self.settings.part_concurrency
        source_bound = source_limiter or AdaptiveLimiter.with_ceiling(source.endpoint.name, ceiling)
        same_store = source.endpoint.url == target.endpoint.url
        target_bound = target_limiter or (
            source_bound
            if same_store and source_limiter is None
            else AdaptiveLimiter.with_ceiling(target.endpoint.name, ceiling)
        )
        self._stoppable_calls: dict[Callable[..., object], Callable[..., object]] = {}
        self._planned_lock = threading.Lock()
        self._last_planned: tuple[SyncPlan, SyncState] | None = None  # see `run(planned=...)`
        # Who does what: `requests` makes each S3 call of one object (retried, bounded, lean),
        # `objects` copies one object by them; the copier lists, plans and runs the whole set.
        # The clients, limiters and stop event live in `requests` alone (read through the
        # properties below), so nothing here can hold an older one than the requests use.
        self.requests = CopyRequests(
            source,
            target,
            source_client=source_client or make_client(source.endpoint),
            target_client=target_client or make_client(target.endpoint),
            source_limiter=source_bound,
            target_limiter=target_bound,
            stopping=threading.Event(),
            lean_pool_size=self.settings.object_concurrency + self.settings.part_concurrency + 4,
            lean_requests=self.settings.lean_requests,
        )
        server_side = self.settings.server_side_copy and (
            source.endpoint.shares_identity_with(target.endpoint)
        )
        self.objects = ObjectCopier(self.requests, self.settings, server_side=server_side)

    @property
    def src(self) -> S3Client:
        return self.requests.src

    @property
    def dst(self) -> S3Client:
        return self.requests.dst

    @property
    def source_limiter(self) -> AdaptiveLimiter:
        return self.requests.source_limiter

    @property
    def target_limiter(self) -> AdaptiveLimiter:
        return self.requests.target_limiter

    @property
    def _stopping(self) -> threading.Event:
        return self.requests.retries_stop_on()

    @property
    def lean_src(self) -> LeanS3 | None:
        return self.requests.lean_src

    @property
    def lean_dst(self) -> LeanS3 | None:
        return self.requests.lean_dst

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
        progress = Progress(on_bytes, on_object)
        outcomes, failures = self._copy_all(plan.copies, state, progress)
        state.forget_verified(plan.stale_verified)
        state.remember_missing(plan.missing_since)
        state.save()
        stop_if_asked(self._stopping, str(self.target))  # never report a cut-short run as done
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
        self, items: Iterable[CopyItem], state: SyncState, progress: Progress
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
                    pending[objects.submit(self.objects.copy, item, state, progress, parts)] = item
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
                self.requests.abort(full_key, upload_id)
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
    @in_slot("target")
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
