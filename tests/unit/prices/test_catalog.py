"""The shared SkyPilot catalogs are read exactly, and every known anomaly is handled."""

from __future__ import annotations

from pathlib import Path

import pytest

from federator.core.models import CapacityType
from federator.errors import UserError
from federator.prices.catalog import Catalog, CatalogPriceSource, load_catalog
from federator.prices.quotes import PriceQuote, PriceRef, Rejection, RejectReason
from federator.prices.validation import AcceptedPrice, check_quote

SPOT, ON_DEMAND = CapacityType.SPOT, CapacityType.ON_DEMAND


@pytest.fixture(scope="module")
def aws(shared_data: Path) -> Catalog:
    return load_catalog(shared_data / "catalog" / "aws" / "vms.csv")


@pytest.fixture(scope="module")
def gcp(shared_data: Path) -> Catalog:
    return load_catalog(shared_data / "catalog" / "gcp" / "vms.csv")


@pytest.fixture(scope="module")
def source(aws: Catalog, gcp: Catalog) -> CatalogPriceSource:
    return CatalogPriceSource([aws, gcp])


def accepted(source: CatalogPriceSource, ref: PriceRef, capacity: CapacityType) -> AcceptedPrice:
    quote = source.quote_for(ref, now=0.0, prefer=capacity)
    assert isinstance(quote, PriceQuote), quote
    result = check_quote(quote, capacity, now=0.0, max_age_s=60)
    assert isinstance(result, AcceptedPrice), result
    return result


def rejected(source: CatalogPriceSource, ref: PriceRef, capacity: CapacityType) -> Rejection:
    quote = source.quote_for(ref, now=0.0, prefer=capacity)
    result = quote if isinstance(quote, Rejection) else check_quote(quote, capacity, 0.0, 60)
    assert isinstance(result, Rejection), result
    return result


def test_aws_catalog_rows_are_all_read(aws: Catalog) -> None:
    assert aws.cloud == "aws"
    assert len(aws.rows) == 181
    assert aws.problems == ()
    per_type = {t: len(aws.hosts(t)) for t in {r.instance_type for r in aws.rows}}
    assert per_type == {
        "g6.xlarge": 34, "g6e.12xlarge": 21, "p3.2xlarge": 28, "p3.8xlarge": 28,
        "p3dn.24xlarge": 7, "p4d.24xlarge": 21, "p4de.24xlarge": 11, "p5.48xlarge": 31,
    }  # fmt: skip


def test_gcp_catalog_rows_are_all_read(gcp: Catalog) -> None:
    assert gcp.cloud == "gcp"
    assert len(gcp.rows) == 209
    assert gcp.problems == ()
    hosts = [r for r in gcp.rows if r.instance_type]
    assert len(hosts) == 24 + 21 + 9
    counts = {
        (n, c): len(gcp.accelerators(n, c))
        for n, c in [("H100", 8), ("H100-MEGA", 8), ("H200", 8), ("L4", 1), ("T4", 1)]
    }
    assert counts == {("H100", 8): 29, ("H100-MEGA", 8): 24, ("H200", 8): 9,
                      ("L4", 1): 43, ("T4", 1): 50}  # fmt: skip


def test_the_anomalies_in_the_shared_files_are_where_source_md_says(
    aws: Catalog, gcp: Catalog
) -> None:
    no_spot = [r for r in aws.rows if r.spot_usd_per_hour is None]
    assert len(no_spot) == 13
    capped = [r for r in aws.rows if r.spot_usd_per_hour == r.on_demand_usd_per_hour]
    assert {(r.instance_type, r.zone) for r in capped} >= {
        ("p4d.24xlarge", "aps1-az2"), ("p5.48xlarge", "use1-az1")
    }  # fmt: skip
    above = [
        (r.accelerator, r.zone) for r in gcp.rows
        if r.spot_usd_per_hour is not None and r.spot_usd_per_hour > r.on_demand_usd_per_hour
    ]  # fmt: skip
    assert above == [
        ("H200", "asia-south1-b"), ("H200", "europe-west1-b"), ("H200", "us-south1-b")
    ]  # fmt: skip


