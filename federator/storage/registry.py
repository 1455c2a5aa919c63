"""The model registry on S3: publish, read, verify and sync back model versions and checkpoints.

Format in `syncing.manifests`. The rules that make it safe without a database:
- Blobs first, manifest last. A manifest is written with `If-None-Match: *`, so of two
  publishers racing for one version exactly one wins and the other gets `VersionExists`; a
  reader that sees a manifest finds every blob it names already in place.
- Blobs are checked before they count: a local file's upload is compared with the ETag its
  bytes must produce (`publishing.hash_file`); a blob copied between stores is hashed while
  it streams and its multipart upload is completed only if the SHA-256 matches its name
  (`blob_copies`).
- Aliases move by compare-and-swap: the new pointer is written with `If-Match: <ETag read>`
  (or `If-None-Match: *` when creating), so a concurrent move is detected, never lost.
- Sync back (cloud staging -> on-prem, `syncback.sync_back`) copies only versions missing at
  the target, blobs first, and is idempotent: a version already there with the same manifest
  counts as done.
- A blob copy's requests (the source's GET, the multipart create, parts, complete and abort)
  are retried on transient failures like the registry's other requests
  (`retrying.transient_retry`; botocore's own retries are off): a 503 or a connection reset
  costs a retry, not the blob, whose copy would start over at its first part in the next round.
  A blob's read that breaks mid-stream goes on from the bytes already read (a Range GET,
  `blob_streams.ResumingBody`), the SHA-256 carried on over the stream.
- A shutdown (`stopping`) ends every retry and sends no further retried request
  (`retrying.until_stopped`), except the first try of the writes that settle a blob's upload
  (completing it once all its parts arrived, aborting it when cut short); the error goes through
  the steps above, so it never skips to a manifest.
Local files are uploaded with s3transfer's managed transfer (multipart, bounded threads).

`ModelRegistry` owns the layout (versions, aliases, manifests) and every S3 request of the
registry (each retried, stoppable, its failures naming the store), and keeps the public API.
It composes the modules that own the rest: `publishing` (local files into blobs),
`blob_copies` and `blob_streams` (a blob from another registry), `verification` (a version read
back and checked), `syncback` (a round of copies from a staging registry).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

from federator import errors
from federator.storage import blob_copies, publishing, retrying, verification
from federator.storage.blob_copies import RegistryStopped
from federator.storage.blob_streams import BlobMismatch, MiB, Readable, ResumingBody
from federator.storage.endpoints import Location, make_client
from federator.storage.syncback import SyncBackReport, sync_back
from federator.storage.verification import VerifyResult
from federator.syncing import manifests
from federator.syncing import parts as partlib
from federator.syncing.manifests import FileEntry, Manifest

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

# Importers (the CLI, stores, the daemon, tests) reach every registry name here.
__all__ = [
    "AliasConflict",
    "BlobMismatch",
    "MiB",
    "ModelRegistry",
    "NotInRegistry",
    "RegistryStopped",
    "SyncBackReport",
    "VerifyResult",
    "VersionExists",
    "sync_back",
]

P = ParamSpec("P")
T = TypeVar("T")


class VersionExists(errors.UserError):
    """The version is already published with other contents; versions never change."""


class AliasConflict(errors.UserError):
    """Someone moved the alias between our read and our write."""


class NotInRegistry(errors.UserError):
    """The model, version or alias does not exist."""


def _on_store(
    verb: str, *, keep: Callable[[BaseException], bool] | None = None
) -> Callable[
    [Callable[Concatenate[ModelRegistry, P], T]], Callable[Concatenate[ModelRegistry, P], T]
]:
    """S3 failures of the method that its retries did not cure, as our errors naming this
    registry's store (`retrying.translated`); put it outside `transient_retry`. `keep`: the
    failures the method's callers answer themselves (a conditional write's 412)."""

    def wrap(
        method: Callable[Concatenate[ModelRegistry, P], T],
    ) -> Callable[Concatenate[ModelRegistry, P], T]:
        @functools.wraps(method)
        def call(self: ModelRegistry, /, *args: P.args, **kwargs: P.kwargs) -> T:
            with retrying.translated(self.store, f"{verb} under {self.uri}", keep=keep):
                return method(self, *args, **kwargs)

        return call

    return wrap


class ModelRegistry:
    """One registry (on-prem registry or a cloud's staging area) at an S3 location.

    A store that keeps failing raises `errors.StoreUnavailable`, one that refuses (access
    denied, no such bucket) `retrying.StoreRefused`, each naming the store; never botocore's.
    Once `stopping` is set, no retried request is tried again nor sent
    (`retrying.RetriesStopped`).
    """

    def __init__(
        self,
        location: Location,
        client: S3Client | None = None,
        *,
        part_size: int = 16 * MiB,
        part_concurrency: int = 8,
        stopping: threading.Event | None = None,
    ) -> None:
        self.location = location
        self.s3 = client or make_client(location.endpoint)
        self.part_size = partlib.fit_part_size(0, part_size)
        self.part_concurrency = part_concurrency
        # Set when the process shuts down: a blob in flight stops at its next part and its
        # upload is aborted (blobs are content-addressed; the next round sends it again), and
        # no store request is retried or sent any more (`retries_stop_on`).
        self.stopping = stopping or threading.Event()
        self._stoppable_calls: dict[Callable[..., object], Callable[..., object]] = {}

    def retries_stop_on(self) -> threading.Event:
        """What ends this registry's store retries (`retrying.until_stopped`): `stopping`. The
        callers let `retrying.RetriesStopped` through, so a version whose blobs did not all
        arrive gets no manifest (the next round copies it) and a write already sent is never
        undone."""
        return self.stopping

    @property
    def store(self) -> str:
        return self.location.endpoint.label

    @property
    def uri(self) -> str:
        return f"s3://{self.location.bucket}/{self.location.prefix}"

    # -- publishing --------------------------------------------------------------------------

    def publish(
        self,
        name: str,
        version: str,
        files: Mapping[str, Path],
        *,
        metadata: Mapping[str, str] | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> Manifest:
        """Upload the files as blobs, then publish the version's manifest (only if absent)."""
        manifest = publishing.upload_files(self, name, version, files, metadata, on_bytes)
        self._put_manifest(manifest)
        return manifest

    def publish_checkpoint(
        self,
        job: str,
        step: int,
        files: Mapping[str, Path],
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> Manifest:
        return self.publish(
            manifests.checkpoint_model(job),
            manifests.checkpoint_version(step),
            files,
            metadata={**(metadata or {}), "job": job, "step": str(step)},
        )

    def latest_checkpoint(self, job: str) -> Manifest | None:
        name = manifests.checkpoint_model(job)
        versions = self.versions(name)
        return self.manifest(name, versions[-1]) if versions else None

    # -- reading -----------------------------------------------------------------------------

    def models(self) -> list[str]:
        return sorted({name for name, _ in self._all_versions()})

    def versions(self, name: str) -> list[str]:
        prefix = self.location.key(manifests.versions_prefix(name))
        found = []
        for key in self._keys(prefix):
            parsed = manifests.parse_manifest_key(key[len(self.location.prefix) :])
            if parsed is not None and parsed[0] == name:
                found.append(parsed[1])
        return sorted(found)

    def manifest(self, name: str, ref: str) -> Manifest:
        """The manifest of `ref`: a version, or `@alias`."""
        version = ref
        if ref.startswith("@"):
            pointer = self.alias(name, ref[1:])
            if pointer is None:
                raise NotInRegistry(f"{self.location}: model {name} has no alias {ref[1:]!r}")
            version = pointer[0]
        key = manifests.manifest_key(name, version)
        raw = self._get(key)
        if raw is None:
            raise NotInRegistry(f"{self.location}: model {name} has no version {version!r}")
        return manifests.decode(raw[0], where=f"{self.location}{key}")

    def aliases(self, name: str) -> dict[str, str]:
        """Every alias of model `name`, and the version it points at, by alias."""
        prefix = self.location.key(manifests.aliases_prefix(name))
        found: dict[str, str] = {}
        for key in self._keys(prefix):
            alias = manifests.parse_alias_key(key[len(self.location.prefix) :], name)
            if alias is None:
                continue
            pointer = self.alias(name, alias)
            if pointer is not None:  # None: removed since the listing
                found[alias] = pointer[0]
        return dict(sorted(found.items()))

    def alias(self, name: str, alias: str) -> tuple[str, str] | None:
        """(version, ETag of the pointer) of an alias, or None."""
        key = manifests.alias_key(name, alias)
        raw = self._get(key)
        if raw is None:
            return None
        return manifests.decode_alias(raw[0], where=f"{self.location}{key}"), raw[1]

    def verify(self, name: str, ref: str) -> VerifyResult:
        """Read every blob of a version and check its size and SHA-256."""
        return verification.verify(self, name, self.manifest(name, ref))

    # -- aliases -----------------------------------------------------------------------------

    def move_alias(self, name: str, alias: str, version: str, *, expected: str | None) -> None:
        """Point `alias` at `version` if it still points at `expected` (None: must not exist)."""
        self.manifest(name, version)  # only published versions get an alias
        current = self.alias(name, alias)
        if (current[0] if current else None) != expected:
            raise AliasConflict(
                f"alias {name}@{alias} points at {current[0] if current else 'nothing'}, "
                f"not {expected or 'nothing'}; re-read it and retry"
            )
        body = json.dumps({"version": version}).encode()
        key = self.location.key(manifests.alias_key(name, alias))
        try:
            if current is None:
                self._put(key, body, if_none_match=True)
            else:
                self._put(key, body, if_match=current[1])
        except Exception as error:
            if not retrying.is_precondition_failed(error):
                raise
            # A retried write whose first attempt landed (its reply was lost) gets 412 too:
            # the pointer then already says what we asked, and that is a success.
            now = self.alias(name, alias)
            if now is not None and now[0] == version:
                return
            raise AliasConflict(
                f"alias {name}@{alias} was moved by someone else meanwhile; re-read it"
            ) from error

    # -- blobs -------------------------------------------------------------------------------

    def has_blob(self, entry: FileEntry) -> bool:
        size = self._head(self.location.key(manifests.blob_key(entry.digest)))
        return size == entry.size

    @_on_store("receiving a blob")
    def receive_blob(self, source: ModelRegistry, entry: FileEntry) -> int:
        """Copy one blob from `source`, hashing as it streams; returns the bytes sent."""
        return blob_copies.receive_blob(self, source, entry)

    @_on_store("reading a blob")
    def _open_blob(self, entry: FileEntry) -> Readable:
        """The body of one of this registry's blobs, to stream into another registry."""
        key = self.location.key(manifests.blob_key(entry.digest))
        return ResumingBody(
            functools.partial(self._blob_from, key),
            entry.size,
            self.store,
            f"reading blob {entry.digest} under {self.uri}",
        )

    @retrying.until_stopped
    @retrying.transient_retry()
    def _blob_from(self, key: str, offset: int) -> Readable:
        """The body of a blob from byte `offset` on: past 0, a Range GET resuming a broken read."""
        if not offset:
            return self.s3.get_object(Bucket=self.location.bucket, Key=key)["Body"]
        response = self.s3.get_object(
            Bucket=self.location.bucket, Key=key, Range=f"bytes={offset}-"
        )
        # A store that ignores Range answers 200 with the whole blob: its bytes must not be taken
        # for the rest of it.
        if not response.get("ContentRange", "").startswith(f"bytes {offset}-"):
            raise BlobMismatch(
                f"{key}: asked for bytes {offset}- to resume a broken read, got "
                f"{response.get('ContentRange') or 'the whole blob'}"
            )
        return response["Body"]

    # -- a blob's multipart upload: the requests `blob_copies.write_in_parts` sends it with --

    @retrying.until_stopped
    @retrying.transient_retry()
    def _create_upload(self, key: str) -> str:
        response = self.s3.create_multipart_upload(Bucket=self.location.bucket, Key=key)
        return response["UploadId"]

    @retrying.first_try_kept
    @retrying.transient_retry()
    def _complete_upload(self, key: str, upload_id: str, etags: list[str]) -> None:
        completed: list[CompletedPartTypeDef] = [
            {"PartNumber": n, "ETag": e} for n, e in enumerate(etags, start=1)
        ]
        self.s3.complete_multipart_upload(
            Bucket=self.location.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": completed},
        )

    @retrying.first_try_kept
    @retrying.transient_retry()
    def _abort_upload(self, key: str, upload_id: str) -> None:
        try:
            self.s3.abort_multipart_upload(Bucket=self.location.bucket, Key=key, UploadId=upload_id)
        except Exception as error:
            if not retrying.is_not_found(error):  # NoSuchUpload: aborted (or completed) already
                raise

    @retrying.until_stopped
    @retrying.transient_retry()
    def _abort_leftover_uploads(self, key: str, *, keep: str = "") -> None:
        """Abort every upload open for this blob key but `keep` (the one about to be sent).

        Blob keys are content-addressed, so an open upload for this key is a copy of these very
        bytes that a crash (kill -9) cut short; nothing records registry uploads, so without this
        they stayed open (and billed) for ever. A copier still sending one in another replica
        fails to complete it and finds the blob in place at its next round.
        """
        listed = self.s3.list_multipart_uploads(Bucket=self.location.bucket, Prefix=key)
        for upload in listed.get("Uploads", ()):
            if upload.get("Key") != key or upload.get("UploadId") == keep:
                continue
            try:
                self.s3.abort_multipart_upload(
                    Bucket=self.location.bucket, Key=key, UploadId=upload["UploadId"]
                )
            except Exception as error:
                if not retrying.is_not_found(error):
                    raise

    @retrying.until_stopped
    @retrying.transient_retry()
    def _upload_part(self, key: str, upload_id: str, number: int, chunk: bytes) -> str:
        md5 = hashlib.md5(chunk, usedforsecurity=False).digest()
        response = self.s3.upload_part(
            Bucket=self.location.bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=chunk,
            ContentMD5=base64.b64encode(md5).decode(),
        )
        return response["ETag"]

    # -- manifests ---------------------------------------------------------------------------

    def _put_manifest(self, manifest: Manifest) -> None:
        """Write the manifest only if the version is absent; same contents count as done."""
        key = self.location.key(manifests.manifest_key(manifest.name, manifest.version))
        body = manifests.encode(manifest)
        try:
            self._put(key, body, if_none_match=True)
        except Exception as error:
            if not retrying.is_precondition_failed(error):
                raise
            existing = self._get(manifests.manifest_key(manifest.name, manifest.version))
            theirs = manifests.decode(existing[0], where=key) if existing else None
            if theirs is None or theirs.files != manifest.files:
                raise VersionExists(
                    f"{self.location}: {manifest.name} version {manifest.version} is already "
                    "published with other files; versions are immutable, publish a new one"
                ) from error

    def receive_version(self, source: ModelRegistry, name: str, version: str) -> tuple[int, int]:
        """Copy one version from `source`: blobs first (verified), then the manifest.

        Returns (blobs copied, bytes copied). Idempotent.
        """
        manifest = source.manifest(name, version)
        copied = sent = 0
        for entry in manifest.files:
            if self.has_blob(entry):
                continue
            sent += self.receive_blob(source, entry)
            copied += 1
        self._put_manifest(manifest)
        return copied, sent

    # -- S3 calls ----------------------------------------------------------------------------

    def _all_versions(self) -> list[tuple[str, str]]:
        found = []
        for key in self._keys(self.location.key("models/")):
            parsed = manifests.parse_manifest_key(key[len(self.location.prefix) :])
            if parsed is not None:
                found.append(parsed)
        return sorted(found)

    @_on_store("listing")
    @retrying.until_stopped
    @retrying.transient_retry()
    def _keys(self, prefix: str) -> list[str]:
        paginator = self.s3.get_paginator("list_objects_v2")
        return [
            entry["Key"]
            for page in paginator.paginate(Bucket=self.location.bucket, Prefix=prefix)
            for entry in page.get("Contents", ())
        ]

    @_on_store("reading")
    @retrying.until_stopped
    @retrying.transient_retry()
    def _get(self, relative_key: str) -> tuple[bytes, str] | None:
        try:
            response = self.s3.get_object(
                Bucket=self.location.bucket, Key=self.location.key(relative_key)
            )
        except Exception as error:
            if retrying.is_not_found(error):
                return None
            raise
        return response["Body"].read(), response["ETag"]

    @_on_store("reading")
    @retrying.until_stopped
    @retrying.transient_retry()
    def _head(self, key: str) -> int | None:
        try:
            return self.s3.head_object(Bucket=self.location.bucket, Key=key)["ContentLength"]
        except Exception as error:
            if retrying.is_not_found(error):
                return None
            raise

    @_on_store("reading")
    @retrying.until_stopped
    @retrying.transient_retry()
    def _etag(self, key: str) -> str:
        return self.s3.head_object(Bucket=self.location.bucket, Key=key)["ETag"].strip('"')

    @_on_store("writing", keep=retrying.is_precondition_failed)
    @retrying.until_stopped
    @retrying.transient_retry()
    def _put(
        self,
        key: str,
        body: bytes,
        *,
        if_none_match: bool = False,
        if_match: str | None = None,
        md5: bytes | None = None,
    ) -> None:
        md5 = md5 or hashlib.md5(body, usedforsecurity=False).digest()
        content_md5 = base64.b64encode(md5).decode()
        if if_none_match:
            self.s3.put_object(
                Bucket=self.location.bucket,
                Key=key,
                Body=body,
                ContentMD5=content_md5,
                IfNoneMatch="*",
            )
        elif if_match is not None:
            self.s3.put_object(
                Bucket=self.location.bucket,
                Key=key,
                Body=body,
                ContentMD5=content_md5,
                IfMatch=if_match,
            )
        else:
            self.s3.put_object(
                Bucket=self.location.bucket, Key=key, Body=body, ContentMD5=content_md5
            )
