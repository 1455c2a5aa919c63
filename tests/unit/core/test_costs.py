"""Each priced term of an option, checked against figures worked out by hand."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federator.core import costs
from federator.core.models import CapacityType, DatasetNeed, Offer, PendingJob, RuntimeSource
from federator.core.policy import DecisionPolicy

HOUR = 3600.0
JOB = PendingJob(key="ns/a", gpus=8, submitted_at=0.0, runtime_estimate_s=10 * HOUR)
OFFER = Offer(
    cluster="cloud-a",
    pool="a100-spot",
    gpu_type="A100",
    capacity_type=CapacityType.SPOT,
    price_per_gpu_hour_usd=2.0,
    free_gpus=64,
    startup_latency_s=0.0,
)
NEUTRAL = DecisionPolicy(
    default_checkpoint_interval_s=None,
    checkpoint_write_s=0.0,
    restart_overhead_s=0.0,
    bill_startup=False,
    value_of_time_usd_per_gpu_hour=0.0,
)


@pytest.mark.parametrize(
    ("runtime", "interval", "write", "rate", "restart", "want_s", "want_preemptions"),
    [
        pytest.param(HOUR, HOUR, 0.0, 0.0, 0.0, HOUR, 0.0, id="no preemptions, no checkpoints"),
        pytest.param(4 * HOUR, HOUR, 60.0, 0.0, 0.0, 4 * HOUR + 240, 0.0, id="four writes"),
        # one segment of 1 h at λ = 1/h: (1/λ + R)(e^{λw} − 1) = 3600 (e − 1)
        pytest.param(
            HOUR, HOUR, 0.0, 1 / HOUR, 0.0, HOUR * (math.e - 1), math.e - 1, id="restart from zero"
        ),
        # 10 segments of 6 min at λ = 0.1/h and R = 10 min
        pytest.param(
            HOUR,
            360.0,
            0.0,
            0.1 / HOUR,
            600.0,
            10 * (36000 + 600) * math.expm1(0.01),
            10 * math.expm1(0.01),
            id="checkpointed with restart cost",
        ),
    ],
)
def test_expected_run_time_matches_the_segment_formula(
    runtime: float,
    interval: float,
    write: float,
    rate: float,
    restart: float,
    want_s: float,
    want_preemptions: float,
) -> None:
    run = costs.expected_run(
        runtime, interval_s=interval, write_s=write, rate_per_s=rate, restart_s=restart
    )
    assert run.expected_s == pytest.approx(want_s)
    assert run.expected_preemptions == pytest.approx(want_preemptions)


def test_rework_is_first_order_rate_times_runtime_times_half_interval_plus_restart() -> None:
    """For small λ the exact form reduces to the issue's λ·T·(τ/2 + R)."""
    rate, runtime, interval, restart = 0.01 / HOUR, 10 * HOUR, 1800.0, 300.0
    run = costs.expected_run(
        runtime, interval_s=interval, write_s=0.0, rate_per_s=rate, restart_s=restart
    )
    first_order = rate * runtime * (interval / 2 + restart)
    assert run.rework_s == pytest.approx(first_order, rel=0.01)


@pytest.mark.parametrize(
    ("declared", "default", "want"),
    [
        pytest.param(600.0, 1800.0, 600.0, id="the job's own interval wins"),
        pytest.param(None, 1800.0, 1800.0, id="policy default"),
        pytest.param(None, None, 10 * HOUR, id="no checkpoints: one segment"),
        pytest.param(20 * HOUR, None, 10 * HOUR, id="longer than the job: one segment"),
    ],
)
def test_checkpoint_interval(declared: float | None, default: float | None, want: float) -> None:
    job = replace(JOB, checkpoint_interval_s=declared)
    policy = DecisionPolicy(default_checkpoint_interval_s=default)
    assert costs.checkpoint_interval_s(job, policy, JOB.runtime_estimate_s) == want


