"""Reading a bucket prefix into plain values with paginated ListObjectsV2 (1,000 keys a page).

Keys under `.federator/` hold the engine's own sync state and are never listed as data.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from federator.storage import retrying
from federator.storage.endpoints import Location
from federator.storage.leanpath import LeanS3, ListedPage
from federator.syncing.plans import ListedObject

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ListObjectsV2OutputTypeDef

STATE_PREFIX = ".federator/"


def list_location(
    client: S3Client,
    location: Location,
    *,
    lean: LeanS3 | None = None,
    stopping: threading.Event | None = None,
) -> list[ListedObject]:
    """Every object under the location, keys relative to its prefix.

    With `lean`, pages are fetched and parsed by the lean path (same requests, about a third
    of the client CPU); otherwise by boto3. Each page is retried; a store that keeps failing
    raises `StoreUnavailable`, a refusal `StoreRefused` (`retrying.translated`). Once
    `stopping` is set (a shutdown), no page is fetched or retried any more: the listing
    raises `retrying.RetriesStopped` instead of retrying a store that is down for 90 s.
    """
    found: list[ListedObject] = []
    strip = len(location.prefix)
    doing = f"listing s3://{location.bucket}/{location.prefix}"
    with retrying.translated(location.endpoint.label, doing):
        for key, size, etag, stamp in _entries(client, location, lean, stopping):
            relative = key[strip:]
            if relative.startswith(STATE_PREFIX) or not relative:
                continue
            found.append(ListedObject(key=relative, size=size, etag=etag, modified_at=stamp))
    return found


def _entries(
    client: S3Client, location: Location, lean: LeanS3 | None, stopping: threading.Event | None
) -> Iterator[tuple[str, int, str, float]]:
    lean_page = retrying.stoppable(_lean_page, stopping)
    boto_page = retrying.stoppable(_page, stopping)
    token: str | None = None
    while True:
        if lean is not None:
            page = lean_page(lean, location.bucket, location.prefix, token)
            yield from page.entries
            token = page.next_token
            if token is None:
                return
            continue
        response = boto_page(client, location.bucket, location.prefix, token)
        for entry in response.get("Contents", ()):
            yield (
                entry["Key"],
                entry["Size"],
                entry["ETag"].strip('"'),
                entry["LastModified"].timestamp(),
            )
        if not response.get("IsTruncated"):
            return
        token = response.get("NextContinuationToken")


@retrying.transient_retry()
def _lean_page(lean: LeanS3, bucket: str, prefix: str, token: str | None) -> ListedPage:
    return lean.list_page(bucket, prefix, token)


@retrying.transient_retry()
def _page(
    client: S3Client, bucket: str, prefix: str, token: str | None
) -> ListObjectsV2OutputTypeDef:
    if token is None:
        return client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1000)
    return client.list_objects_v2(
        Bucket=bucket, Prefix=prefix, MaxKeys=1000, ContinuationToken=token
    )
