"""The live AWS source over real HTTP against moto's server mode (a local EC2 emulator).

What moto implements is exercised here through the real wire path (signing with credentials
from the standard provider chain, query serialisation, XML parsing, paginator):
DescribeAvailabilityZones and DescribeSpotPriceHistory. moto answers every spot price with
0.00001 USD stamped 2006-01-02, which makes the cases below easy to tell apart. moto does not
implement GetSpotPlacementScores; that call is covered with botocore's Stubber in
tests/unit/prices/test_aws.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tenacity import wait_none

from federator.core.models import CapacityType
from federator.prices.aws import AwsSettings, AwsSpotSource
from federator.prices.catalog import CatalogPriceSource, load_catalog
from federator.prices.quotes import PriceQuote, PriceRef, Rejection, RejectReason
from federator.prices.validation import AcceptedPrice, check_quote
from tests.support.configs import free_port
from tests.support.motoserver import moto_server

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
NOW = 1_800_000_000.0


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def source(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> AwsSpotSource:
    # Credentials reach boto3 only through the standard chain (here: the environment).
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    catalog = CatalogPriceSource([load_catalog(SHARED_DATA / "catalog" / "aws" / "vms.csv")])
    return AwsSpotSource(
        {"us-east-1": {"p4d.24xlarge": 2, "p9.imaginary": 1}},
        on_demand=catalog,
        settings=AwsSettings(endpoint_url=moto_endpoint, placement_scores=False),
    )


def test_spot_prices_come_back_per_zone_over_the_wire(source: AwsSpotSource) -> None:
    assert source.refresh(NOW).outcomes == {"us-east-1": "ok"}
    quote = source.quote(PriceRef("p4d.24xlarge", "us-east-1"), NOW)
    assert isinstance(quote, PriceQuote)
    assert quote.spot_usd_per_hour == pytest.approx(0.00001)
    assert quote.zone is not None
    assert quote.zone.startswith("us-east-1")
    assert quote.gpus_per_instance == 8  # from the catalog's on-demand row
    assert quote.on_demand_usd_per_hour == pytest.approx(21.957642)
    history = source.history("p4d.24xlarge", quote.zone)
    assert history is not None
    assert history.times_s[-1] == pytest.approx(1136214245.999999)  # moto's fixed 2006 stamp
    accepted = check_quote(quote, CapacityType.SPOT, NOW, source.settings.max_age_s)
    assert isinstance(accepted, AcceptedPrice)


def test_zone_ids_from_the_account_mapping_select_a_zone(source: AwsSpotSource) -> None:
    source.refresh(NOW)
    by_name = source.quote(PriceRef("p4d.24xlarge", "us-east-1"), NOW)
    assert isinstance(by_name, PriceQuote)
    zone_ids = source._state["us-east-1"].zone_ids
    assert by_name.zone in zone_ids
    by_id = source.quote(PriceRef("p4d.24xlarge", "us-east-1", zone=zone_ids[by_name.zone]), NOW)
    assert isinstance(by_id, PriceQuote)
    assert by_id.zone == by_name.zone


def test_an_instance_type_aws_does_not_know_is_refused(source: AwsSpotSource) -> None:
    source.refresh(NOW)
    refusal = source.quote(PriceRef("p9.imaginary", "us-east-1"), NOW)
    assert isinstance(refusal, Rejection)
    assert refusal.reason is RejectReason.UNKNOWN_INSTANCE_TYPE


def test_prices_older_than_the_limit_are_not_used(source: AwsSpotSource) -> None:
    source.refresh(NOW)
    quote = source.quote(PriceRef("p4d.24xlarge", "us-east-1"), NOW + 3600)
    assert isinstance(quote, PriceQuote)
    stale = check_quote(quote, CapacityType.SPOT, NOW + 3600, source.settings.max_age_s)
    assert isinstance(stale, Rejection)
    assert stale.reason is RejectReason.STALE


def test_an_unreachable_endpoint_fails_the_refresh_without_raising(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    dead = AwsSpotSource(
        {"us-east-1": {"p4d.24xlarge": 1}},
        settings=AwsSettings(endpoint_url=f"http://127.0.0.1:{free_port()}", retry_attempts=2,
                             placement_scores=False),
        retry_wait=wait_none(),
    )  # fmt: skip
    report = dead.refresh(NOW)
    assert report.failed["us-east-1"].startswith("failed: EndpointConnectionError")
