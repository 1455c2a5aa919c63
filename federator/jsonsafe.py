"""Pure: numbers as JSON can carry them.

JSON has no Infinity or NaN (`json.dumps` writes them anyway, and strict parsers refuse them),
yet the cost model says "never" with an infinite wait, and a $0 cap with spend is used
infinitely. Every JSON federator writes (/debug/decisions, `plan --json`, `status --json`,
`sync --json`, the decision log line) turns such a number into null with these helpers, so
that a reader meets one rule everywhere.
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite(value: float | None, digits: int | None = None) -> float | None:
    """`value`, or None where it is None, NaN or infinite; rounded to `digits` when given."""
    if value is None or not math.isfinite(value):
        return None
    return value if digits is None else round(value, digits)


def finite_within(value: Any) -> Any:
    """`value` with every NaN or infinite float in it, in dicts and lists at any depth, as
    None; every other value (ints and bools too) as it was."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite_within(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite_within(item) for item in value]
    return value


def dumps(value: Any) -> str:
    """`value` as indented strict JSON, a NaN or infinite float in it as null (`finite_within`);
    anything else JSON cannot carry fails loudly rather than writing a `NaN` token."""
    return json.dumps(finite_within(value), indent=2, allow_nan=False)
