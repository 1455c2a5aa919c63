"""Replayable market history for the simulator: spot prices over time, spot capacity over time.

Why: the simulator must price and preempt cloud pools the way a real market did, and
reproducibly. Two recorded datasets do that (`../shared/data/spot/SOURCE.md`):

* `SpotPriceSeries` — a step function of spot price-change events, exactly what EC2's
  `DescribeSpotPriceHistory` returns (the live AWS source builds the same type from the API,
  so the cost model sees live and replayed history alike). `price_at(t)`, `window(t0, t1)`.
* `AvailabilityTrace` — the Can't Be Late traces: alive/obtainable spot instances per tick.
  `available_at(t)`, `preemption_events()`, `preemptions_between(t0, t1)` and the observed
  hazard per running hour (preemptions / instance-hours alive).

Everything here is pure after loading (no clock, no network): the simulator calls it with
its own time. `SpotPriceReplaySource` wraps a set of series as a `PriceSource`.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from federator.errors import UserError
from federator.prices.quotes import PriceQuote, PriceRef, Rejection, RejectReason


@dataclass(frozen=True, slots=True)
class WindowStats:
    """Time-weighted spot price statistics over a window (what the cost model's history needs)."""

    start_s: float
    end_s: float
    mean_usd_per_hour: float
    min_usd_per_hour: float
    max_usd_per_hour: float
    changes: int  # price-change events inside the window


@dataclass(frozen=True, slots=True)
class SpotPriceSeries:
    """Spot price of one instance type in one zone as a step function of time (epoch s)."""

    instance_type: str
    zone: str
    product: str
    times_s: tuple[float, ...]  # ascending
    prices_usd_per_hour: tuple[float, ...]

    def price_at(self, t: float) -> float | None:
        """The price in force at `t` (None before the first known event)."""
        index = bisect.bisect_right(self.times_s, t) - 1
        return None if index < 0 else self.prices_usd_per_hour[index]

    def changed_at(self, t: float) -> float | None:
        """When the price in force at `t` was set."""
        index = bisect.bisect_right(self.times_s, t) - 1
        return None if index < 0 else self.times_s[index]

    def window(self, start_s: float, end_s: float) -> WindowStats | None:
        """Time-weighted mean, min and max over [start, end); None if nothing is known there."""
        if end_s <= start_s:
            return None
        first = bisect.bisect_right(self.times_s, start_s) - 1
        cuts = [start_s] + [t for t in self.times_s if start_s < t < end_s] + [end_s]
        if first < 0:  # history starts inside the window: use only the known part
            if not self.times_s or self.times_s[0] >= end_s:
                return None
            cuts = [t for t in cuts if t >= self.times_s[0]]
            cuts[0] = self.times_s[0]
        weighted, seen = 0.0, []
        for left, right in itertools.pairwise(cuts):
            price = self.price_at(left)
            if price is None:
                continue
            weighted += price * (right - left)
            seen.append(price)
        span = cuts[-1] - cuts[0]
        if not seen or span <= 0:
            return None
        return WindowStats(
            start_s=start_s,
            end_s=end_s,
            mean_usd_per_hour=weighted / span,
            min_usd_per_hour=min(seen),
            max_usd_per_hour=max(seen),
            changes=len(cuts) - 2,
        )


def series_from_records(
    records: Iterable[Mapping[str, Any]],
) -> dict[tuple[str, str], SpotPriceSeries]:
    """Group `DescribeSpotPriceHistory` records into one series per (instance type, zone).

    Records come newest first from the API; they are sorted here. Unreadable records raise
    ValueError naming the record, because a half-read history would replay a wrong market.
    Two prices at one instant of one series (the API sends none; a file pieced together may)
    leave the higher in force, the cautious guess: a live answer is not worth refusing for
    it, and the file loaders refuse it (`series_and_conflicts`).
    """
    return series_and_conflicts(records)[0]


def series_and_conflicts(
    records: Iterable[Mapping[str, Any]],
) -> tuple[dict[tuple[str, str], SpotPriceSeries], list[str]]:
    """`series_from_records`, and each record that gives a series (instance type, zone,
    product) a second, different price at an instant another record already priced, named
    with both record numbers (counted from 1, in file order). A record repeated exactly
    (pages that overlap) counts once."""
    grouped: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    first: dict[tuple[str, str, str, float], tuple[int, float]] = {}
    conflicts = []
    for number, record in enumerate(records, start=1):  # counted from 1, as files are read
        try:
            key = (
                str(record["InstanceType"]),
                str(record["AvailabilityZone"]),
                str(record.get("ProductDescription", "")),
            )
            stamp = _timestamp(record["Timestamp"])
            price = float(record["SpotPrice"])
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"record {number}: {error!r}") from None
        # NaN is not a price at all (and never equals itself): the price checks refuse it, once.
        if math.isfinite(price):
            seen = first.setdefault((*key, stamp), (number, price))
            if seen[0] != number and seen[1] == price:
                continue  # the same record again (overlapping pages): one event, not two
            if seen[1] != price:
                when = datetime.fromtimestamp(stamp, UTC).isoformat()
                conflicts.append(
                    f"record {number}: {key[0]} in {key[1]} at {when} costs {price:g} USD/h, "
                    f"and record {seen[0]} gives {seen[1]:g} at that same instant"
                )
        grouped.setdefault(key, []).append((stamp, price))
    result: dict[tuple[str, str], SpotPriceSeries] = {}
    for (instance_type, zone, product), events in sorted(grouped.items()):
        events.sort()
        result[(instance_type, zone)] = SpotPriceSeries(
            instance_type=instance_type,
            zone=zone,
            product=product,
            times_s=tuple(t for t, _ in events),
            prices_usd_per_hour=tuple(p for _, p in events),
        )
    return result, conflicts


