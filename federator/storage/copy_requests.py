"""The store requests of a dataset copy: each one object's S3 call, made the engine's way.

`DatasetCopier` copies objects by a handful of S3 calls (read with If-Match, PUT with
Content-MD5, CopyObject, HEAD, the multipart upload's create, part, complete, list and
abort). This module owns how each of them is made, so that the copy logic
(`storage.object_copy`) reads as S3 semantics only:
- retried on transient errors (`retrying.transient_retry`), and retried no more once the copy
  is stopped (`retrying.until_stopped`);
- each attempt inside a slot of its endpoint's AIMD limiter (`in_slot`), taken inside the
  retry so that no slot is held while a retry sleeps;
- a failure the retries did not cure raised as our error naming the store (`_naming_store`);
- a source that is no longer the version being copied (412 on If-Match, or gone) raised as
  `SourceChanged`;
- data GETs and PUTs over the lean path (`storage.leanpath`) when the endpoint allows it, rebuilt
  when the endpoint's keys rotate (`LeanPath`).
"""

from __future__ import annotations

import base64
import functools
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Concatenate, Literal, ParamSpec, Protocol, TypeVar

from federator.storage import retrying
from federator.storage.endpoints import Endpoint, Location
from federator.storage.leanpath import LeanS3
from federator.storage.syncstate import SyncState
from federator.storage.throttle import AdaptiveLimiter

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

P = ParamSpec("P")
T = TypeVar("T")


class SourceChanged(Exception):
    """The source object is no longer the version being copied (412 on If-Match)."""


class LimitedSides(Protocol):
    """What `in_slot` needs of the object whose calls it bounds: both endpoints' limiters and
    the event that stops its retries."""

    @property
    def source_limiter(self) -> AdaptiveLimiter: ...

    @property
    def target_limiter(self) -> AdaptiveLimiter: ...

    def retries_stop_on(self) -> threading.Event: ...


S = TypeVar("S", bound=LimitedSides)


def in_slot(
    side: Literal["source", "target"],
) -> Callable[[Callable[Concatenate[S, P], T]], Callable[Concatenate[S, P], T]]:
    """Run each attempt of an S3 call in a slot of its endpoint's limiter (inside the retry, so
    no slot is held while a retry sleeps)."""

    def wrap(method: Callable[Concatenate[S, P], T]) -> Callable[Concatenate[S, P], T]:
        @functools.wraps(method)
        def call(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
            limiter = self.source_limiter if side == "source" else self.target_limiter
            with limiter.slot(self.retries_stop_on()):
                return method(self, *args, **kwargs)

        return call

    return wrap


def _naming_store(
    side: Literal["source", "target"],
) -> Callable[
    [Callable[Concatenate[CopyRequests, P], T]], Callable[Concatenate[CopyRequests, P], T]
]:
    """An S3 failure the retries did not cure, as our error naming the store that failed
    (`retrying.translated`), so each object's line in `SyncReport.failures` says which store
    refused or was down. Outside the retry, which must see botocore's errors to judge them."""

    def wrap(
        method: Callable[Concatenate[CopyRequests, P], T],
    ) -> Callable[Concatenate[CopyRequests, P], T]:
        @functools.wraps(method)
        def call(self: CopyRequests, /, *args: P.args, **kwargs: P.kwargs) -> T:
            where = self.source if side == "source" else self.target
            doing = (
                f"{'reading' if side == 'source' else 'writing'} s3://{where.bucket}/{where.prefix}"
            )
            with retrying.translated(where.endpoint.label, doing):
                return method(self, *args, **kwargs)

        return call

    return wrap


class CopyRequests:
    """One copier's per-object S3 requests between its source and target locations (each
    retried on transient errors, in a limiter slot, naming its store when it fails for good)."""

    def __init__(
        self,
        source: Location,
        target: Location,
        *,
        source_client: S3Client,
        target_client: S3Client,
        source_limiter: AdaptiveLimiter,
        target_limiter: AdaptiveLimiter,
        stopping: threading.Event,
        lean_pool_size: int,
        lean_requests: bool,
    ) -> None:
        self.source = source
        self.target = target
        self.src = source_client
        self.dst = target_client
        self.source_limiter = source_limiter
        self.target_limiter = target_limiter
        self._stopping = stopping
        self._stoppable_calls: dict[Callable[..., object], Callable[..., object]] = {}
        self._lean_src = LeanPath(source.endpoint, lean_pool_size, lean_requests)
        self._lean_dst = LeanPath(target.endpoint, lean_pool_size, lean_requests)

    @property
    def lean_src(self) -> LeanS3 | None:
        return self._lean_src.current()

    @property
    def lean_dst(self) -> LeanS3 | None:
        return self._lean_dst.current()

    def retries_stop_on(self) -> threading.Event:
        """The copier's stop (`DatasetCopier.stop`) ends these requests' retries."""
        return self._stopping

    @_naming_store("source")
    @retrying.until_stopped
    @retrying.transient_retry()
    @in_slot("source")
    def read(self, key: str, etag: str, *, byte_range: str | None) -> bytes:
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
    @in_slot("target")
    def put(self, key: str, body: bytes, md5: bytes) -> str:
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
    @in_slot("target")
    def copy_object(self, key: str, etag: str) -> str:
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
    @in_slot("source")
    def head_source(self, key: str) -> tuple[int, str] | None:
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
    @in_slot("source")
    def first_part_size(self, key: str, etag: str) -> int | None:
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
    @in_slot("target")
    def create_upload(self, key: str) -> str:
        response = self.dst.create_multipart_upload(
            Bucket=self.target.bucket, Key=self.target.key(key)
        )
        return response["UploadId"]

    @_naming_store("target")
    @retrying.until_stopped
    @retrying.transient_retry()
    @in_slot("target")
    def upload_part(self, key: str, upload_id: str, number: int, body: bytes, md5: bytes) -> str:
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
    @in_slot("target")
    def complete(self, key: str, upload_id: str, md5s: list[bytes]) -> str:
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
    @in_slot("target")
    def list_parts(self, key: str, upload_id: str) -> dict[int, tuple[str, int]] | None:
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
    def abort_upload(self, key: str, upload_id: str, state: SyncState | None) -> None:
        self.abort(self.target.key(key), upload_id)
        if state is not None:
            state.forget_upload(key)

    @retrying.until_stopped
    @retrying.transient_retry()
    @in_slot("target")
    def abort(self, full_key: str, upload_id: str) -> None:
        try:
            self.dst.abort_multipart_upload(
                Bucket=self.target.bucket, Key=full_key, UploadId=upload_id
            )
        except Exception as error:
            if not retrying.is_not_found(error):
                raise


def _lean(endpoint: Endpoint, pool_size: int, wanted: bool) -> LeanS3 | None:
    """The lean GET/PUT path for an endpoint, unless turned off or the endpoint needs boto3's
    addressing or credential chain."""
    if not wanted or not LeanS3.usable_for(endpoint):
        return None
    return LeanS3(endpoint, pool_size=pool_size)


class LeanPath:
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
