"""Durations and sizes written with their unit (`15m`, `2h30m`, `500Gi`, `2TB`).

A bare number in a policy file is ambiguous (seconds or minutes? bytes or gigabytes?) and a
wrong guess silently changes what federator does, so every duration and size must carry its
unit. Durations become `datetime.timedelta`; sizes become an `int` number of bytes. Both are
written back in the same compact form, so a dumped configuration reads like the original.
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass
from datetime import timedelta
from fractions import Fraction
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, WithJsonSchema

_DURATION_UNITS = {
    "ms": Fraction(1, 1000),
    "s": Fraction(1),
    "m": Fraction(60),
    "h": Fraction(3600),
    "d": Fraction(86400),
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
DURATION_PATTERN = r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"
# Every part zero (`0s`, `0h0m`, `0.0s`): what a positive duration's schema refuses with `not`.
ZERO_DURATION_PATTERN = r"^(0+(\.0+)?(ms|s|m|h|d))+$"

# Binary (Ki, Mi, ...) as Kubernetes writes them, decimal (KB/kB, MB, ...) as disks are sold.
_SIZE_UNITS = {
    "B": 1,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
    "Pi": 1024**5,
    "KB": 1000,
    "kB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "PB": 1000**5,
}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*(B|Ki|Mi|Gi|Ti|Pi|KB|kB|MB|GB|TB|PB)$")
SIZE_PATTERN = r"^\d+(\.\d+)?\s*(B|Ki|Mi|Gi|Ti|Pi|KB|kB|MB|GB|TB|PB)$"
ZERO_SIZE_PATTERN = r"^0+(\.0+)?\s*(B|Ki|Mi|Gi|Ti|Pi|KB|kB|MB|GB|TB|PB)$"

# Far beyond any setting that means something, and small enough that every use of a value
# (float seconds, a timer, a sum of sizes divided by a speed) stays finite and in range.
MAX_DURATION = timedelta(days=36500)
MAX_DURATION_TEXT = "36500d (100 years)"
MAX_SIZE = 1024**6
MAX_SIZE_TEXT = "1024Pi"


def parse_duration(value: object) -> timedelta:
    """Read `90s`, `15m`, `2h30m` or `1d`; refuse numbers without a unit."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected a duration such as 30s, 15m or 2h, got {value!r}")
    text = str(value).strip()
    if isinstance(value, int | float) or text.replace(".", "", 1).isdigit():
        raise ValueError(
            f"{text!r} has no unit; write the unit explicitly, e.g. {text}s, {text}m or {text}h"
        )
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(
            f"{text!r} is not a duration; use a number and a unit (ms, s, m, h, d), "
            "e.g. 90s, 15m, 2h30m"
        )
    # Fraction, not float: a run of digits long enough to overflow a float is still "too long".
    total = sum(
        (Fraction(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text)), Fraction(0)
    )
    if total > MAX_DURATION.total_seconds():
        raise ValueError(f"{text!r} is too long; a duration is at most {MAX_DURATION_TEXT}")
    return timedelta(seconds=float(total))


def format_duration(value: timedelta) -> str:
    """Write a duration in the largest units that represent it exactly (`1h30m`, `90s`)."""
    millis = round(value.total_seconds() * 1000)
    if millis == 0:
        return "0s"
    if millis % 1000:
        return f"{millis}ms"
    seconds, parts = millis // 1000, []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


class ByteCount(int):
    """An `int` of bytes that remembers it is a size, so a default can be written as `64Mi`."""


def parse_size(value: object) -> int:
    """Read `500Gi`, `2TB` or `64Mi` into bytes; refuse numbers without a unit."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected a size such as 64Mi, 500Gi or 2TB, got {value!r}")
    text = str(value).strip()
    match = _SIZE.match(text)
    if match is None:
        if isinstance(value, int | float) or text.replace(".", "", 1).isdigit():
            raise ValueError(
                f"{text!r} has no unit; write it with one, e.g. {text}B, {text}Mi or {text}Gi"
            )
        raise ValueError(
            f"{text!r} is not a size; use a number and a unit "
            "(B, Ki, Mi, Gi, Ti, KB, MB, GB, TB), e.g. 64Mi or 2TB"
        )
    # Fraction, not float: a byte count above 2**53 must survive exactly.
    count = round(Fraction(match.group(1)) * _SIZE_UNITS[match.group(2)])
    if count > MAX_SIZE:
        raise ValueError(f"{text!r} is too large; a size is at most {MAX_SIZE_TEXT}")
    return ByteCount(count)


def format_size(value: int) -> str:
    """Write a byte count in the largest binary or decimal unit that divides it exactly."""
    for unit in ("Pi", "PB", "Ti", "TB", "Gi", "GB", "Mi", "MB", "Ki", "KB"):
        size = _SIZE_UNITS[unit]
        if value and value % size == 0:
            return f"{value // size}{unit}"
    return f"{value}B"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    # No "format": JSON Schema's "duration" format means ISO 8601 (PT15M), not 15m.
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN}),
]
"""A length of time written with its unit; a `timedelta` in Python."""

ByteSize = Annotated[
    int,
    BeforeValidator(parse_size),
    PlainSerializer(format_size, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": SIZE_PATTERN}),
]
"""A number of bytes written with its unit; an `int` of bytes in Python."""


@dataclass(frozen=True, slots=True)
class Bound:
    """The lower bound of a duration or size type, as the field reference shows it."""

    text: str


def bound_of(annotation: object) -> str | None:
    """The `Bound` text carried by a field's type (also inside `X | None`), if any."""
    if typing.get_origin(annotation) is Annotated:
        for extra in getattr(annotation, "__metadata__", ()):
            if isinstance(extra, Bound):
                return extra.text
    for member in typing.get_args(annotation):
        found = bound_of(member)
        if found is not None:
            return found
    return None


def _longer_than_zero(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than 0s")
    return value


def _more_than_zero(value: int) -> int:
    if value <= 0:
        raise ValueError("must be more than 0B")
    return value


# The schema keeps the plain pattern (the field reference reads the kind of a value from it)
# and refuses the zero forms with `not`, so an editor flags `0s` where the model would.
PositiveDuration = Annotated[
    Duration,
    AfterValidator(_longer_than_zero),
    WithJsonSchema(
        {"type": "string", "pattern": DURATION_PATTERN, "not": {"pattern": ZERO_DURATION_PATTERN}}
    ),
    Bound("> 0s"),
]
"""A duration that must be longer than zero: an interval, a period, a timeout, a typical
runtime. (A wait, a grace period or a cooldown of `0s` means "none" and is a `Duration`.)"""

PositiveByteSize = Annotated[
    ByteSize,
    AfterValidator(_more_than_zero),
    WithJsonSchema(
        {"type": "string", "pattern": SIZE_PATTERN, "not": {"pattern": ZERO_SIZE_PATTERN}}
    ),
    Bound("> 0B"),
]
"""A size that must be more than zero bytes: a speed, a part size."""


def seconds(value: timedelta) -> float:
    """The plain float of seconds the decision core takes."""
    return value.total_seconds()
