"""Spot Advisor buckets become a prior preemption rate per running hour."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from federator.errors import UserError
from federator.prices.interruption import PreemptionPrior, SpotAdvisor, load_spot_advisor
from federator.prices.quotes import Rejection, RejectReason


@pytest.fixture(scope="module")
def advisor(shared_data: Path) -> SpotAdvisor:
    return load_spot_advisor(shared_data / "interruption" / "spot-advisor-data.json")


def test_the_whole_snapshot_is_read(advisor: SpotAdvisor) -> None:
    linux = [key for key in advisor.buckets if key[1] == "Linux"]
    # SOURCE.md: 3239 + 2894 + 2025 + 1874 + 4930 Linux pools over 33 regions.
    assert len(linux) == 14962
    assert len({key[0] for key in advisor.buckets}) == 33


@pytest.mark.parametrize(
    ("region", "instance_type", "monthly"),
    [
        ("us-east-1", "p4d.24xlarge", 0.125),  # r=2, "10-15%"
        ("us-east-1", "p5.48xlarge", 0.30),  # r=4, ">20%" (tail assumed 30%)
        ("us-east-2", "p4d.24xlarge", 0.075),  # SOURCE.md: 5-10%
    ],
)
def test_bucket_midpoint_per_month_becomes_a_poisson_rate(
    advisor: SpotAdvisor, region: str, instance_type: str, monthly: float
) -> None:
    prior = advisor.prior(region, instance_type)
    assert isinstance(prior, PreemptionPrior)
    assert prior.rate_per_hour == pytest.approx(-math.log(1 - monthly) / 730)
    assert region in prior.evidence
    assert instance_type in prior.evidence


def test_unknown_type_and_region_are_refused(advisor: SpotAdvisor) -> None:
    unknown_type = advisor.prior("us-east-1", "p9.imaginary")
    unknown_region = advisor.prior("mars-central-1", "p4d.24xlarge")
    assert isinstance(unknown_type, Rejection)
    assert isinstance(unknown_region, Rejection)
    assert unknown_type.reason is RejectReason.UNKNOWN_INSTANCE_TYPE
    assert unknown_region.reason is RejectReason.NO_ZONE_DATA


def test_broken_files_are_user_errors(tmp_path: Path) -> None:
    path = tmp_path / "advisor.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(UserError, match=r"advisor.json:1:2: not JSON"):
        load_spot_advisor(path)
    path.write_text(json.dumps({"ranges": []}), encoding="utf-8")
    with pytest.raises(UserError, match="spot_advisor"):
        load_spot_advisor(path)
