"""Reading a bucket prefix into plain values with paginated ListObjectsV2 (1,000 keys a page).

Keys under `.federator/` hold the engine's own sync state and are never listed as data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from federator.storage import retrying
from federator.storage.endpoints import Location
from federator.syncing.plans import ListedObject

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ListObjectsV2OutputTypeDef

STATE_PREFIX = ".federator/"


def list_location(client: S3Client, location: Location) -> list[ListedObject]:
    """Every object under the location, keys relative to its prefix."""
    found: list[ListedObject] = []
    token: str | None = None
    strip = len(location.prefix)
    while True:
        page = _page(client, location.bucket, location.prefix, token)
        for entry in page.get("Contents", ()):
            key = entry["Key"][strip:]
            if key.startswith(STATE_PREFIX) or not key:
                continue
            found.append(
                ListedObject(
                    key=key,
                    size=entry["Size"],
                    etag=entry["ETag"].strip('"'),
                    modified_at=entry["LastModified"].timestamp(),
                )
            )
        if not page.get("IsTruncated"):
            return found
        token = page.get("NextContinuationToken")


@retrying.transient_retry()
def _page(
    client: S3Client, bucket: str, prefix: str, token: str | None
) -> ListObjectsV2OutputTypeDef:
    if token is None:
        return client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1000)
    return client.list_objects_v2(
        Bucket=bucket, Prefix=prefix, MaxKeys=1000, ContinuationToken=token
    )
