"""Verifying a published version: every blob its manifest names read back and checked.

A version's manifest names each blob by its SHA-256 and size, so a blob in the store can be
read whole and checked against them; `verify` reports one line per bad file (missing, another
size, other bytes) rather than stopping at the first, so one run shows the whole damage.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from federator.storage import retrying
from federator.storage.blob_streams import READ
from federator.syncing import manifests
from federator.syncing.manifests import FileEntry, Manifest

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from federator.storage.registry import ModelRegistry


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


def verify(registry: ModelRegistry, name: str, manifest: Manifest) -> VerifyResult:
    """Read every blob of model `name`'s version `manifest` in `registry` and check its size
    and SHA-256.
    S3 failures the retries did not cure are our errors naming the registry's store."""
    problems: list[str] = []
    checked = 0
    for entry in manifest.files:
        key = registry.location.key(manifests.blob_key(entry.digest))
        with retrying.translated(registry.store, f"reading a blob under {registry.uri}"):
            problem = blob_problem(registry.s3, registry.location.bucket, key, entry)
        checked += entry.size
        if problem:
            problems.append(f"{entry.path}: {problem}")
    return VerifyResult(name, manifest.version, len(manifest.files), checked, tuple(problems))


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