@pytest.mark.parametrize(
    ("offer", "policy", "want_compute", "want_startup", "want_wait"),
    [
        pytest.param(OFFER, NEUTRAL, 8 * 2.0 * 10, 0.0, 0.0, id="price x gpus x runtime"),
        pytest.param(
            replace(OFFER, startup_latency_s=900.0),
            replace(NEUTRAL, bill_startup=True),
            160.0,
            8 * 2.0 * 0.25,
            900.0,
            id="startup billed",
        ),
        pytest.param(
            replace(OFFER, gpu_type="H100"),
            replace(NEUTRAL, gpu_speed={"H100": 2.0}),
            80.0,
            0.0,
            0.0,
            id="twice as fast GPU halves the runtime",
        ),
    ],
)
def test_cloud_compute_and_startup(
    offer: Offer, policy: DecisionPolicy, want_compute: float, want_startup: float, want_wait: float
) -> None:
    option = costs.price_cloud(JOB, offer, now=0.0, policy=policy, value_per_hour=0.0)
    assert option.compute_usd == pytest.approx(want_compute)
    assert option.startup_usd == pytest.approx(want_startup)
    assert option.wait_s == pytest.approx(want_wait)


@pytest.mark.parametrize(
    ("offer", "want_bytes"),
    [
        pytest.param(OFFER, 300 * 10**9, id="nothing replicated: everything copies"),
        pytest.param(
            replace(OFFER, replicated_datasets=frozenset({"imagenet"})),
            100 * 10**9,
            id="replicated dataset is free",
        ),
        pytest.param(
            replace(OFFER, pending_dataset_bytes={"imagenet": 50 * 10**9}),
            150 * 10**9,
            id="partly replicated copies the rest",
        ),
    ],
)
def test_transfer_counts_only_bytes_not_yet_replicated(offer: Offer, want_bytes: int) -> None:
    job = replace(
        JOB, datasets=(DatasetNeed("imagenet", 200 * 10**9), DatasetNeed("labels", 100 * 10**9))
    )
    assert costs.transfer_bytes(job, offer) == want_bytes


def test_data_cost_prices_ingress_and_egress_per_gb() -> None:
    job = replace(JOB, datasets=(DatasetNeed("d", 100 * 10**9),), output_bytes=10 * 10**9)
    offer = replace(OFFER, ingress_usd_per_gb=0.02, egress_usd_per_gb=0.09)
    option = costs.price_cloud(job, offer, now=0.0, policy=NEUTRAL, value_per_hour=0.0)
    assert option.data_usd == pytest.approx(100 * 0.02 + 10 * 0.09)


def test_burst_now_bills_idle_gpus_while_data_copies_and_holding_does_not() -> None:
    """1 TB at 100 MB/s is 10,000 s; startup 1,000 s; so 9,000 s of idle GPUs when bursting now."""
    job = replace(JOB, datasets=(DatasetNeed("d", 10**12),))
    offer = replace(OFFER, startup_latency_s=1000.0, transfer_bytes_per_s=100e6)
    now = costs.price_cloud(job, offer, now=0.0, policy=NEUTRAL, value_per_hour=0.0)
    held = costs.price_cloud(job, offer, now=0.0, policy=NEUTRAL, value_per_hour=0.0, held=True)
    assert now.wait_s == pytest.approx(10_000.0)
    assert now.idle_usd == pytest.approx(8 * 2.0 * 9000 / HOUR)
    assert held.wait_s == pytest.approx(11_000.0)
    assert held.idle_usd == 0.0


@pytest.mark.parametrize(
    ("wait", "onprem_price", "value", "want_compute", "want_delay"),
    [
        pytest.param(0.0, 0.0, 16.0, 0.0, 0.0, id="starts now, sunk cluster"),
        pytest.param(2 * HOUR, 0.0, 16.0, 0.0, 32.0, id="two hours at $16/h"),
        pytest.param(0.0, 0.5, 16.0, 8 * 0.5 * 10, 0.0, id="marginal on-prem cost"),
        pytest.param(math.inf, 0.0, 16.0, 0.0, math.inf, id="never starts"),
    ],
)
def test_stay_terms(
    wait: float, onprem_price: float, value: float, want_compute: float, want_delay: float
) -> None:
    policy = replace(NEUTRAL, onprem_usd_per_gpu_hour=onprem_price)
    stay = costs.price_stay(JOB, wait_s=wait, now=0.0, policy=policy, value_per_hour=value)
    assert stay.compute_usd == pytest.approx(want_compute)
    assert stay.delay_usd == pytest.approx(want_delay)


