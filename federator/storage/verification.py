"""Checking a registry blob's bytes: a stored blob against its manifest, a local file's upload.

A version's manifest names every blob by its SHA-256 and size, so a blob in the store can be
read back and checked (`blob_problem`, behind `registry.ModelRegistry.verify`). A local file
published as a blob is checked without reading it back: s3transfer's upload of it must produce
the ETag its bytes give (`hash_file`), one MD5 or the MD5 of its parts' MD5s.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from boto3.s3.transfer import TransferConfig
from s3transfer.utils import ChunksizeAdjuster

from federator.storage import retrying
from federator.storage.blob_streams import READ
from federator.syncing import parts as partlib
from federator.syncing.manifests import FileEntry

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True, slots=True)
class VerifyResult:
    name: str
    version: str
    files: int
    bytes_checked: int
    problems: tuple[str, ...]  # one line per bad file

    @property
    def ok(self) -> bool:
        return not self.problems


def blob_problem(s3: S3Client, bucket: str, key: str, entry: FileEntry) -> str:
    """What is wrong with the blob at `key` for `entry` ("": nothing): missing, another size,
    other bytes. Reads it whole."""
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    except Exception as error:
        if retrying.is_not_found(error):
            return f"blob {entry.digest} is missing"
        raise
    digest = hashlib.sha256()
    size = 0
    for chunk in iter(lambda: body.read(READ), b""):
        digest.update(chunk)
        size += len(chunk)
    if size != entry.size:
        return f"blob has {size} bytes, the manifest says {entry.size}"
    if f"sha256:{digest.hexdigest()}" != entry.digest:
        return f"blob hashes to sha256:{digest.hexdigest()}"
    return ""


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
