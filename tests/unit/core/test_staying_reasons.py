"""What a job that does not burst is told, and which pool a cap holds it for.

Each case is a single 8-GPU job on a full 8-GPU cluster whose figures are small enough to check
by hand: at $0.60 per GPU-hour of waiting the 2 h wait is worth $9.60, the bar at the default
10 % margin is $8.64, and one hour on 8 on-demand GPUs at $1 is $8 (plus $1.13 for copying a
GB at $1/GB and a minute of checkpoint writes, when the job reads data).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from federator.core.models import (
    CapacityType,
    DatasetNeed,
    Offer,
    OnPremState,
    PendingJob,
    RunningJob,
    RuntimeSource,
    Spend,
)
from federator.core.placements import Decision, DecisionKind, decide
from federator.core.policy import AtCap, Budgets, Caps, DecisionPolicy

H = 3600.0
NOW = H
FULL = OnPremState(total_gpus=8, free_gpus=0, running=(RunningJob("r", 8, 2 * H),))
JOB = PendingJob(
    key="team/train",
    gpus=8,
    submitted_at=0.0,
    runtime_estimate_s=H,
    runtime_source=RuntimeSource.ANNOTATION,
)
READS_A_GB = replace(JOB, datasets=(DatasetNeed("corpus", 10**9),))
ON_DEMAND = Offer(
    "cloud-a",
    "od",
    "A100",
    CapacityType.ON_DEMAND,
    1.0,
    64,
    startup_latency_s=0.0,
    ingress_usd_per_gb=1.0,
    transfer_bytes_per_s=1e12,
)
NOTHING_SPENT = Spend()
POLICY = DecisionPolicy(
    min_pending_before_burst_s=0.0, value_of_time_usd_per_gpu_hour=0.6, congestion_weight=0.0
)


def decided(
    job: PendingJob = READS_A_GB,
    policy: DecisionPolicy = POLICY,
    *,
    offers: tuple[Offer, ...] = (ON_DEMAND,),
    onprem: OnPremState = FULL,
    spend: Spend = NOTHING_SPENT,
    now: float = NOW,
) -> Decision:
    (decision,) = decide([job], onprem, offers, spend, policy, now).decisions
    return decision


def test_a_stay_kept_by_the_margin_says_so_not_that_staying_is_cheaper() -> None:
    decision = decided()
    assert decision.kind is DecisionKind.STAY
    assert decision.terms["stay_total_usd"] == pytest.approx(9.6)
    assert decision.reason == (
        "stays on-prem: cloud-a/od at $9.21 does not clear the 10% margin against "
        "2h00m expected wait worth $9.60 (bar $8.64)"
    )


def test_a_stay_lists_the_terms_of_the_best_option_it_turned_down() -> None:
    decision = decided()
    assert decision.terms["cloud_total_usd"] == pytest.approx(9.21, abs=0.005)
    assert decision.terms["cloud_data_usd"] == pytest.approx(1.0)


def test_an_unpriced_cloud_within_the_margin_is_said_to_miss_the_margin() -> None:
    """Without data the search stops at the $8 bound, above the $7.92 bar of a $8.80 stay."""
    policy = replace(POLICY, value_of_time_usd_per_gpu_hour=0.55)
    decision = decided(JOB, policy)
    assert decision.reason == (
        "stays on-prem: any cloud pool (at least $8.00) does not clear the 10% margin "
        "against 2h00m expected wait worth $8.80 (bar $7.92)"
    )


def test_a_margin_in_dollars_is_named_in_dollars() -> None:
    policy = replace(POLICY, burst_margin_fraction=0.05, burst_margin_usd=0.5)
    assert "does not clear the 5% + $0.50 margin" in decided(policy=policy).reason


def test_a_cloud_dearer_than_staying_is_beaten_outright() -> None:
    policy = replace(POLICY, value_of_time_usd_per_gpu_hour=0.57)
    assert decided(policy=policy).reason == (
        "stays on-prem: 2h00m expected wait worth $9.12 beats cloud-a/od at $9.21"
    )
    tie = decided(JOB, replace(POLICY, value_of_time_usd_per_gpu_hour=0.5))
    assert tie.reason == (
        "stays on-prem: 2h00m expected wait worth $8.00 beats any cloud pool (at least $8.00)"
    )


def test_a_budget_that_rules_the_only_pool_out_is_named_not_a_lack_of_room() -> None:
    decision = decided(policy=replace(POLICY, budgets=Budgets(max_usd_per_day=1.0)))
    assert decision.kind is DecisionKind.STAY
    assert "no cloud pool fits" not in decision.reason
    assert decision.reason.startswith("stays on-prem: cloud-a/od at $9.21 does not clear")
    assert decision.reason.endswith("; its $9.13 would also exceed daily budget $1.00")
    assert decision.terms["cloud_cost_usd"] == pytest.approx(9.13, abs=0.005)


def test_wait_worth_means_the_same_in_the_burst_and_the_stay_line() -> None:
    """On-prem compute is part of staying's total but not of what the wait is worth: both
    lines give the wait's worth and name the compute beside it."""
    burst_policy = replace(POLICY, value_of_time_usd_per_gpu_hour=0.1, onprem_usd_per_gpu_hour=5)
    burst = decided(JOB, burst_policy)
    assert burst.kind is DecisionKind.BURST
    assert burst.reason.endswith("vs 2h00m expected on-prem wait worth $1.60 + $40 on-prem compute")
    stay = decided(JOB, replace(burst_policy, onprem_usd_per_gpu_hour=0.5))
    assert stay.kind is DecisionKind.STAY
    assert stay.reason == (
        "stays on-prem: 2h00m expected wait worth $1.60 + $4.00 on-prem compute beats "
        "any cloud pool (at least $8.00)"
    )