def test_aws_spot_pool_without_zone_takes_the_cheapest_spot_zone(
    source: CatalogPriceSource,
) -> None:
    price = accepted(source, PriceRef("p4d.24xlarge", "us-east-1"), SPOT)
    assert price.quote.zone == "use1-az1"
    assert price.quote.spot_usd_per_hour == 6.289
    assert price.usd_per_gpu_hour == pytest.approx(6.289 / 8)
    assert price.quote.source == "catalog:aws/vms.csv:133"


def test_aws_on_demand_price_includes_the_gpus(source: CatalogPriceSource) -> None:
    price = accepted(source, PriceRef("p5.48xlarge", "us-east-1"), ON_DEMAND)
    assert price.usd_per_gpu_hour == pytest.approx(55.04 / 8)


def test_missing_spot_price_means_no_spot_offering(source: CatalogPriceSource) -> None:
    ref = PriceRef("p3.2xlarge", "us-east-1", zone="use1-az3")
    assert rejected(source, ref, SPOT).reason is RejectReason.NO_SPOT_OFFERING
    assert accepted(source, ref, ON_DEMAND).usd_per_gpu_hour == pytest.approx(3.06)


def test_spot_capped_at_on_demand_is_accepted_without_discount_and_says_so(
    source: CatalogPriceSource,
) -> None:
    price = accepted(source, PriceRef("p5.48xlarge", "us-east-1", zone="use1-az1"), SPOT)
    assert price.usd_per_gpu_hour == pytest.approx(55.04 / 8)
    assert any("no spot discount" in note for note in price.notes)


def test_capped_spot_rounded_a_hair_above_on_demand_counts_as_equal(
    source: CatalogPriceSource,
) -> None:
    # p4d euc1-az2: Price 27.43298, SpotPrice 27.433000 (the same cap, rounded differently).
    price = accepted(source, PriceRef("p4d.24xlarge", "eu-central-1", zone="euc1-az2"), SPOT)
    assert any("no spot discount" in note for note in price.notes)


def test_gcp_price_is_host_plus_accelerator(source: CatalogPriceSource) -> None:
    ref = PriceRef("a3-highgpu-8g", "us-central1", zone="us-central1-a", accelerator="H100",
                   accelerator_count=8)  # fmt: skip
    price = accepted(source, ref, ON_DEMAND)
    host = [r for r in source._catalogs[1].hosts("a3-highgpu-8g") if r.zone == "us-central1-a"]
    accel = [r for r in source._catalogs[1].accelerators("H100", 8) if r.zone == "us-central1-a"]
    expected = host[0].on_demand_usd_per_hour + accel[0].on_demand_usd_per_hour
    assert price.quote.on_demand_usd_per_hour == pytest.approx(expected)
    assert price.usd_per_gpu_hour == pytest.approx(expected / 8)
    assert price.quote.source == f"catalog:gcp/vms.csv:{host[0].line}+{accel[0].line}"


def test_gcp_accelerator_spot_above_on_demand_is_refused_for_spot_pools_only(
    source: CatalogPriceSource,
) -> None:
    ref = PriceRef("a3-ultragpu-8g", "us-south1", accelerator="H200", accelerator_count=8)
    refusal = rejected(source, ref, SPOT)
    assert refusal.reason is RejectReason.SPOT_ABOVE_ON_DEMAND
    assert "gcp/vms.csv:116 H200x8" in refusal.detail  # the sum would have hidden it
    on_demand = accepted(source, ref, ON_DEMAND)
    assert any(note.startswith("spot price ignored") for note in on_demand.notes)


