"""`jsonsafe`: the one rule that turns numbers JSON cannot carry (NaN, ±infinity) into null."""

from __future__ import annotations

import json
import math

import pytest

from federator import jsonsafe

INF, NAN = math.inf, math.nan


@pytest.mark.parametrize(
    ("value", "digits", "expected"),
    [
        (INF, None, None),
        (-INF, None, None),
        (NAN, None, None),
        (None, None, None),
        (INF, 2, None),
        (12.345, None, 12.345),
        (12.345, 2, 12.35),
        (12.5, 0, 12.0),
        (0.0, 4, 0.0),
        (-3.25, None, -3.25),
        (7, None, 7),
    ],
)
def test_finite(value: float | None, digits: int | None, expected: float | None) -> None:
    assert jsonsafe.finite(value, digits) == expected


def test_finite_within_nulls_every_non_finite_float_at_any_depth_and_keeps_the_rest() -> None:
    document = {
        "wait_s": INF,
        "floor": -INF,
        "ratio": NAN,
        "cost": 1.5,
        "count": 3,
        "complete": True,
        "none": None,
        "name": "inf",
        "items": [INF, 2, False, {"deep": [NAN, 0.25]}],
    }
    safe = jsonsafe.finite_within(document)
    assert safe == {
        "wait_s": None,
        "floor": None,
        "ratio": None,
        "cost": 1.5,
        "count": 3,
        "complete": True,
        "none": None,
        "name": "inf",
        "items": [None, 2, False, {"deep": [None, 0.25]}],
    }
    assert safe["complete"] is True  # bools stay bools
    assert safe["items"][2] is False
    assert type(safe["count"]) is int
    json.dumps(safe, allow_nan=False)  # a strict writer takes it
    assert document["wait_s"] == INF  # the input is left as it was
