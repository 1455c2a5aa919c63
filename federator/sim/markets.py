"""Reading the recorded spot markets a simulation replays (`--spot-prices`, `--spot-trace`).

A replayed market is as much a source of truth as the trace: a price of -5 or NaN would turn
every figure into nonsense, and a skipped record would keep the previous price in force for
longer than the market did, i.e. a guess. So reading is all-or-nothing, like the trace's:
the bad records are counted, the first `MAX_REPORTED_ERRORS` reported with their file and
record number (counted from 1, in file order), and nothing runs (`UserError`, exit 2).
Prices are checked with the rules live prices pass (`federator.prices.validation`): finite
and above zero, and in a spot pool not above the pool's on-demand price.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from federator import errors
from federator.prices import replay
from federator.prices.replay import SpotPriceSeries
from federator.prices.validation import check_amount, compare_spot_to_on_demand
from federator.sim.cloud import PriceHistory, price_history_from_series
from federator.textfiles import read_utf8

MAX_REPORTED_ERRORS = 20
_REFUSED = "the replay refuses bad prices rather than guessing; fix or remove them"

# The price histories we replay are for these AWS types (../shared/data/spot/SOURCE.md).
GPUS_PER_INSTANCE = {"p3.2xlarge": 1, "p3.8xlarge": 4, "p3.16xlarge": 8}


def read_json(path: Path, what: str) -> Any:
    """A JSON document from `path`, or a `UserError` naming the file and the place."""
    text = read_utf8(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise errors.UserError(
            f"{path}:{error.lineno}: the {what} is not valid JSON "
            f"({error.msg}, column {error.colno})"
        ) from None
    except RecursionError:
        raise errors.UserError(f"{path}: the {what} is nested too deeply to read") from None


def load_price_history(
    path: Path,
    zone: str,
    pool: str,
    on_demand_per_gpu_hour: float | None,
    gpus_per_node: int,
    instance_type: str | None = None,
) -> PriceHistory:
    """The spot prices of `zone` in a saved `DescribeSpotPriceHistory` file, per GPU-hour.

    `on_demand_per_gpu_hour` is the pool's on-demand price (None: unknown, not compared).
    `instance_type` is the pool's (None: its price source names none); the file's series for
    it is replayed, and a file that leaves the choice open (another instance type only,
    several with none named, or one instance type under several products such as Linux and
    Windows) is refused rather than replaying a market the pool does not buy.
    """
    what = "spot price history (DescribeSpotPriceHistory JSON)"
    document = read_json(path, what)
    records = document.get("SpotPriceHistory") if isinstance(document, dict) else None
    if not isinstance(records, list):
        raise errors.UserError(
            f"{path}: not a {what}: expected an object with a SpotPriceHistory list"
        )
    problems = [
        f"{path}: record {number}: {problem}"
        for number, record in enumerate(records, start=1)
        if (problem := _record_problem(record))
    ]
    if problems:
        raise errors.UserError(_report(path, "record", problems))
    series, conflicts = replay.series_and_conflicts(records)
    if conflicts:
        raise errors.UserError(_report(path, "record", [f"{path}: {c}" for c in conflicts]))
    matches = {kind: s for (kind, series_zone), s in sorted(series.items()) if series_zone == zone}
    if not matches:
        zones = sorted({series_zone for _, series_zone in series})
        raise errors.UserError(f"{path}: no spot prices for zone {zone!r} (zones: {zones})")
    chosen = _series_of(path, zone, pool, instance_type, matches)
    _one_product(path, zone, records, chosen.instance_type)
    gpus = GPUS_PER_INSTANCE.get(chosen.instance_type, gpus_per_node)
    _check_below_on_demand(path, records, chosen, gpus, pool, on_demand_per_gpu_hour)
    return price_history_from_series(chosen, gpus)


def _series_of(
    path: Path,
    zone: str,
    pool: str,
    instance_type: str | None,
    matches: Mapping[str, SpotPriceSeries],
) -> SpotPriceSeries:
    """The zone's series of the pool's instance type (the only one, if the pool names none)."""
    kinds = sorted(matches)
    if instance_type is not None:
        if instance_type not in matches:
            raise errors.UserError(
                f"{path}: no spot prices for {instance_type} (the instance type of pool "
                f"{pool}) in zone {zone!r}; the zone has {', '.join(kinds)}"
            )
        return matches[instance_type]
    if len(kinds) > 1:
        raise errors.UserError(
            f"{path}: zone {zone!r} has spot prices for {', '.join(kinds)}, and pool {pool}'s "
            "price names no instance type to choose one: keep one instance type in the file"
        )
    return matches[kinds[0]]


def _one_product(path: Path, zone: str, records: list[Any], instance_type: str) -> None:
    """Refuse two products (Linux/UNIX and Windows) of the series: their records interleave,
    and the series keeps only one of them without a word."""
    products = sorted(
        {
            str(record.get("ProductDescription", ""))
            for record in records
            if record["InstanceType"] == instance_type and record["AvailabilityZone"] == zone
        }
    )
    if len(products) > 1:
        raise errors.UserError(
            f"{path}: {instance_type} in zone {zone!r} has spot prices for several products "
            f"({', '.join(repr(p) for p in products)}); keep the one the pool runs "
            "(usually 'Linux/UNIX')"
        )


def _record_problem(record: object) -> str | None:
    """What is wrong with one `SpotPriceHistory` record, in words (None: nothing)."""
    if not isinstance(record, Mapping):
        return f"expected an object, found {_shown(record)}"
    missing = [
        key
        for key in ("InstanceType", "AvailabilityZone", "SpotPrice", "Timestamp")
        if key not in record
    ]
    if missing:
        return f"has no {', '.join(missing)}"
    for key in ("InstanceType", "AvailabilityZone"):
        if not isinstance(record[key], str) or not record[key].strip():
            return f"{key} must be a non-empty string, found {_shown(record[key])}"
    price = _spot_price(record["SpotPrice"])
    if price is None:
        return f"SpotPrice {_shown(record['SpotPrice'])} is not a number"
    if check_amount(price, "spot", "SpotPrice") is not None:  # the rule live prices pass
        return (
            f"SpotPrice {_shown(record['SpotPrice'])} is not a price: it must be a finite "
            "number of USD per hour above 0"
        )
    try:
        replay.series_from_records([record])
    except ValueError:
        return (
            f"Timestamp {_shown(record['Timestamp'])} is not an ISO 8601 time with a time zone "
            "(e.g. 2020-02-20T22:54:57.000Z)"
        )
    return None


def _spot_price(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _check_below_on_demand(
    path: Path,
    records: list[Mapping[str, Any]],
    series: SpotPriceSeries,
    gpus: int,
    pool: str,
    on_demand: float | None,
) -> None:
    """Refuse a replayed spot price above the pool's on-demand price, as live quotes are."""
    if on_demand is None:
        return
    problems = []
    for number, record in enumerate(records, start=1):
        if (record["InstanceType"], record["AvailabilityZone"]) != (
            series.instance_type,
            series.zone,
        ):
            continue
        per_gpu = float(record["SpotPrice"]) / gpus
        if compare_spot_to_on_demand(on_demand, per_gpu) == "above":
            problems.append(
                f"{path}: record {number}: spot {record['SpotPrice']} USD/h for "
                f"{series.instance_type} ({gpus} GPU(s)) is {per_gpu:.4g} per GPU-hour, above "
                f"the pool's on-demand {on_demand:.4g}"
            )
    if problems:
        raise errors.UserError(
            _report(path, "record", problems)
            + f"\n  a spot pool ({pool}) refuses spot prices above on-demand, as it does live; "
            "replay a market of the pool's own region and instance type"
        )