def test_several_fold_regional_difference_is_priced_per_region_and_noted(
    source: CatalogPriceSource,
) -> None:
    central = accepted(source, PriceRef("", "us-central1", accelerator="H100",
                                        accelerator_count=8), ON_DEMAND)  # fmt: skip
    east4 = accepted(source, PriceRef("", "us-east4", accelerator="H100",
                                      accelerator_count=8), ON_DEMAND)  # fmt: skip
    assert central.quote.on_demand_usd_per_hour == pytest.approx(33.60609)
    assert east4.quote.on_demand_usd_per_hour == pytest.approx(78.37241)
    assert any("x the cheapest region" in note for note in east4.notes)
    assert any("GPU-only price" in note for note in east4.notes)


@pytest.mark.parametrize(
    ("ref", "reason"),
    [
        (PriceRef("p9.imaginary", "us-east-1"), RejectReason.UNKNOWN_INSTANCE_TYPE),
        (PriceRef("p4d.24xlarge", "mars-central-1"), RejectReason.NO_ZONE_DATA),
        (PriceRef("p4d.24xlarge", "us-east-1", zone="use1-az99"), RejectReason.NO_ZONE_DATA),
        (PriceRef("a3-highgpu-8g", "us-central1"), RejectReason.MALFORMED),  # no accelerator
        (PriceRef("a3-highgpu-8g", "us-central1", accelerator="B200", accelerator_count=8),
         RejectReason.UNKNOWN_INSTANCE_TYPE),
    ],
)  # fmt: skip
def test_lookups_with_no_data_are_refused_with_a_reason(
    source: CatalogPriceSource, ref: PriceRef, reason: RejectReason
) -> None:
    assert rejected(source, ref, SPOT).reason is reason


HEADER = (
    "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,"
    "Price,SpotPrice,Region,AvailabilityZone,Arch\n"
)


def write_catalog(tmp_path: Path, *rows: str) -> CatalogPriceSource:
    path = tmp_path / "aws" / "vms.csv"
    path.parent.mkdir()
    path.write_text(HEADER + "".join(f"{row}\n" for row in rows), encoding="utf-8")
    return CatalogPriceSource([load_catalog(path)])


@pytest.mark.parametrize(
    ("price", "spot", "reason"),
    [
        ("-3.0", "1.0", RejectReason.NEGATIVE),
        ("nan", "1.0", RejectReason.NOT_FINITE),
        ("10.0", "inf", RejectReason.NOT_FINITE),
        ("10.0", "0", RejectReason.ZERO),
        ("10.0", "12.0", RejectReason.SPOT_ABOVE_ON_DEMAND),
        ("ten", "1.0", RejectReason.MALFORMED),
    ],
)
def test_nonsense_rows_never_pass(
    tmp_path: Path, price: str, spot: str, reason: RejectReason
) -> None:
    source = write_catalog(tmp_path, f"x1.gpu,A100,8.0,96,1152,,{price},{spot},r-1,r1-az1,x86_64")
    refusal = rejected(source, PriceRef("x1.gpu", "r-1", zone="r1-az1"), SPOT)
    assert refusal.reason is reason
    if reason is RejectReason.MALFORMED:
        assert refusal.detail.startswith("aws/vms.csv:2:")


def test_a_bad_zone_does_not_hide_the_good_ones_of_its_region(tmp_path: Path) -> None:
    source = write_catalog(
        tmp_path,
        "x1.gpu,A100,8.0,96,1152,,10.0,-1,r-1,r1-az1,x86_64",
        "x1.gpu,A100,8.0,96,1152,,10.0,4.0,r-1,r1-az2,x86_64",
    )
    assert accepted(source, PriceRef("x1.gpu", "r-1"), SPOT).quote.zone == "r1-az2"


def test_a_file_that_is_not_a_catalog_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "vms.csv"
    path.write_text("a,b,c\n1,2,3\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"vms.csv:1: not a SkyPilot catalog header"):
        load_catalog(path)
    with pytest.raises(UserError, match="cannot read"):
        load_catalog(tmp_path / "missing.csv")