@pytest.mark.parametrize(
    ("gpus", "queue", "priority", "want"),
    [
        pytest.param(8, "default", 0, 8 * 2.0 + 1.0, id="per GPU plus per job"),
        pytest.param(8, "urgent", 0, 8 * 10.0 + 1.0, id="queue override"),
        pytest.param(1, "default", 100, (2.0 + 1.0) * 3.0, id="priority multiplier"),
        pytest.param(1, "default", 50, (2.0 + 1.0) * 1.5, id="largest threshold below"),
    ],
)
def test_value_of_time(gpus: int, queue: str, priority: int, want: float) -> None:
    policy = DecisionPolicy(
        value_of_time_usd_per_gpu_hour=2.0,
        value_of_time_usd_per_job_hour=1.0,
        queue_value_of_time_usd_per_gpu_hour={"urgent": 10.0},
        priority_value_multipliers=((10, 1.5), (100, 3.0)),
    )
    got = policy.value_of_time_usd_per_hour(gpus=gpus, queue=queue, priority=priority)
    assert got == pytest.approx(want)


@pytest.mark.parametrize(
    ("slack", "sd", "want"),
    [
        pytest.param(10.0, 0.0, 0.0, id="certain and in time"),
        pytest.param(-10.0, 0.0, 1.0, id="certain and late"),
        pytest.param(0.0, 5.0, 0.5, id="on the line"),
        pytest.param(5.0, 5.0, 0.158655, id="one sd early"),
        pytest.param(math.inf, 5.0, 0.0, id="no deadline in reach"),
    ],
)
def test_miss_probability(slack: float, sd: float, want: float) -> None:
    assert costs.miss_probability(slack_s=slack, sd_s=sd) == pytest.approx(want, abs=1e-6)


def test_deadline_penalty_is_probability_times_penalty() -> None:
    job = replace(JOB, deadline_at=10 * HOUR + 1800.0, runtime_source=RuntimeSource.ORACLE)
    policy = replace(NEUTRAL, deadline_miss_penalty_usd=500.0)
    in_time = costs.price_stay(job, wait_s=0.0, now=0.0, policy=policy, value_per_hour=0.0)
    late = costs.price_stay(job, wait_s=HOUR, now=0.0, policy=policy, value_per_hour=0.0)
    assert (in_time.deadline_usd, late.deadline_usd) == (0.0, 500.0)


def test_preemptions_raise_deadline_risk_in_the_cloud() -> None:
    job = replace(JOB, deadline_at=11 * HOUR, runtime_source=RuntimeSource.ORACLE)
    policy = replace(NEUTRAL, deadline_miss_penalty_usd=500.0, default_checkpoint_interval_s=1800.0)
    calm = costs.price_cloud(job, OFFER, now=0.0, policy=policy, value_per_hour=0.0)
    stormy = costs.price_cloud(
        job,
        replace(OFFER, preemption_rate_per_hour=2.0),
        now=0.0,
        policy=policy,
        value_per_hour=0.0,
    )
    assert calm.deadline_miss_probability == 0.0
    assert stormy.deadline_miss_probability > 0.5


def test_preemption_rate_per_node_scales_with_nodes() -> None:
    job = replace(JOB, gpus=32)
    offer = replace(OFFER, preemption_rate_per_hour=0.1, gpus_per_node=8)
    per_job = costs.jobs_preemption_rate_per_s(job, offer, NEUTRAL)
    per_node = costs.jobs_preemption_rate_per_s(
        job, offer, replace(NEUTRAL, preemption_rate_per_node=True)
    )
    assert per_node == pytest.approx(4 * per_job)


@pytest.mark.parametrize(
    ("gpus", "free", "weight", "want_share"),
    [
        pytest.param(8, 64, 1.0, 8 / 64, id="small share of a roomy pool"),
        pytest.param(8, 8, 1.0, 1.0, id="the last GPUs double the price"),
        pytest.param(8, 16, 0.5, 0.25, id="weighted"),
        pytest.param(8, 16, 0.0, 0.0, id="switched off"),
    ],
)
def test_congestion_prices_the_share_of_free_pool_gpus_taken(
    gpus: int, free: int, weight: float, want_share: float
) -> None:
    job = replace(JOB, gpus=gpus)
    policy = replace(NEUTRAL, congestion_weight=weight)
    option = costs.price_cloud(
        job, OFFER, now=0.0, policy=policy, value_per_hour=0.0, free_gpus=free
    )
    assert option.congestion_usd == pytest.approx(want_share * option.compute_usd)
    assert option.cost_usd == pytest.approx(option.compute_usd)  # never billed


