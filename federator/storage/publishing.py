"""Publishing local files as a registry version's blobs, each checked before it counts.

A local file becomes a content-addressed blob (its key is its SHA-256), sent with s3transfer's
managed transfer (multipart, bounded threads) unless a blob of that size is already there. The
upload is checked without reading it back: the ETag the store gives it must be the one its
bytes give (`hash_file`: one MD5, or the MD5 of its parts' MD5s in s3transfer's part layout).
`upload_files` only makes the blobs and the manifest naming them; the registry writes the
manifest after them (`ModelRegistry.publish`), so a reader never sees a version whose blobs are
not all in place.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from boto3.s3.transfer import TransferConfig
from s3transfer.utils import ChunksizeAdjuster

from federator.storage import retrying
from federator.storage.blob_streams import READ, BlobMismatch
from federator.syncing import manifests
from federator.syncing import parts as partlib
from federator.syncing.manifests import FileEntry, Manifest

if TYPE_CHECKING:
    from federator.storage.registry import ModelRegistry


def upload_files(
    registry: ModelRegistry,
    name: str,
    version: str,
    files: Mapping[str, Path],
    metadata: Mapping[str, str] | None,
    on_bytes: Callable[[int], None] | None,
) -> Manifest:
    """Upload the files of version `version` of model `name` as blobs; the manifest naming
    them, not yet published."""
    manifests.check_name(name)
    manifests.check_version(version)
    entries = []
    for path, local in sorted(files.items()):
        digest, size = upload_file(registry, local, on_bytes)
        entries.append(FileEntry(path, digest, size))
    return Manifest(
        name=name,
        version=version,
        files=manifests.check_files(tuple(entries)),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        metadata=dict(metadata or {}),
    )


def upload_file(
    registry: ModelRegistry, local: Path, on_bytes: Callable[[int], None] | None
) -> tuple[str, int]:
    """Upload one local file as a blob (unless there already); its digest and size. S3
    failures the retries did not cure are our errors naming the registry's store."""
    with retrying.translated(registry.store, f"uploading a blob under {registry.uri}"):
        config = TransferConfig(
            multipart_threshold=registry.part_size,
            multipart_chunksize=registry.part_size,
            max_concurrency=registry.part_concurrency,
        )
        digest, size, expected_etag = hash_file(local, config)
        key = registry.location.key(manifests.blob_key(digest))
        if registry._head(key) == size:
            return digest, size
        registry.s3.upload_file(
            str(local),
            registry.location.bucket,
            key,
            Config=config,
            Callback=on_bytes,
        )
        written = registry._etag(key)
        if written != expected_etag:
            raise BlobMismatch(
                f"{local}: uploaded as ETag {written}, its bytes give {expected_etag}"
            )
        return digest, size


def hash_file(local: Path, config: TransferConfig) -> tuple[str, int, str]:
    """SHA-256, size and the ETag s3transfer's upload of this file must produce."""
    size = local.stat().st_size
    multipart = size >= config.multipart_threshold
    chunk = ChunksizeAdjuster().adjust_chunksize(config.multipart_chunksize, size)
    sha = hashlib.sha256()
    part_md5s: list[bytes] = []
    whole = hashlib.md5(usedforsecurity=False)
    with local.open("rb") as handle:
        while block := handle.read(chunk if multipart else READ):
            sha.update(block)
            if multipart:
                part_md5s.append(hashlib.md5(block, usedforsecurity=False).digest())
            else:
                whole.update(block)
    etag = partlib.multipart_etag(part_md5s) if multipart else whole.hexdigest()
    return f"sha256:{sha.hexdigest()}", size, etag
