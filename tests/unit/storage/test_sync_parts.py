"""Multipart layouts and the ETags they must produce."""

from __future__ import annotations

import hashlib

import pytest

from federator.syncing import parts

MiB = 1024 * 1024


def test_split_covers_every_byte_once_with_a_short_last_part() -> None:
    layout = parts.split(20 * MiB, 8 * MiB)
    assert [(p.number, p.offset, p.size) for p in layout] == [
        (1, 0, 8 * MiB),
        (2, 8 * MiB, 8 * MiB),
        (3, 16 * MiB, 4 * MiB),
    ]
    assert layout[2].byte_range == f"bytes={16 * MiB}-{20 * MiB - 1}"


def test_an_empty_object_is_one_empty_part() -> None:
    assert parts.split(0, MiB) == (parts.Part(1, 0, 0),)


def test_part_size_grows_to_stay_under_ten_thousand_parts() -> None:
    size = 200 * 1024**3
    part_size = parts.fit_part_size(size, 8 * MiB)
    assert -(-size // part_size) <= parts.MAX_PARTS
    assert parts.fit_part_size(10 * MiB, MiB) == parts.MIN_PART_SIZE


def test_multipart_etag_matches_the_s3_formula() -> None:
    chunks = [b"a" * 10, b"b" * 5]
    md5s = [hashlib.md5(c).digest() for c in chunks]
    expected = hashlib.md5(b"".join(md5s)).hexdigest() + "-2"
    assert parts.multipart_etag(md5s) == expected


@pytest.mark.parametrize(
    ("etag", "first_part", "count"),
    [
        pytest.param("0" * 32 + "-3", 8 * MiB, 3, id="layout pinned by etag and part 1"),
        pytest.param("0" * 32 + "-2", 8 * MiB, None, id="part count disagrees"),
        pytest.param("0" * 32, 8 * MiB, None, id="single-part etag"),
        pytest.param("0" * 32 + "-3", None, None, id="store would not tell part 1"),
    ],
)
def test_matching_layout_only_when_the_source_layout_is_pinned_down(
    etag: str, first_part: int | None, count: int | None
) -> None:
    layout = parts.matching_layout(20 * MiB, etag, first_part)
    assert (len(layout) if layout else None) == count


def test_etag_kinds_are_told_apart() -> None:
    assert parts.is_md5_etag("5d41402abc4b2a76b9719d911017c592")
    assert not parts.is_md5_etag("5d41402abc4b2a76b9719d911017c592-2")
    assert parts.parts_in_etag("5d41402abc4b2a76b9719d911017c592-12") == 12
    assert parts.parts_in_etag("5d41402abc4b2a76b9719d911017c592") is None
