"""Durations and sizes must carry their unit; they read and write as people write them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from federator.policy.units import format_duration, format_size, parse_duration, parse_size

DURATIONS = [
    ("90s", timedelta(seconds=90), "1m30s"),
    ("15m", timedelta(minutes=15), "15m"),
    ("2h30m", timedelta(hours=2, minutes=30), "2h30m"),
    ("1d", timedelta(days=1), "1d"),
    ("500ms", timedelta(milliseconds=500), "500ms"),
    ("1.5h", timedelta(minutes=90), "1h30m"),
    ("0s", timedelta(0), "0s"),
]


@pytest.mark.parametrize(("text", "value", "canonical"), DURATIONS)
def test_durations_read_and_write(text: str, value: timedelta, canonical: str) -> None:
    assert parse_duration(text) == value
    assert format_duration(value) == canonical


SIZES = [
    ("64Mi", 64 * 2**20, "64Mi"),
    ("500Gi", 500 * 2**30, "500Gi"),
    ("2TB", 2 * 10**12, "2TB"),
    ("1.5Gi", 3 * 2**29, "1536Mi"),
    ("10 MB", 10**7, "10MB"),
    ("7B", 7, "7B"),
]


@pytest.mark.parametrize(("text", "value", "canonical"), SIZES)
def test_sizes_read_and_write(text: str, value: int, canonical: str) -> None:
    assert parse_size(text) == value
    assert format_size(value) == canonical


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (15, "has no unit"),
        ("15", "has no unit"),
        (1.5, "has no unit"),
        ("15 minutes", "is not a duration"),
        ("m", "is not a duration"),
        (True, "expected a duration"),
        ([1], "expected a duration"),
    ],
)
def test_durations_without_a_clear_unit_are_refused(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [(64, "has no unit"), ("64", "has no unit"), ("64 megs", "is not a size"), ("Gi", "is not")],
)
def test_sizes_without_a_clear_unit_are_refused(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_size(value)
