"""Multipart layouts and the ETags they produce, so a copy can be checked before it is visible.

S3 gives a multipart object the ETag `md5(md5(part 1) + ... + md5(part N))-N`. A copy made with
the source's own part boundaries therefore has the source's ETag, and the engine can compute
that ETag from the parts it read *before* completing the upload: a wrong byte, or parts from two
versions of a changing source, never becomes visible at the final key. When the source layout
cannot be reproduced (an unknown part size, a part count S3 would refuse), the engine chooses its
own layout and verifies part by part instead.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

MIN_PART_SIZE = 5 * 1024 * 1024  # S3: every part but the last
MAX_PARTS = 10_000
MAX_SINGLE_PUT = 5 * 1024**3

_MD5_ETAG = re.compile(r"^[0-9a-f]{32}$")
_MULTIPART_ETAG = re.compile(r"^[0-9a-f]{32}-(\d+)$")


@dataclass(frozen=True, slots=True)
class Part:
    number: int  # 1-based, as S3 counts
    offset: int
    size: int

    @property
    def byte_range(self) -> str:
        return f"bytes={self.offset}-{self.offset + self.size - 1}"


def is_md5_etag(etag: str) -> bool:
    """True for a single-part ETag that is the MD5 of the object's bytes."""
    return _MD5_ETAG.match(etag) is not None


def parts_in_etag(etag: str) -> int | None:
    """The part count of a multipart ETag, or None for any other ETag."""
    match = _MULTIPART_ETAG.match(etag)
    return int(match.group(1)) if match else None


def split(size: int, part_size: int) -> tuple[Part, ...]:
    """Cut `size` bytes into parts of `part_size` (the last one shorter); one part for 0 bytes."""
    if part_size <= 0:
        raise ValueError(f"part size must be positive, got {part_size}")
    if size == 0:
        return (Part(1, 0, 0),)
    count = -(-size // part_size)
    return tuple(
        Part(n + 1, n * part_size, min(part_size, size - n * part_size)) for n in range(count)
    )


def fit_part_size(size: int, wanted: int) -> int:
    """The smallest part size >= `wanted` (and >= 5 MiB) that keeps `size` under 10,000 parts."""
    part_size = max(wanted, MIN_PART_SIZE)
    while -(-size // part_size) > MAX_PARTS:
        part_size *= 2
    return part_size


def matching_layout(size: int, etag: str, first_part_size: int | None) -> tuple[Part, ...] | None:
    """The source's own layout, assuming every part but the last has part 1's size (what S3
    clients do), when its ETag's part count agrees; else None.

    The count agreeing does not prove it: parts of 6, 5 and 5 MiB give the same count as 6, 6
    and 4. Such a guess composes to another ETag than the source's; the engine then keeps the
    copy as one of its own layout and records the verified pair (it does not re-read)."""
    count = parts_in_etag(etag)
    if count is None or not first_part_size:
        return None
    layout = split(size, first_part_size)
    return layout if len(layout) == count else None


def multipart_etag(part_md5s: Sequence[bytes]) -> str:
    """The ETag S3 gives an object completed from parts with these MD5 digests."""
    combined = hashlib.md5(b"".join(part_md5s), usedforsecurity=False).hexdigest()
    return f"{combined}-{len(part_md5s)}"