# --- global caps: the option that would have won is the one the cap blocks ----------------

LONG = PendingJob(key="team/long", gpus=8, submitted_at=0.0, runtime_estimate_s=20 * H)
BUSY = OnPremState(total_gpus=8, free_gpus=0, running=(RunningJob("r", 8, 100 * H),))
# Cheapest per unit of speed, but a 20 h job without checkpoints never finishes on it.
STORMY = Offer("cloud-a", "spot", "A100", CapacityType.SPOT, 1.0, 64, preemption_rate_per_hour=2.0)
STEADY = Offer("cloud-a", "od", "A100", CapacityType.ON_DEMAND, 1.2, 64)
AT_JOB_CAP = Spend(bursted_jobs=5)


def capped(at_cap: AtCap) -> DecisionPolicy:
    return DecisionPolicy(
        min_pending_before_burst_s=0.0,
        default_checkpoint_interval_s=None,
        caps=Caps(max_bursted_jobs=5),
        budgets=Budgets(at_cap=at_cap),
    )


def test_without_the_cap_the_job_bursts_to_the_steady_pool() -> None:
    uncapped = replace(capped(AtCap.HOLD), caps=Caps())
    decision = decided(LONG, uncapped, offers=(STORMY, STEADY), onprem=BUSY, now=10 * H)
    assert (decision.kind, decision.pool_name) == (DecisionKind.BURST, "cloud-a/od")


@pytest.mark.parametrize("at_cap", list(AtCap))
def test_a_global_cap_blocks_the_pool_that_would_have_won(at_cap: AtCap) -> None:
    decision = decided(
        LONG, capped(at_cap), offers=(STORMY, STEADY), onprem=BUSY, spend=AT_JOB_CAP, now=10 * H
    )
    would = "cloud-a/od at $192 would exceed the cap of 5 bursted jobs"
    if at_cap is AtCap.HOLD:
        assert (decision.kind, decision.pool_name) == (DecisionKind.HOLD, "cloud-a/od")
        assert decision.reason == f"held: {would}"
    else:
        assert decision.kind is DecisionKind.STAY
        assert decision.reason == f"stays on-prem: {would}"
    assert decision.terms["cloud_price_usd_per_gpu_hour"] == 1.2


def test_a_global_cap_holds_for_the_pool_that_has_the_data() -> None:
    """The far pool is cheaper per GPU-hour, but 2 TB must be copied there first."""
    job = replace(LONG, runtime_estimate_s=4 * H, datasets=(DatasetNeed("ds", 2 * 10**12),))
    far = replace(STEADY, cluster="cloud-far", price_per_gpu_hour_usd=1.0, ingress_usd_per_gb=0.09)
    near = replace(
        STEADY, cluster="cloud-near", price_per_gpu_hour_usd=1.05, replicated_datasets={"ds"}
    )
    policy = replace(capped(AtCap.HOLD), default_checkpoint_interval_s=1800.0)
    decision = decided(job, policy, offers=(far, near), onprem=BUSY, spend=AT_JOB_CAP, now=10 * H)
    assert (decision.kind, decision.cluster) == (DecisionKind.HOLD, "cloud-near")


# --- burst.min_wait applies to a hold at a cap as to a burst ---------------------------------


def test_a_hold_at_a_budget_waits_out_the_minimum_pending_time() -> None:
    job = replace(JOB, submitted_at=NOW - 10.0)
    onprem = OnPremState(total_gpus=8, free_gpus=0, running=(RunningJob("r", 8, 10 * H),))
    policy = DecisionPolicy(
        min_pending_before_burst_s=600.0, budgets=Budgets(max_usd_per_day=1.0, at_cap=AtCap.HOLD)
    )
    offer = Offer("cloud-a", "od", "A100", CapacityType.ON_DEMAND, 1.0, 64)
    decision = decided(job, policy, offers=(offer,), onprem=onprem)
    assert decision.kind is DecisionKind.STAY
    assert decision.revisit_at == NOW - 10.0 + 600.0
    assert "would exceed daily budget $1.00" in decision.reason
    assert "pending 10s of the 10m minimum" in decision.reason
    later = decided(job, policy, offers=(offer,), onprem=onprem, now=NOW + 600.0)
    assert later.kind is DecisionKind.HOLD


def test_an_hourly_budget_line_says_it_compares_burn_rates() -> None:
    """The line gives the job's whole bill ($163); the hourly budget is checked against its
    burn rate ($8/h) plus the last hour's spend, so that is what it names."""
    policy = DecisionPolicy(min_pending_before_burst_s=0.0, budgets=Budgets(max_usd_per_hour=5.0))
    offer = Offer("cloud-a", "od", "A100", CapacityType.ON_DEMAND, 1.0, 64)
    decision = decided(
        LONG, policy, offers=(offer,), onprem=BUSY, spend=Spend(last_hour_usd=1.0), now=10 * H
    )
    assert decision.reason == (
        "stays on-prem: cloud-a/od at $163 would exceed hourly budget $5.00 "
        "(its $8.00/h on top of $1.00 in the last hour)"
    )
