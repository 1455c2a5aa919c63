"""The preemption ledger: daily evidence, persistence format, and the posterior it feeds."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federator.core.preemption import PreemptionPrior, estimate_rate
from federator.prices.preemption import (
    BUCKET_S,
    MAX_BUCKETS,
    EvidenceBucket,
    PreemptionLedger,
    pool_estimate,
)

DAY = BUCKET_S
PRIOR = PreemptionPrior(rate_per_hour=0.1, strength_hours=24.0, source="test")


def test_records_of_one_day_add_up_in_one_bucket() -> None:
    ledger = PreemptionLedger()
    ledger = ledger.record("c/p", preemptions=1, job_hours=2, node_hours=4, gpu_hours=32,
                           at=10 * DAY + 100)  # fmt: skip
    ledger = ledger.record("c/p", preemptions=2, job_hours=3, node_hours=6, gpu_hours=48,
                           at=10 * DAY + 5000)  # fmt: skip
    ledger = ledger.record("c/p", preemptions=0, job_hours=1, node_hours=1, gpu_hours=8,
                           at=11 * DAY)  # fmt: skip
    assert ledger.pools["c/p"] == (
        EvidenceBucket(10 * DAY, 3, 5.0, 10.0, 80.0),
        EvidenceBucket(11 * DAY, 0, 1.0, 1.0, 8.0),
    )
    assert ledger.totals("c/p") == EvidenceBucket(10 * DAY, 3, 6.0, 11.0, 88.0)
    assert ledger.totals("other") is None


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_nonsense_evidence_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="finite and >= 0"):
        PreemptionLedger().record("c/p", preemptions=0, job_hours=bad, node_hours=0,
                                  gpu_hours=0, at=0)  # fmt: skip


def test_the_ledger_stays_bounded_and_keeps_every_count() -> None:
    ledger = PreemptionLedger()
    for day in range(MAX_BUCKETS + 10):
        ledger = ledger.record("c/p", preemptions=1, job_hours=1, node_hours=1, gpu_hours=8,
                               at=day * DAY)  # fmt: skip
    assert len(ledger.pools["c/p"]) == MAX_BUCKETS
    totals = ledger.totals("c/p")
    assert totals is not None
    assert totals.preemptions == MAX_BUCKETS + 10


def test_json_round_trip_and_refusal_of_foreign_content() -> None:
    ledger = PreemptionLedger().record("cloud-a/a100-spot", preemptions=2, job_hours=1.5,
                                       node_hours=3.0, gpu_hours=24.0, at=DAY)  # fmt: skip
    assert PreemptionLedger.from_json(ledger.to_json()) == ledger
    for text in ("", "[]", '{"version": 2, "pools": {}}', '{"version": 1}'):
        with pytest.raises(ValueError, match="ledger"):
            PreemptionLedger.from_json(text)


def test_posterior_is_the_cores_gamma_poisson_update() -> None:
    ledger = PreemptionLedger().record("c/p", preemptions=4, job_hours=16, node_hours=32,
                                       gpu_hours=256, at=5 * DAY)  # fmt: skip
    estimate = pool_estimate(PRIOR, ledger.pools["c/p"], now=5 * DAY + 3600, per_node=False)
    assert estimate.rate_per_hour == pytest.approx((0.1 * 24 + 4) / (24 + 16))
    per_node = pool_estimate(PRIOR, ledger.pools["c/p"], now=5 * DAY + 3600, per_node=True)
    assert per_node.rate_per_hour == pytest.approx((0.1 * 24 + 4) / (24 + 32))
    assert pool_estimate(PRIOR, (), now=0, per_node=False) == estimate_rate(PRIOR)


def test_with_a_half_life_old_evidence_weighs_less() -> None:
    old = PreemptionLedger().record("c/p", preemptions=10, job_hours=10, node_hours=10,
                                    gpu_hours=80, at=0)  # fmt: skip
    now = 30 * DAY
    fresh = pool_estimate(PRIOR, old.pools["c/p"], now=now, per_node=False)
    faded = pool_estimate(PRIOR, old.pools["c/p"], now=now, per_node=False,
                          half_life_hours=24.0)  # fmt: skip
    assert fresh.rate_per_hour == pytest.approx((2.4 + 10) / 34)
    assert abs(faded.rate_per_hour - PRIOR.rate_per_hour) < abs(
        fresh.rate_per_hour - PRIOR.rate_per_hour
    )


@given(
    counts=st.lists(st.integers(0, 50), min_size=1, max_size=20),
    hours=st.floats(0.1, 100.0),
)
def test_more_preemptions_in_the_same_exposure_never_lower_the_rate(
    counts: list[int], hours: float
) -> None:
    def rate(extra: int) -> float:
        ledger = PreemptionLedger()
        for day, count in enumerate(counts):
            ledger = ledger.record("c/p", preemptions=count + (extra if day == 0 else 0),
                                   job_hours=hours, node_hours=hours, gpu_hours=hours,
                                   at=day * DAY)  # fmt: skip
        return pool_estimate(PRIOR, ledger.pools["c/p"], now=len(counts) * DAY,
                             per_node=False).rate_per_hour  # fmt: skip

    assert rate(1) >= rate(0)
