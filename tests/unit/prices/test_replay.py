"""Recorded spot prices and spot capacity replay exactly, for the simulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from federator.errors import UserError
from federator.prices.quotes import PriceQuote, PriceRef, Rejection
from federator.prices.replay import (
    AvailabilityTrace,
    SpotPriceReplaySource,
    load_availability_trace,
    load_availability_traces,
    load_spot_price_history,
    series_from_records,
)

T0 = 1_577_836_800.0  # 2020-01-01T00:00:00Z


def record(zone: str, price: str, stamp: str) -> dict[str, str]:
    return {"AvailabilityZone": zone, "InstanceType": "p3.2xlarge",
            "ProductDescription": "Linux/UNIX", "SpotPrice": price, "Timestamp": stamp}  # fmt: skip


@pytest.fixture
def series() -> dict[tuple[str, str], object]:
    # Newest first, as the API sends them; nanosecond precision as moto sends it.
    return series_from_records([
        record("us-east-1a", "3.0", "2020-01-01T02:00:00.000000000Z"),
        record("us-east-1a", "1.0", "2020-01-01T00:00:00.000Z"),
        record("us-east-1b", "2.0", "2020-01-01T01:00:00+00:00"),
    ])  # fmt: skip


def test_price_at_is_a_step_function(series: dict) -> None:  # type: ignore[type-arg]
    a = series[("p3.2xlarge", "us-east-1a")]
    assert a.price_at(T0 - 1) is None
    assert a.price_at(T0) == 1.0
    assert a.price_at(T0 + 7199) == 1.0
    assert a.price_at(T0 + 7200) == 3.0
    assert a.changed_at(T0 + 9000) == T0 + 7200


def test_window_is_time_weighted(series: dict) -> None:  # type: ignore[type-arg]
    a = series[("p3.2xlarge", "us-east-1a")]
    stats = a.window(T0 + 3600, T0 + 3 * 3600)  # 1h at 1.0, then 1h at 3.0
    assert stats is not None
    assert stats.mean_usd_per_hour == pytest.approx(2.0)
    assert (stats.min_usd_per_hour, stats.max_usd_per_hour, stats.changes) == (1.0, 3.0, 1)
    partial = a.window(T0 - 3600, T0 + 3600)  # only the known hour counts
    assert partial is not None
    assert partial.mean_usd_per_hour == pytest.approx(1.0)
    assert a.window(T0 - 7200, T0 - 3600) is None


def test_replay_source_quotes_the_cheapest_zone_in_force(series: dict) -> None:  # type: ignore[type-arg]
    source = SpotPriceReplaySource(series, {"p3.2xlarge": 1}, {"p3.2xlarge": 3.06})
    early = source.quote(PriceRef("p3.2xlarge", "us-east-1"), T0 + 1800)
    late = source.quote(PriceRef("p3.2xlarge", "us-east-1"), T0 + 3 * 3600)
    assert isinstance(early, PriceQuote)
    assert isinstance(late, PriceQuote)
    assert (early.zone, early.spot_usd_per_hour) == ("us-east-1a", 1.0)
    assert (late.zone, late.spot_usd_per_hour) == ("us-east-1b", 2.0)
    assert late.age_s(T0 + 3 * 3600) == 2 * 3600  # real market age, not replay time
    assert isinstance(source.quote(PriceRef("p3.2xlarge", "us-east-1"), T0 - 1), Rejection)
    assert isinstance(source.quote(PriceRef("p9.x", "us-east-1"), T0), Rejection)


def test_the_shared_price_history_loads_completely(shared_data: Path) -> None:
    path = shared_data / "spot" / "training_on_a_dime" / "logs/aws/cost/us-east-1/p3.2xlarge.json"
    history = load_spot_price_history([path])
    counts = {zone: len(s.times_s) for (_, zone), s in history.items()}
    assert counts == {"us-east-1b": 249, "us-east-1c": 195, "us-east-1d": 235, "us-east-1f": 195}
    prices = [p for s in history.values() for p in s.prices_usd_per_hour]
    assert min(prices) == pytest.approx(0.918)
    assert max(prices) == pytest.approx(1.1561, abs=1e-3)


def test_trace_events_exposure_and_rate() -> None:
    trace = AvailabilityTrace("t", "z", tick_s=60.0, counts=(1, 1, 0, 0, 1, 1, 1, 0))
    assert [e.time_s for e in trace.preemption_events()] == [120.0, 420.0]
    assert trace.preemptions_between(0, 420) == 1
    assert trace.exposure_instance_hours() == pytest.approx(5 / 60)
    assert trace.observed_rate_per_hour() == pytest.approx(2 / (5 / 60))
    assert trace.available_at(150) == 0
    assert trace.available_at(300) == 1
    assert trace.available_at(480) == 0  # past the end, no wrap: nothing
    assert trace.available_at(480 + 60, wrap=True) == 1
    assert trace.availability() == pytest.approx(5 / 8)


def test_multi_node_drops_count_every_lost_instance() -> None:
    trace = AvailabilityTrace("t", "z", tick_s=300.0, counts=(4, 4, 1, 3, 0))
    assert [(e.time_s, e.lost) for e in trace.preemption_events()] == [(600.0, 3), (1200.0, 3)]
    assert trace.capacity == 4


def test_the_shared_traces_load_with_their_known_figures(shared_data: Path) -> None:
    traces = load_availability_traces(shared_data / "spot" / "spot-traces")
    assert len(traces) == 34
    v100 = traces["preemption/1-node/aws-04-22-2023/us-east-1c_v100_1"]
    assert (v100.zone, v100.tick_s, len(v100.counts)) == ("us-east-1c", 32.0, 19961)
    assert len(v100.preemption_events()) == 41
    # anchors-cost.md: V100 preemption traces show 0.31-0.74 preemptions per running hour.
    rates = [traces[f"preemption/1-node/aws-04-22-2023/{z}_v100_1"].observed_rate_per_hour()
             for z in ("us-east-1c", "us-east-1f", "us-west-2b", "us-west-2c")]  # fmt: skip
    assert min(rates) > 0.25
    assert max(rates) < 0.8
    a = traces["availability/1-node/aws-02-15-2023/us-east-1a_v100_1"]
    assert a.availability() == pytest.approx(0.17, abs=0.01)
    sixteen = traces["availability/16-node/aws-08-27-2023/us-east-2b_v100_1"]
    assert sixteen.capacity == 16
    assert sum(e.lost for e in sixteen.preemption_events()) == 910


def test_a_broken_trace_is_a_user_error(tmp_path: Path) -> None:
    from federator.errors import UserError

    path = tmp_path / "zone_x.json"
    path.write_text('{"metadata": {}, "data": [1]}', encoding="utf-8")
    with pytest.raises(UserError, match="not a spot availability trace"):
        load_availability_trace(path)


def saved(price: str) -> dict[str, str]:
    """One `DescribeSpotPriceHistory` record of p3.2xlarge in us-east-1a at 10:00."""
    return {
        "AvailabilityZone": "us-east-1a",
        "InstanceType": "p3.2xlarge",
        "ProductDescription": "Linux/UNIX",
        "SpotPrice": price,
        "Timestamp": "2020-02-20T10:00:00.000Z",
    }


def test_a_saved_history_with_two_prices_at_one_instant_is_a_user_error(tmp_path: Path) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps({"SpotPriceHistory": [saved("0.9")]}))
    second.write_text(json.dumps({"SpotPriceHistory": [saved("0.9"), saved("2.5")]}))
    assert load_spot_price_history([first, first])  # the same record twice: one price
    with pytest.raises(UserError, match=r"record 3: p3.2xlarge in us-east-1a at 2020-02-20T10:00"):
        load_spot_price_history([first, second])


def test_a_price_that_is_not_finite_is_not_a_second_price_of_its_instant(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"SpotPriceHistory": [saved("NaN"), saved("NaN")]}))
    assert load_spot_price_history([path])  # NaN != NaN: it conflicted with itself
