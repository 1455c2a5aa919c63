"""What a dataset copy remembers at its target between runs, so a rerun resumes, not restarts.

One small JSON object per (source, target) pair at `<target bucket>/.federator/sync/<id>.json`:
- `verified`: target ETags checked against source ETags for copies whose part layout could not be
  reproduced (so their ETags differ); the planner treats such pairs as identical.
- `missing_since`: when each target-only object was first seen gone from the source, for the
  delete hold-back;
- `uploads`: the open multipart upload of each large object in flight, with the source ETag and
  part size it was started for. After a crash (even kill -9) the next run lists that upload's
  parts and sends only the missing ones; an upload whose source changed is aborted.
Upload records are written as soon as an upload is created (before any part is sent), so no
upload the engine created can be forgotten, only aged out by the abandoned-upload sweep.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import structlog

from federator.storage import retrying
from federator.storage.endpoints import Location
from federator.storage.listings import STATE_PREFIX

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class UploadRecord:
    upload_id: str
    source_etag: str
    part_size: int
    parts: int


def state_key(source: Location, target: Location) -> str:
    identity = f"{source.endpoint.url}|{source.bucket}|{source.prefix}|{target.prefix}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:24]
    return f"{STATE_PREFIX}sync/{digest}.json"


class SyncState:
    """The state object of one (source, target) pair; thread-safe, saved explicitly.

    Once `stopping` (the copier's stop flag) is set, its GET and PUT are retried no more
    (`retrying.stoppable`): a read is not even tried, a save still makes its one try, so that
    a stopped copy keeps what it recorded (its open uploads, the pairs it verified)."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        key: str,
        *,
        store: str = "",
        stopping: threading.Event | None = None,
    ) -> None:
        self._client = client
        self._bucket = bucket
        self.key = key
        self._store = store or bucket  # as errors name it (`Endpoint.label`)
        self._stopping = stopping
        self._lock = threading.Lock()
        self.verified: dict[str, tuple[str, str]] = {}
        self.uploads: dict[str, UploadRecord] = {}
        self.missing_since: dict[str, float] = {}
        self._dirty = False
        self._saved_at = time.monotonic()

    @classmethod
    def load(
        cls,
        client: S3Client,
        source: Location,
        target: Location,
        *,
        stopping: threading.Event | None = None,
    ) -> SyncState:
        key, store = state_key(source, target), target.endpoint.label
        state = cls(client, target.bucket, key, store=store, stopping=stopping)
        with state._translated("reading"):
            raw = retrying.stoppable(SyncState._read, stopping)(state)
        if raw is not None:
            try:
                state._restore(json.loads(raw))
            except (ValueError, TypeError, KeyError, AttributeError, IndexError) as error:
                # The state only saves work (resumed uploads, verified ETags, the delete
                # hold-back's clock), so a copy that cannot read it starts over rather than
                # stop for good: parts are re-sent, deletes wait one hold-back longer, and an
                # upload it forgets is aged out by the abandoned-upload sweep. The next save
                # replaces the unreadable object.
                log.warning(
                    "sync state unreadable, starting over",
                    store=state._store,
                    object=f"s3://{state._bucket}/{state.key}",
                    error=f"{type(error).__name__}: {error}",
                )
                state = cls(client, target.bucket, key, store=store, stopping=stopping)
                state._dirty = True
        return state

    def _restore(self, document: dict[str, Any]) -> None:
        verified = {str(k): (str(v[0]), str(v[1])) for k, v in document.get("verified", {}).items()}
        uploads = {
            str(k): UploadRecord(
                upload_id=str(v["upload_id"]),
                source_etag=str(v["source_etag"]),
                part_size=int(v["part_size"]),
                parts=int(v["parts"]),
            )
            for k, v in document.get("uploads", {}).items()
        }
        missing = {str(k): float(v) for k, v in document.get("missing_since", {}).items()}
        self.verified, self.uploads, self.missing_since = verified, uploads, missing

    def record_upload(self, key: str, record: UploadRecord) -> None:
        with self._lock:
            self.uploads[key] = record
            self._dirty = True
        self.save()  # at once: this upload must be findable after a crash

    def forget_upload(self, key: str) -> None:
        with self._lock:
            self._dirty |= self.uploads.pop(key, None) is not None

    def record_verified(self, key: str, pair: tuple[str, str] | None) -> None:
        with self._lock:
            if pair is None:
                self._dirty |= self.verified.pop(key, None) is not None
            else:
                self.verified[key] = pair
                self._dirty = True

    def forget_verified(self, keys: Iterable[str]) -> None:
        """Drop verified pairs the planner found stale (source gone or changed)."""
        with self._lock:
            for key in keys:
                self._dirty |= self.verified.pop(key, None) is not None

    def remember_missing(self, since: Mapping[str, float]) -> None:
        with self._lock:
            if since != self.missing_since:
                self.missing_since = dict(since)
                self._dirty = True

    def save_if_due(self, every_s: float = 15.0) -> None:
        if self._dirty and time.monotonic() - self._saved_at > every_s:
            self.save()

    def save(self) -> None:
        with self._lock:
            if not self._dirty:
                return
            body = json.dumps(
                {
                    "version": 1,
                    "verified": {k: list(v) for k, v in sorted(self.verified.items())},
                    "uploads": {k: asdict(v) for k, v in sorted(self.uploads.items())},
                    "missing_since": dict(sorted(self.missing_since.items())),
                },
                separators=(",", ":"),
            ).encode()
            put = retrying.stoppable(SyncState._put, self._stopping, first_try_kept=True)
            with self._translated("writing"):
                put(self, body)
            self._dirty = False
            self._saved_at = time.monotonic()

    def _translated(self, verb: str) -> contextlib.AbstractContextManager[None]:
        """After the retries, a failure is `StoreUnavailable` or `StoreRefused` naming the store."""
        doing = f"{verb} the sync state s3://{self._bucket}/{self.key}"
        return retrying.translated(self._store, doing)

    @retrying.transient_retry()
    def _put(self, body: bytes) -> None:
        self._client.put_object(Bucket=self._bucket, Key=self.key, Body=body)

    @retrying.transient_retry()
    def _read(self) -> bytes | None:
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=self.key)
        except Exception as error:
            if retrying.is_not_found(error):
                return None
            raise
        body: bytes = response["Body"].read()
        return body