def load_availability(path: Path) -> replay.AvailabilityTrace:
    """A Can't Be Late trace: `{"metadata": {"gap_seconds": G}, "data": [count, ...]}`."""
    what = "spot availability trace"
    document = read_json(path, what)
    shape = 'expected {"metadata": {"gap_seconds": SECONDS}, "data": [COUNT, ...]}'
    if not isinstance(document, dict):
        raise errors.UserError(f"{path}: not a {what}: {shape}")
    metadata = document.get("metadata")
    if not isinstance(metadata, dict) or "gap_seconds" not in metadata:
        raise errors.UserError(f"{path}: not a {what}: metadata.gap_seconds is missing; {shape}")
    gap = metadata["gap_seconds"]  # a JSON number (SpotPrice is text in AWS's JSON; this not)
    tick = float(gap) if isinstance(gap, int | float) and not isinstance(gap, bool) else None
    if tick is None or not math.isfinite(tick) or tick <= 0:
        raise errors.UserError(
            f"{path}: metadata.gap_seconds must be a finite number of seconds > 0, found "
            f"{_shown(metadata['gap_seconds'])}"
        )
    data = document.get("data")
    if not isinstance(data, list):
        raise errors.UserError(f"{path}: not a {what}: data is missing or not a list; {shape}")
    problems = [
        f"{path}: data[{index}]: expected a whole number of instances >= 0, found {_shown(value)}"
        for index, value in enumerate(data)
        if not _is_count(value)
    ]
    if problems:
        raise errors.UserError(_report(path, "count", problems))
    counts = tuple(int(value) for value in data)
    if not counts or max(counts) <= 0:
        raise errors.UserError(f"{path}: no spot instance is ever available in this trace")
    zone = path.stem.split("_", 1)[0]
    return replay.AvailabilityTrace(name=path.stem, zone=zone, tick_s=tick, counts=counts)


def _is_count(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    return isinstance(value, float) and value.is_integer() and value >= 0


def _shown(value: object) -> str:
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _report(path: Path, kind: str, problems: list[str]) -> str:
    shown = problems[:MAX_REPORTED_ERRORS]
    more = len(problems) - len(shown)
    tail = f"\n  ... and {more} more bad {kind}(s)" if more else ""
    refused = _REFUSED if kind == "record" else "fix them before simulating"
    return f"{path}: {len(problems)} bad {kind}(s); {refused}:\n  " + "\n  ".join(shown) + tail
