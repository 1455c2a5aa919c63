"""Offers built from the policy file: prices, evidence, capacity, and the pools refused."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from structlog.testing import capture_logs

from federator import metrics
from federator.core.models import CapacityType
from federator.policy import FederatorConfig, parse_policy
from federator.prices.interruption import SpotAdvisor, load_spot_advisor
from federator.prices.offers import OfferBuilder
from federator.prices.pools import PoolPricing, pool_pricings
from federator.prices.preemption import PreemptionLedger
from federator.prices.quotes import PriceQuote, PriceRef, Rejection

CONFIG_DIR = Path(__file__).resolve().parents[3] / "config"
NOW = 1_800_000_000.0


def sandbox_config(edit: Any = None) -> FederatorConfig:
    document = yaml.safe_load((CONFIG_DIR / "sandbox.yaml").read_text(encoding="utf-8"))
    if edit is not None:
        edit(document)
    return parse_policy(yaml.safe_dump(document), "test.yaml", base_dir=CONFIG_DIR)


@pytest.fixture(scope="module")
def advisor(shared_data: Path) -> SpotAdvisor:
    return load_spot_advisor(shared_data / "interruption" / "spot-advisor-data.json")


@dataclasses.dataclass
class ScriptedSource:
    """A price source that answers what the test says (the port makes this a one-liner)."""

    answer: PriceQuote | Rejection

    @property
    def name(self) -> str:
        return "scripted"

    def quote(self, ref: PriceRef, now: float) -> PriceQuote | Rejection:
        return self.answer


def rejected_count(reason: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "federator_price_inputs_rejected_total", {"reason": reason}
    )
    return value or 0.0


def test_sandbox_pools_become_offers_priced_from_the_catalog(advisor: SpotAdvisor) -> None:
    config = sandbox_config()
    book = OfferBuilder(config, pool_pricings(config), advisor=advisor).build(NOW)
    offers = {o.name: o for o in book.offers}
    assert sorted(offers) == ["cloud-a/a100-ondemand", "cloud-a/a100-spot",
                              "cloud-b/h100-ondemand", "cloud-b/h100-spot"]  # fmt: skip
    spot = offers["cloud-a/a100-spot"]
    assert spot.price_per_gpu_hour_usd == pytest.approx(6.289 / 8)
    assert spot.capacity_type is CapacityType.SPOT
    assert spot.price_source == "catalog:aws/vms.csv:133"
    assert spot.price_age_s == 0.0
    assert spot.free_gpus == 32
    assert spot.startup_latency_s == 20.0
    assert spot.egress_usd_per_gb == 0.09
    assert spot.region == "us-east-1"
    # advisor bucket 10-15% for p4d in us-east-1, no observations yet
    assert spot.preemption_rate_per_hour == pytest.approx(-math.log(1 - 0.125) / 730)
    assert spot.preemption_evidence.startswith("advisor us-east-1 p4d.24xlarge")
    assert offers["cloud-a/a100-ondemand"].preemption_rate_per_hour == 0.0
    assert offers["cloud-a/a100-ondemand"].price_per_gpu_hour_usd == pytest.approx(21.957642 / 8)
    h100 = offers["cloud-b/h100-spot"]
    assert h100.price_per_gpu_hour_usd == pytest.approx((2.31686 + 23.2364) / 8, rel=1e-4)
    assert h100.preemption_evidence.startswith("default (no advisor data)")
    assert h100.preemption_rate_per_hour == pytest.approx(0.1)


def test_free_gpus_are_the_smaller_of_cap_left_and_what_the_nodes_have() -> None:
    config = sandbox_config()
    book = OfferBuilder(config, pool_pricings(config)).build(
        NOW,
        free_gpus={"cloud-a/a100-spot": 40, "cloud-b/h100-spot": 8},
        used_gpus={"cloud-a/a100-spot": 24},
    )
    offers = {o.name: o for o in book.offers}
    assert offers["cloud-a/a100-spot"].free_gpus == 8  # cap 32 - 24 used
    assert offers["cloud-b/h100-spot"].free_gpus == 8  # only 8 free on the nodes
    assert offers["cloud-b/h100-ondemand"].free_gpus == 16  # nothing known: the cap


def test_observed_preemptions_turn_the_prior_into_a_posterior() -> None:
    config = sandbox_config()
    ledger = PreemptionLedger().record(
        "cloud-b/h100-spot", preemptions=3, job_hours=10.0, node_hours=20.0, gpu_hours=160.0,
        at=NOW - 3600,
    )  # fmt: skip
    book = OfferBuilder(config, pool_pricings(config)).build(NOW, ledger=ledger)
    offer = next(o for o in book.offers if o.name == "cloud-b/h100-spot")
    # Gamma-Poisson: (0.1/h * 24 h + 3) / (24 h + 10 h)
    assert offer.preemption_rate_per_hour == pytest.approx((0.1 * 24 + 3) / (24 + 10))
    assert "3 preemptions in 10.0 h observed" in offer.preemption_evidence
    per_node = OfferBuilder(config, pool_pricings(config), per_node_preemption=True)
    offer = next(o for o in per_node.build(NOW, ledger=ledger).offers if o.name == offer.name)
    assert offer.preemption_rate_per_hour == pytest.approx((0.1 * 24 + 3) / (24 + 20))


def with_source(
    pricings: tuple[PoolPricing, ...], key: str, source: Any
) -> tuple[PoolPricing, ...]:
    return tuple(dataclasses.replace(p, source=source) if p.key == key else p for p in pricings)


def bad_quote(spot: float, observed_at: float = NOW) -> PriceQuote:
    return PriceQuote("p4d.24xlarge", "us-east-1", "use1-az1", 8, 21.96, spot, "scripted",
                      observed_at)  # fmt: skip


@pytest.mark.parametrize(
    ("quote", "reason"),
    [
        (bad_quote(-1.0), "negative"),
        (bad_quote(math.nan), "not_finite"),
        (bad_quote(30.0), "spot_above_on_demand"),
        (bad_quote(6.0, observed_at=NOW - 25 * 3600), "stale"),  # sandbox limit: 24h
    ],
)
def test_a_nonsense_price_skips_the_pool_logs_once_and_counts_every_round(
    quote: PriceQuote, reason: str
) -> None:
    config = sandbox_config()
    script = ScriptedSource(quote)
    pricings = with_source(pool_pricings(config), "cloud-a/a100-spot", script)
    builder = OfferBuilder(config, pricings)
    before = rejected_count(reason)
    with capture_logs() as logged:
        first = builder.build(NOW)
        second = builder.build(NOW)
    assert "cloud-a/a100-spot" not in {o.name for o in first.offers}
    assert [r.key for r in second.refused] == ["cloud-a/a100-spot"]
    assert second.refused[0].refusal is not None
    assert second.refused[0].refusal.reason.value == reason
    assert rejected_count(reason) == before + 2
    age = metrics.REGISTRY.get_sample_value(
        "federator_price_age_seconds", {"cluster": "cloud-a", "pool": "a100-spot"}
    )
    assert age == NOW - quote.observed_at
    warnings = [e for e in logged if e["event"].startswith("pool skipped")]
    assert len(warnings) == 1
    assert warnings[0]["pool"] == "cloud-a/a100-spot"
    assert warnings[0]["reason"] == reason

    script.answer = bad_quote(6.0)  # fixed at the source
    with capture_logs() as logged:
        fixed = builder.build(NOW)
    assert "cloud-a/a100-spot" in {o.name for o in fixed.offers}
    assert [e["event"] for e in logged] == ["pool offered again: its price passes the checks"]


def test_unknown_instance_type_in_the_config_skips_only_that_pool() -> None:
    def edit(document: dict[str, Any]) -> None:
        document["clusters"][1]["pools"][0]["price"]["instance_type"] = "p9.imaginary"

    config = sandbox_config(edit)
    book = OfferBuilder(config, pool_pricings(config)).build(NOW)
    assert len(book.offers) == 3
    (row,) = book.refused
    assert row.key == "cloud-a/a100-spot"
    assert row.refusal is not None
    assert row.refusal.reason.value == "unknown_instance_type"


def test_a_zone_with_no_data_skips_the_pool() -> None:
    def edit(document: dict[str, Any]) -> None:
        document["clusters"][2]["pools"][0]["price"]["zone"] = "us-central1-z"

    config = sandbox_config(edit)
    (row,) = OfferBuilder(config, pool_pricings(config)).build(NOW).refused
    assert row.key == "cloud-b/h100-spot"
    assert row.refusal is not None
    assert row.refusal.reason.value == "no_zone_data"


def test_aws_pools_without_live_prices_are_skipped_and_say_why() -> None:
    def edit(document: dict[str, Any]) -> None:
        document["clusters"][1]["pools"][0]["price"] = {
            "source": "aws-spot-api", "instance_type": "p4d.24xlarge", "region": "us-east-1",
            "zones": ["us-east-1a", "us-east-1b"],
        }  # fmt: skip

    config = sandbox_config(edit)
    pricings = pool_pricings(config)  # no AWS factory: offline
    spot = next(p for p in pricings if p.key == "cloud-a/a100-spot")
    assert [r.zone for r in spot.refs] == ["us-east-1a", "us-east-1b"]
    (row,) = OfferBuilder(config, pricings).build(NOW).refused
    assert row.refusal is not None
    assert "switched off" in row.refusal.detail


def test_among_several_zones_the_cheapest_accepted_one_wins() -> None:
    def edit(document: dict[str, Any]) -> None:
        document["clusters"][1]["pools"][0]["price"] = {
            "source": "aws-spot-api", "instance_type": "p4d.24xlarge", "region": "us-east-1",
            "zones": ["us-east-1a", "us-east-1b", "us-east-1c"],
        }  # fmt: skip

    class PerZone:
        name = "per-zone"

        def quote(self, ref: PriceRef, now: float) -> PriceQuote | Rejection:
            spot = {"us-east-1a": 9.0, "us-east-1b": -5.0, "us-east-1c": 7.0}[ref.zone or ""]
            return dataclasses.replace(bad_quote(spot), zone=ref.zone)

    config = sandbox_config(edit)
    pricings = with_source(pool_pricings(config), "cloud-a/a100-spot", PerZone())
    offer = next(o for o in OfferBuilder(config, pricings).build(NOW).offers
                 if o.name == "cloud-a/a100-spot")  # fmt: skip
    assert offer.price_per_gpu_hour_usd == pytest.approx(7.0 / 8)


def test_a_pool_startup_of_0s_is_kept_not_replaced_by_the_cluster_value(
    advisor: SpotAdvisor,
) -> None:
    def edit(document: dict[str, Any]) -> None:
        for cluster in document["clusters"]:
            if cluster["name"] == "cloud-a":
                cluster["pools"][0]["startup_latency"] = "0s"  # nodes already up
                cluster["pools"][1]["startup_latency"] = "45s"

    config = sandbox_config(edit)
    book = OfferBuilder(config, pool_pricings(config), advisor=advisor).build(NOW)
    startup = {o.name: o.startup_latency_s for o in book.offers}
    assert startup["cloud-a/a100-spot"] == 0.0
    assert startup["cloud-a/a100-ondemand"] == 45.0
    assert startup["cloud-b/h100-spot"] == sandbox_config().clusters[2].startup_latency.seconds