def _timestamp(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    text = str(value).replace("Z", "+00:00")
    # The API (and moto) may send nanoseconds; datetime takes at most microseconds.
    if "." in text:
        head, _, tail = text.partition(".")
        fraction = tail[: len(tail) - len(tail.lstrip("0123456789"))]
        text = f"{head}.{fraction[:6]}{tail[len(fraction) :]}"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no time zone")
    return parsed.timestamp()


def load_spot_price_history(paths: Iterable[Path]) -> dict[tuple[str, str], SpotPriceSeries]:
    """Read saved `DescribeSpotPriceHistory` JSON files (e.g. `training_on_a_dime/...`)."""
    records: list[Mapping[str, Any]] = []
    for path in paths:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            records.extend(document["SpotPriceHistory"])
        except OSError as error:
            raise UserError(f"{path}: cannot read spot price history: {error.strerror}") from error
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise UserError(f"{path}: not a DescribeSpotPriceHistory document ({error})") from error
    try:
        series, conflicts = series_and_conflicts(records)
    except ValueError as error:
        raise UserError(f"spot price history: {error}") from error
    if conflicts:
        shown = "\n  ".join(conflicts[:20])
        raise UserError(
            f"spot price history: {len(conflicts)} record(s) give a second price at the same "
            f"instant (records counted over the files in the order given):\n  {shown}"
        )
    return series


@dataclass(frozen=True, slots=True)
class SpotPriceReplaySource:
    """`PriceSource` that answers with the recorded spot price in force at `now`.

    On-demand prices are not in the history; they come from `on_demand_usd_per_hour`
    (instance type -> price, e.g. from a catalog). The quote's `observed_at` is when the price
    in force was set, so its age is real market age, not replay time.
    """

    series: Mapping[tuple[str, str], SpotPriceSeries]
    gpus_per_instance: Mapping[str, int]
    on_demand_usd_per_hour: Mapping[str, float] = field(default_factory=dict)
    label: str = "replay"

    @property
    def name(self) -> str:
        return "replay"

    def quote(self, ref: PriceRef, now: float) -> PriceQuote | Rejection:
        if ref.instance_type not in self.gpus_per_instance:
            return Rejection(
                RejectReason.UNKNOWN_INSTANCE_TYPE,
                f"{self.label}: no GPU count known for {ref.instance_type}",
            )
        zones = [
            s
            for (kind, zone), s in self.series.items()
            if kind == ref.instance_type
            and (ref.zone is None or zone == ref.zone)
            and zone.startswith(ref.region)
        ]
        priced = [(s.price_at(now), s) for s in zones]
        known = [(price, s) for price, s in priced if price is not None]
        if not known:
            return Rejection(
                RejectReason.NO_ZONE_DATA,
                f"{self.label}: no spot price for {ref.describe()} at t={now:.0f}",
            )
        price, chosen = min(known, key=lambda item: (item[0], item[1].zone))
        return PriceQuote(
            instance_type=ref.instance_type,
            region=ref.region,
            zone=chosen.zone,
            gpus_per_instance=self.gpus_per_instance[ref.instance_type],
            on_demand_usd_per_hour=self.on_demand_usd_per_hour.get(ref.instance_type),
            spot_usd_per_hour=price,
            source=f"{self.label}:{chosen.instance_type}@{chosen.zone}",
            observed_at=chosen.changed_at(now) or now,
        )


@dataclass(frozen=True, slots=True)
class PreemptionEvent:
    """At `time_s` (seconds from the trace start), `lost` running instances were reclaimed."""

    time_s: float
    lost: int


@dataclass(frozen=True, slots=True)
class AvailabilityTrace:
    """Spot instances alive (or obtainable) per tick in one zone, from the Can't Be Late data.

    Time is seconds from the start of the trace; `wrap=True` replays it in a loop so a
    simulation longer than the trace still has a market.
    """

    name: str  # e.g. "availability/1-node/aws-02-15-2023/us-east-1a_v100_1"
    zone: str
    tick_s: float
    counts: tuple[int, ...]

    @property
    def duration_s(self) -> float:
        return self.tick_s * len(self.counts)

    @property
    def capacity(self) -> int:
        """Instances requested in the experiment (the largest count seen)."""
        return max(self.counts, default=0)

    def available_at(self, t: float, wrap: bool = False) -> int:
        index = self._index(t, wrap)
        return 0 if index is None else self.counts[index]

    def _index(self, t: float, wrap: bool) -> int | None:
        if t < 0:
            return None
        index = int(t // self.tick_s)
        if wrap:
            return index % len(self.counts) if self.counts else None
        return index if index < len(self.counts) else None

    def preemption_events(self) -> tuple[PreemptionEvent, ...]:
        """Every drop in the count, at the tick where it is first seen."""
        return tuple(
            PreemptionEvent(time_s=i * self.tick_s, lost=before - after)
            for i, (before, after) in enumerate(zip(self.counts, self.counts[1:], strict=False), 1)
            if after < before
        )

    def preemptions_between(self, start_s: float, end_s: float) -> int:
        """Instances lost in [start, end) (no wrap)."""
        return sum(e.lost for e in self.preemption_events() if start_s <= e.time_s < end_s)

    def exposure_instance_hours(self) -> float:
        """Instance-hours alive over the trace: the denominator of the observed hazard."""
        return sum(self.counts) * self.tick_s / 3600.0

    def availability(self) -> float:
        """Mean share of the requested instances alive per tick."""
        return sum(self.counts) / (len(self.counts) * self.capacity) if self.capacity else 0.0

    def observed_rate_per_hour(self) -> float:
        """Preemptions per instance-hour alive (the hazard the cost model's λ stands for)."""
        exposure = self.exposure_instance_hours()
        lost = sum(e.lost for e in self.preemption_events())
        return lost / exposure if exposure > 0 else 0.0


def load_availability_trace(path: Path, name: str | None = None) -> AvailabilityTrace:
    """Read one `{"metadata": {"gap_seconds": G}, "data": [...]}` trace file."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        tick = float(document["metadata"]["gap_seconds"])
        counts = tuple(int(value) for value in document["data"])
    except OSError as error:
        raise UserError(f"{path}: cannot read the spot trace: {error.strerror}") from error
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise UserError(f"{path}: not a spot availability trace ({error!r})") from error
    if tick <= 0 or any(value < 0 for value in counts):
        raise UserError(f"{path}: gap_seconds must be positive and counts non-negative")
    zone = path.stem.split("_", 1)[0]
    return AvailabilityTrace(name=name or path.stem, zone=zone, tick_s=tick, counts=counts)


def load_availability_traces(root: Path) -> dict[str, AvailabilityTrace]:
    """Every trace under `root`, keyed by its path relative to `root` without `.json`."""
    traces: dict[str, AvailabilityTrace] = {}
    for path in sorted(root.rglob("*.json")):
        key = path.relative_to(root).with_suffix("").as_posix()
        traces[key] = load_availability_trace(path, name=key)
    return traces
