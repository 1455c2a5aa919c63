"""Copying one blob from a registry into another, checked as it streams, never left half-done.

A blob that fits in one part is read whole, hashed and PUT with `If-None-Match: *` (a 412 means
the blob is already there: its key is its content). A larger one can be larger than memory, so it
goes up as a multipart upload whose parts are hashed as they stream. The upload is completed only
if the bytes read hash to the blob's name, and aborted whenever it is cut short, so a blob key
never holds unchecked bytes and no upload stays open (and billed):
- Before the parts go, uploads a crash left open for the same key are aborted: blob keys are
  content-addressed, so those can only be copies of these very bytes.
- A shutdown (`stopping`) ends the copy at its next part (`RegistryStopped`).
- A complete whose retry finds no upload (the first try landed, its answer lost) counts as
  done once the blob is in place at its size.
The requests themselves (PUT, create, parts, complete, aborts, HEAD) are the target registry's
own, retried and stoppable like its others (`ModelRegistry`); the source's body resumes a broken
read (`blob_streams.ResumingBody`).
"""

from __future__ import annotations

import hashlib
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

import structlog

from federator import errors
from federator.storage import retrying
from federator.storage.blob_streams import Readable, check_digest, read_exactly
from federator.syncing import manifests
from federator.syncing import parts as partlib
from federator.syncing.manifests import FileEntry

if TYPE_CHECKING:
    from federator.storage.registry import ModelRegistry

log = structlog.get_logger(__name__)


class RegistryStopped(errors.FederatorError):
    """A blob copy was cut short because the process is shutting down."""


def receive_blob(target: ModelRegistry, source: ModelRegistry, entry: FileEntry) -> int:
    """Copy one blob from `source` into `target`, hashing as it streams; returns the bytes
    sent."""
    key = target.location.key(manifests.blob_key(entry.digest))
    body = source._open_blob(entry)
    if entry.size <= target.part_size:
        data = body.read()
        check_digest(entry, hashlib.sha256(data).hexdigest(), len(data))
        md5 = hashlib.md5(data, usedforsecurity=False).digest()
        try:
            target._put(key, data, if_none_match=True, md5=md5)
        except Exception as error:
            if not retrying.is_precondition_failed(error):
                raise
        return len(data)
    # Parts grow with the blob: S3 takes at most 10,000 parts per upload, and a blob cut
    # there would fail its digest check every round as if it were corrupt.
    part_size = partlib.fit_part_size(entry.size, target.part_size)
    return write_in_parts(target, entry, key, body, part_size)


def write_in_parts(
    registry: ModelRegistry, entry: FileEntry, key: str, body: Readable, part_size: int
) -> int:
    """Send `entry`'s bytes from `body` to `key` of `registry` in parts of `part_size`;
    returns the bytes sent."""
    upload_id = registry._create_upload(key)
    try:
        # After the create, so that an upload a retried create opened (its first answer
        # lost) goes too, not only those a crash left.
        registry._abort_leftover_uploads(key, keep=upload_id)
        etags = _send_parts(registry, entry, key, upload_id, body, part_size)
        _complete(registry, entry, key, upload_id, etags)
    except BaseException:
        _abort_cut_short(registry, key, upload_id)
        raise
    return entry.size


def _send_parts(
    registry: ModelRegistry,
    entry: FileEntry,
    key: str,
    upload_id: str,
    body: Readable,
    part_size: int,
) -> list[str]:
    """Send the blob's parts, hashing them as they stream; their ETags, once the bytes read
    hash to the blob's name."""
    digest = hashlib.sha256()
    size = 0
    futures: list[Future[str]] = []
    with ThreadPoolExecutor(registry.part_concurrency) as pool:
        for number in range(1, partlib.MAX_PARTS + 1):
            if registry.stopping.is_set():
                raise RegistryStopped(f"{key}: stopped at part {number} (shutting down)")
            chunk = read_exactly(body, part_size)
            if not chunk and number > 1:
                break
            digest.update(chunk)
            size += len(chunk)
            futures.append(pool.submit(registry._upload_part, key, upload_id, number, chunk))
            # Bound memory: never more parts buffered than workers plus one.
            while sum(not f.done() for f in futures) > registry.part_concurrency:
                futures[[f.done() for f in futures].index(False)].result()
        etags = [f.result() for f in futures]
    check_digest(entry, digest.hexdigest(), size)
    return etags


def _complete(
    registry: ModelRegistry, entry: FileEntry, key: str, upload_id: str, etags: list[str]
) -> None:
    try:
        registry._complete_upload(key, upload_id, etags)
    except Exception as error:
        # A retry whose first try completed the upload (its answer lost) finds no upload
        # any more: the blob is then in place, its bytes checked before that first try.
        # So is a blob another copier completed after aborting ours as a leftover.
        if not retrying.is_not_found(error) or registry._head(key) != entry.size:
            raise
        log.info("registry_blob_found_completed", store=registry.store, key=key)


def _abort_cut_short(registry: ModelRegistry, key: str, upload_id: str) -> None:
    """Abort an upload whose blob failed, without hiding why it failed (the caller raises
    that): an abort that fails too leaves the upload to the next `_abort_leftover_uploads`
    of the key."""
    try:
        registry._abort_upload(key, upload_id)
    except Exception as error:  # noqa: BLE001
        log.warning(
            "registry_upload_left_open",
            store=registry.store,
            key=key,
            upload_id=upload_id,
            error=f"{type(error).__name__}: {error}",
        )
