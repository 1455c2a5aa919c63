from __future__ import annotations

import math
import random

import pytest

from federator.core.models import CapacityType
from federator.sim.cloud import AvailabilityTrace, CloudPool, JobPhysics, PriceHistory, run_in_cloud

from .helpers import on_demand_pool


def replayed_spot(alive: tuple[int, ...], tick_s: float = 100.0) -> CloudPool:
    return CloudPool(
        cluster="c",
        pool="spot",
        gpu_type="A100",
        capacity_type=CapacityType.SPOT,
        price_per_gpu_hour_usd=1.0,
        on_demand_price_per_gpu_hour_usd=4.0,
        startup_latency_s=10.0,
        availability=AvailabilityTrace(tick_s=tick_s, alive=alive),
    )


def test_on_demand_run_bills_startup_and_run_time() -> None:
    run = run_in_cloud(on_demand_pool(price=2.0, startup_s=60.0), 4, 1800.0, 100.0,
                       JobPhysics(None), 0, random.Random(0))  # fmt: skip
    assert (run.start_s, run.end_s, run.preemptions) == (160.0, 1960.0, 0)
    assert run.cost_usd == pytest.approx(4 * 2.0 * 1860 / 3600)
    assert run.gpu_seconds == 4 * 1860


def test_data_copy_overlaps_startup_and_is_charged_per_gb() -> None:
    pool = CloudPool("c", "od", "A100", CapacityType.ON_DEMAND, 1.0, 1.0, startup_latency_s=60.0,
                     ingress_usd_per_gb=0.02, transfer_bytes_per_s=1e8)  # fmt: skip
    run = run_in_cloud(pool, 1, 100.0, 0.0, JobPhysics(None), 30_000_000_000, random.Random(0))
    assert run.start_s == 300.0  # 30 GB at 100 MB/s outlasts the 60 s startup
    assert run.data_usd == pytest.approx(0.6)
    assert run.compute_usd == pytest.approx(400 / 3600)


def test_a_replayed_preemption_loses_the_work_since_the_last_checkpoint() -> None:
    # Up for ticks 0-2 (0..300 s), down for tick 3, up again from 400 s.
    pool = replayed_spot((1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1))
    physics = JobPhysics(
        checkpoint_interval_s=100.0, checkpoint_write_s=0.0, restart_overhead_s=5.0
    )
    run = run_in_cloud(pool, 2, 500.0, 0.0, physics, 0, random.Random(0))
    # Starts at 10, preempted at 300 after 290 s: 2 checkpoints kept (200 s), 90 s lost.
    # Relaunch when capacity is back at 400, ready at 415, 300 s of work left: ends at 715.
    assert run.preemptions == 1
    assert run.end_s == 715.0
    assert run.lost_gpu_seconds == pytest.approx(2 * (300 - 200))  # startup 10 s + 90 s of work
    assert run.cost_usd == pytest.approx(2 * 1.0 * ((300 - 0) + (715 - 400)) / 3600)


def test_after_max_restarts_the_job_finishes_at_the_on_demand_price() -> None:
    pool = CloudPool("c", "spot", "A100", CapacityType.SPOT, 1.0, 4.0, startup_latency_s=0.0,
                     preemption_rate_per_hour=3600.0, max_restarts=3)  # fmt: skip
    run = run_in_cloud(pool, 1, 100.0, 0.0, JobPhysics(None), 0, random.Random(1))
    assert run.preemptions == 3
    assert math.isfinite(run.end_s)


def test_price_history_integrates_the_step_function() -> None:
    history = PriceHistory(times_s=(0.0, 3600.0), usd_per_gpu_hour=(1.0, 3.0))
    assert history.cost_usd(2, 1800.0, 5400.0) == pytest.approx(2 * (0.5 * 1.0 + 0.5 * 3.0))
    assert history.price_at(4000.0) == 3.0


def test_availability_marks_wrap_around_the_trace() -> None:
    trace = AvailabilityTrace(tick_s=10.0, alive=(1, 0, 1))
    assert trace.next_available(12.0, 1) == 20.0
    assert trace.next_preemption(21.0, 1) == 40.0  # next cycle's tick 1
    assert trace.preemptions_per_hour() == pytest.approx(1 / (20 / 3600))


def test_results_copied_back_are_charged_at_the_egress_price() -> None:
    pool = CloudPool("c", "od", "A100", CapacityType.ON_DEMAND, 1.0, 1.0, startup_latency_s=0.0,
                     egress_usd_per_gb=0.09)  # fmt: skip
    run = run_in_cloud(pool, 1, 100.0, 0.0, JobPhysics(None), 0, random.Random(0), 50_000_000_000)
    assert run.data_usd == pytest.approx(4.5)
    assert run.end_s == 100.0
