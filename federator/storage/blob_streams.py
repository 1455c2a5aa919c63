"""A registry blob's bytes as they stream: read across broken connections, checked on the way.

A blob is named by the SHA-256 of its bytes (`syncing.manifests.blob_key`), so whoever streams
it can check it as it goes: `check_digest` raises `BlobMismatch` when the bytes read do not
hash to the name. `ResumingBody` is the source side of a copy between stores: a read that
breaks mid-stream goes on from the bytes already read with a Range GET, so the caller's running
SHA-256 sees each byte once and in order, and a blob is not started over for a reset connection.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Protocol

import structlog
from botocore.exceptions import IncompleteReadError

from federator import errors
from federator.storage import retrying
from federator.syncing.manifests import FileEntry

log = structlog.get_logger(__name__)

MiB = 1024 * 1024
READ = 8 * MiB
# A blob's read that breaks this many times in a row without a byte read in between fails: the
# store answers the GET but not with the bytes, which no further Range GET is likely to change.
BREAKS_WITHOUT_PROGRESS = 3


class BlobMismatch(errors.FederatorError):
    """Bytes read for a blob do not hash to the blob's name."""


class Readable(Protocol):
    """What a streaming body offers (botocore's StreamingBody)."""

    def read(self, amt: int | None = None) -> bytes: ...


class ResumingBody:
    """A blob's body being read from its (source) store, whose failures name that store.

    A read that breaks mid-stream (a connection reset or a timeout while the bytes come, a
    body shorter than its length) goes on from the bytes already returned, with a new GET of
    the rest (`open_from(offset)`, retried like every request): the caller, hashing what it
    reads, gets the blob's bytes once each and in order, as if nothing broke.
    """

    def __init__(
        self, open_from: Callable[[int], Readable], size: int, store: str, doing: str
    ) -> None:
        self._open_from = open_from
        self._size = size
        self._store = store
        self._doing = doing
        self._offset = 0  # bytes returned so far
        self._breaks = 0  # breaks in a row with no byte returned in between
        self._body = open_from(0)

    def read(self, amt: int | None = None) -> bytes:
        with retrying.translated(self._store, self._doing):
            while True:
                try:
                    chunk = self._body.read(amt)
                except Exception as error:
                    if not _stream_broke(error) or self._breaks >= BREAKS_WITHOUT_PROGRESS:
                        raise
                    self._resume(error)
                    continue
                self._offset += len(chunk)
                self._breaks = 0 if chunk else self._breaks
                return chunk

    def _resume(self, error: BaseException) -> None:
        self._breaks += 1
        log.info(
            "registry_blob_read_resumed",
            store=self._store,
            doing=self._doing,
            offset=self._offset,
            error=f"{type(error).__name__}: {error}",
        )
        # Nothing left to read: a Range GET past the end would be refused (416).
        left = self._offset < self._size
        self._body = self._open_from(self._offset) if left else io.BytesIO(b"")


def _stream_broke(error: BaseException) -> bool:
    """A read of a body failed in a way a new GET of the rest may not: the connection, not the
    store's answer. botocore raises IncompleteReadError for a body cut short without an error."""
    return retrying.is_transient(error) or isinstance(error, IncompleteReadError)


def read_exactly(body: Readable, size: int) -> bytes:
    """`size` bytes of `body`, fewer only at its end."""
    chunks = []
    missing = size
    while missing:
        chunk = body.read(missing)
        if not chunk:
            break
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def check_digest(entry: FileEntry, hexdigest: str, size: int) -> None:
    """Raise `BlobMismatch` unless the bytes read (their SHA-256 and count) are `entry`'s."""
    if size != entry.size or f"sha256:{hexdigest}" != entry.digest:
        raise BlobMismatch(
            f"blob {entry.digest} ({entry.size} bytes) read as sha256:{hexdigest} ({size} bytes)"
        )