# Four jobs of the round: (value of time $/h, tolerance h). The one with no value never counts;
# the one with an infinite tolerance (no cloud option) always takes the whole delay.
ROUND = [(10.0, 1.0), (10.0, 3.0), (0.0, 5.0), (20.0, math.inf)]


@pytest.mark.parametrize(
    ("behind", "delay_h", "wait_h", "want_usd"),
    [
        # from now: 10·min(1, 1) + 10·min(1, 3) + 20·1 = 40 per 4 jobs, 4 behind
        pytest.param(4, 1.0, 0.0, 40.0, id="everyone delayed a full hour"),
        # 2.5 h from now the first is past its tolerance, the second has 0.5 h left: 5 + 20
        pytest.param(4, 1.0, 2.5, 25.0, id="past and partly spent tolerances"),
        # a quarter hour: 10·0.25 + 20·0.25 = 7.5 per 4 jobs, 8 behind
        pytest.param(8, 0.25, 2.5, 15.0, id="a short delay fits in the tolerance left"),
        pytest.param(0, 1.0, 0.0, 0.0, id="nobody behind"),
        pytest.param(4, 0.0, 0.0, 0.0, id="no delay"),
        pytest.param(4, 1.0, math.inf, 0.0, id="a job that never starts delays nobody"),
    ],
)
def test_the_delay_of_the_jobs_behind_is_capped_by_their_tolerance(
    behind: int, delay_h: float, wait_h: float, want_usd: float
) -> None:
    queue = costs.QueueBehind(ROUND)
    assert queue.delay_usd(behind=behind, delay_h=delay_h, wait_h=wait_h) == pytest.approx(want_usd)


def test_an_empty_round_prices_no_delay() -> None:
    assert costs.QueueBehind([]).delay_usd(behind=3, delay_h=1.0, wait_h=0.0) == 0.0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0, 100), st.one_of(st.floats(0, 50), st.just(math.inf))),
        max_size=20,
    ),
    st.integers(0, 50),
    st.floats(0, 20),
    st.floats(0, 40),
    st.floats(0, 5),
)
def test_the_sorted_sums_give_the_job_by_job_price_and_it_grows_with_the_delay(
    pairs: list[tuple[float, float]], behind: int, delay_h: float, wait_h: float, more_h: float
) -> None:
    queue = costs.QueueBehind(pairs)
    price = queue.delay_usd(behind=behind, delay_h=delay_h, wait_h=wait_h)
    each = [v * min(delay_h, max(0.0, t - wait_h)) for v, t in pairs]
    want = behind * sum(each) / len(pairs) if pairs and delay_h > 0 else 0.0
    assert price == pytest.approx(want, rel=1e-9, abs=1e-6)
    longer = queue.delay_usd(behind=behind, delay_h=delay_h + more_h, wait_h=wait_h)
    later = queue.delay_usd(behind=behind, delay_h=delay_h, wait_h=wait_h + more_h)
    assert longer >= price - 1e-6
    assert later <= price + 1e-6
    assert price <= behind * delay_h * sum(v for v, _ in pairs) / max(1, len(pairs)) + 1e-6


def test_the_queue_price_is_part_of_the_stay_total_and_its_terms() -> None:
    policy = replace(NEUTRAL, value_of_time_usd_per_gpu_hour=1.0)
    plain = costs.price_stay(JOB, wait_s=HOUR, now=0.0, policy=policy, value_per_hour=8.0)
    priced = costs.price_stay(
        JOB, wait_s=HOUR, now=0.0, policy=policy, value_per_hour=8.0, queue_usd=12.5
    )
    assert plain.queue_usd == 0.0
    assert priced.total_usd == pytest.approx(plain.total_usd + 12.5)
    assert priced.terms()["stay_queue_usd"] == 12.5
    assert priced.terms()["stay_total_usd"] == pytest.approx(8.0 + 12.5)
