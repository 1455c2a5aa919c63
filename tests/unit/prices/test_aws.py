"""The live AWS source against botocore's Stubber: paging, throttling, caching, staleness.

moto (the local emulator, used in tests/integration/test_prices_aws_moto.py) does not page
DescribeSpotPriceHistory, cannot throttle, and does not implement GetSpotPlacementScores, so
those behaviours are pinned here with Stubber; the response shapes follow the EC2 API
reference (DescribeAvailabilityZones, DescribeSpotPriceHistory, GetSpotPlacementScores).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from tenacity import wait_none

from federator.core.models import CapacityType
from federator.prices.aws import AwsSettings, AwsSpotSource
from federator.prices.fixed import FixedPriceSource
from federator.prices.quotes import PriceQuote, PriceRef, Rejection, RejectReason
from federator.prices.validation import AcceptedPrice, check_quote

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC).timestamp()
ZONES = {
    "AvailabilityZones": [
        {"ZoneName": "us-east-1a", "ZoneId": "use1-az6", "RegionName": "us-east-1",
         "State": "available"},
        {"ZoneName": "us-east-1b", "ZoneId": "use1-az1", "RegionName": "us-east-1",
         "State": "available"},
    ]
}  # fmt: skip


def price(zone: str, amount: str, hour: int) -> dict[str, Any]:
    return {"AvailabilityZone": zone, "InstanceType": "p4d.24xlarge",
            "ProductDescription": "Linux/UNIX", "SpotPrice": amount,
            "Timestamp": datetime(2026, 11, 29, hour, 0, tzinfo=UTC)}  # fmt: skip


HISTORY_PARAMS = {
    "InstanceTypes": ["p4d.24xlarge"],
    "ProductDescriptions": ["Linux/UNIX"],
    "StartTime": ANY,
}
SCORE_PARAMS = {
    "InstanceTypes": ["p4d.24xlarge"],
    "TargetCapacity": 4,
    "TargetCapacityUnitType": "units",
    "SingleAvailabilityZone": True,
    "RegionNames": ["us-east-1"],
}


@pytest.fixture
def ec2(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Stubber]]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.session.Session().client("ec2", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def make_source(client: Any, **settings: Any) -> AwsSpotSource:
    return AwsSpotSource(
        {"us-east-1": {"p4d.24xlarge": 4}},
        on_demand=FixedPriceSource(21.957642 / 8, CapacityType.ON_DEMAND),
        settings=AwsSettings(**settings),
        client_factory=lambda region: client,
        retry_wait=wait_none(),
    )


def expect_refresh(stubber: Stubber, pages: list[dict[str, Any]], scores: bool = True) -> None:
    stubber.add_response("describe_availability_zones", ZONES, {})
    for index, page in enumerate(pages):
        params = dict(HISTORY_PARAMS)
        if index:
            params["NextToken"] = f"page-{index}"
        stubber.add_response("describe_spot_price_history", page, params)
    if scores:
        stubber.add_response(
            "get_spot_placement_scores",
            {"SpotPlacementScores": [
                {"Region": "us-east-1", "AvailabilityZoneId": "use1-az6", "Score": 3},
                {"Region": "us-east-1", "AvailabilityZoneId": "use1-az1", "Score": 9},
            ]},
            SCORE_PARAMS,
        )  # fmt: skip


TWO_PAGES = [
    {"SpotPriceHistory": [price("us-east-1a", "7.5000", 7), price("us-east-1b", "6.2890", 6)],
     "NextToken": "page-1"},
    {"SpotPriceHistory": [price("us-east-1a", "9.0000", 3)], "NextToken": ""},
]  # fmt: skip


def test_all_pages_are_read_and_the_latest_price_per_zone_wins(ec2: tuple[Any, Stubber]) -> None:
    client, stubber = ec2
    expect_refresh(stubber, TWO_PAGES)
    source = make_source(client)
    assert source.refresh(NOW).outcomes == {"us-east-1": "ok"}

    history = source.history("p4d.24xlarge", "us-east-1a")
    assert history is not None
    assert history.prices_usd_per_hour == (9.0, 7.5)  # page 2 is older; sorted by time
    quote = source.quote(PriceRef("p4d.24xlarge", "us-east-1"), NOW + 60)
    assert isinstance(quote, PriceQuote)
    assert (quote.zone, quote.spot_usd_per_hour) == ("us-east-1b", 6.289)  # cheapest zone
    assert quote.placement_score == 9.0  # use1-az1 is us-east-1b in this account
    assert quote.observed_at == NOW
    assert quote.on_demand_usd_per_hour == pytest.approx(21.957642)
    scores = source.placement_scores("us-east-1", "p4d.24xlarge")
    assert {(s.zone, s.zone_id, s.score) for s in scores} == {
        ("us-east-1a", "use1-az6", 3), ("us-east-1b", "use1-az1", 9)
    }  # fmt: skip


def test_a_zone_can_be_named_by_its_az_id(ec2: tuple[Any, Stubber]) -> None:
    client, stubber = ec2
    expect_refresh(stubber, TWO_PAGES)
    source = make_source(client)
    source.refresh(NOW)
    quote = source.quote(PriceRef("p4d.24xlarge", "us-east-1", zone="use1-az6"), NOW)
    assert isinstance(quote, PriceQuote)
    assert (quote.zone, quote.spot_usd_per_hour, quote.placement_score) == ("us-east-1a", 7.5, 3.0)


def test_throttled_pages_are_retried_from_where_they_stopped(ec2: tuple[Any, Stubber]) -> None:
    client, stubber = ec2
    stubber.add_client_error("describe_availability_zones", "RequestLimitExceeded", "slow down",
                             503)  # fmt: skip
    stubber.add_response("describe_availability_zones", ZONES, {})
    stubber.add_response("describe_spot_price_history", TWO_PAGES[0], HISTORY_PARAMS)
    for _ in range(2):
        stubber.add_client_error("describe_spot_price_history", "RequestLimitExceeded",
                                 "Request limit exceeded.", 503)  # fmt: skip
    stubber.add_response("describe_spot_price_history", TWO_PAGES[1],
                         {**HISTORY_PARAMS, "NextToken": "page-1"})  # fmt: skip
    source = make_source(client, placement_scores=False)
    assert source.refresh(NOW).outcomes == {"us-east-1": "ok"}
    history = source.history("p4d.24xlarge", "us-east-1a")
    assert history is not None
    assert history.prices_usd_per_hour == (9.0, 7.5)  # nothing lost, nothing doubled


def test_refresh_gives_up_after_the_retry_budget_and_keeps_old_prices(
    ec2: tuple[Any, Stubber],
) -> None:
    client, stubber = ec2
    expect_refresh(stubber, TWO_PAGES, scores=False)
    for _ in range(3):
        stubber.add_client_error("describe_availability_zones", "RequestLimitExceeded", "", 503)
    source = make_source(client, placement_scores=False, retry_attempts=3, refresh_interval_s=60)
    source.refresh(NOW)
    report = source.refresh(NOW + 120)
    assert report.failed == {"us-east-1": "failed: RequestLimitExceeded:"}
    quote = source.quote(PriceRef("p4d.24xlarge", "us-east-1"), NOW + 120)
    assert isinstance(quote, PriceQuote)
    assert quote.observed_at == NOW  # the old price, ageing


def test_non_throttling_errors_are_not_retried(ec2: tuple[Any, Stubber]) -> None:
    client, stubber = ec2
    stubber.add_client_error("describe_availability_zones", "UnauthorizedOperation",
                             "not allowed", 403)  # fmt: skip
    source = make_source(client)
    report = source.refresh(NOW)
    assert report.failed == {"us-east-1": "failed: UnauthorizedOperation: not allowed"}
    refusal = source.quote(PriceRef("p4d.24xlarge", "us-east-1"), NOW)
    assert isinstance(refusal, Rejection)
    assert refusal.reason is RejectReason.NOT_FETCHED


def test_refresh_interval_caches_and_staleness_limit_refuses(ec2: tuple[Any, Stubber]) -> None:
    client, stubber = ec2
    expect_refresh(stubber, TWO_PAGES, scores=False)
    source = make_source(client, placement_scores=False, refresh_interval_s=300, max_age_s=900)
    source.refresh(NOW)
    # Within the interval no call is made (the Stubber would fail on an unexpected call).
    assert source.refresh(NOW + 299).outcomes == {"us-east-1": "fresh"}
    quote = source.quote(PriceRef("p4d.24xlarge", "us-east-1"), NOW + 901)
    assert isinstance(quote, PriceQuote)
    late = check_quote(quote, CapacityType.SPOT, NOW + 901, source.settings.max_age_s)
    assert isinstance(late, Rejection)
    assert late.reason is RejectReason.STALE
    on_time = check_quote(quote, CapacityType.SPOT, NOW + 900, source.settings.max_age_s)
    assert isinstance(on_time, AcceptedPrice)


def test_unknown_types_and_zones_are_refused(ec2: tuple[Any, Stubber]) -> None:
    client, stubber = ec2
    expect_refresh(stubber, TWO_PAGES, scores=False)
    source = make_source(client, placement_scores=False)
    source.refresh(NOW)
    unknown = source.quote(PriceRef("p9.imaginary", "us-east-1"), NOW)
    no_zone = source.quote(PriceRef("p4d.24xlarge", "us-east-1", zone="us-east-1f"), NOW)
    assert isinstance(unknown, Rejection)
    assert unknown.reason is RejectReason.UNKNOWN_INSTANCE_TYPE
    assert isinstance(no_zone, Rejection)
    assert no_zone.reason is RejectReason.NO_ZONE_DATA
    assert "us-east-1a, us-east-1b" in no_zone.detail


def test_nonsense_from_the_api_is_refused_by_the_gate(ec2: tuple[Any, Stubber]) -> None:
    client, stubber = ec2
    expect_refresh(stubber, [{"SpotPriceHistory": [price("us-east-1a", "NaN", 7)]}], scores=False)
    source = make_source(client, placement_scores=False)
    source.refresh(NOW)
    quote = source.quote(PriceRef("p4d.24xlarge", "us-east-1"), NOW)
    assert isinstance(quote, PriceQuote)
    refusal = check_quote(quote, CapacityType.SPOT, NOW, 900)
    assert isinstance(refusal, Rejection)
    assert refusal.reason is RejectReason.NOT_FINITE


def test_placement_scores_refresh_on_their_own_slower_interval(ec2: tuple[Any, Stubber]) -> None:
    client, stubber = ec2
    expect_refresh(stubber, TWO_PAGES)  # prices + scores
    expect_refresh(stubber, TWO_PAGES, scores=False)  # prices only: scores not due yet
    source = make_source(client, refresh_interval_s=300, placement_refresh_interval_s=3600)
    source.refresh(NOW)
    assert source.refresh(NOW + 600).outcomes == {"us-east-1": "ok"}
    quote = source.quote(PriceRef("p4d.24xlarge", "us-east-1"), NOW + 600)
    assert isinstance(quote, PriceQuote)
    assert quote.placement_score == 9.0  # kept from the first refresh
    assert quote.observed_at == NOW + 600


def test_a_placement_score_failure_does_not_fail_the_prices(ec2: tuple[Any, Stubber]) -> None:
    client, stubber = ec2
    expect_refresh(stubber, TWO_PAGES, scores=False)
    stubber.add_client_error("get_spot_placement_scores", "UnauthorizedOperation",
                             "You are not authorized to perform this operation.", 403)  # fmt: skip
    source = make_source(client)
    assert source.refresh(NOW).outcomes == {"us-east-1": "ok"}
    quote = source.quote(PriceRef("p4d.24xlarge", "us-east-1"), NOW)
    assert isinstance(quote, PriceQuote)
    assert quote.spot_usd_per_hour == 6.289
    assert quote.placement_score is None
