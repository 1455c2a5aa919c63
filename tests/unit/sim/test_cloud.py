from __future__ import annotations

import dataclasses
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
    # Only the 90 s of work since the last checkpoint is redone (the 10 s startup is billed,
    # in gpu_seconds, but it was never work).
    assert run.lost_gpu_seconds == pytest.approx(2 * 90)
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


def test_an_instance_lost_while_starting_up_is_a_preemption() -> None:
    # Up at tick 0, gone in tick 1 (100-200 s), back from 200 s; startup 150 s.
    pool = dataclasses.replace(
        replayed_spot((1, 0, 1, 1, 1, 1, 1, 1, 1, 1)), startup_latency_s=150.0
    )
    physics = JobPhysics(checkpoint_interval_s=None, restart_overhead_s=5.0)
    run = run_in_cloud(pool, 8, 300.0, 0.0, physics, 0, random.Random(0))
    # Launched at 0, lost at 100 before it ran; relaunched at 200, runs from 355 to 655.
    assert run.preemptions == 1
    assert (run.start_s, run.end_s) == (355.0, 655.0)
    assert run.lost_gpu_seconds == 0.0  # no work was done, so none is redone
    assert run.gpu_seconds == 8 * (100 + 455)


def test_a_job_holding_more_instances_than_remain_is_preempted() -> None:
    # Two instances up to 300 s, then one: a 2-node job is preempted, a 1-node job is not.
    pool = replayed_spot((2, 2, 2, 1, 2, 2, 2, 2, 2, 2))
    physics = JobPhysics(checkpoint_interval_s=None)
    assert run_in_cloud(pool, 16, 400.0, 0.0, physics, 0, random.Random(0)).preemptions == 1
    assert run_in_cloud(pool, 8, 400.0, 0.0, physics, 0, random.Random(0)).preemptions == 0


def test_a_job_needing_more_instances_than_the_trace_ever_has_never_launches_there() -> None:
    pool = replayed_spot((1, 2, 1))
    assert pool.largest_launch_gpus == 16
    trace = AvailabilityTrace(tick_s=10.0, alive=(1, 2, 1))
    assert trace.next_available(0.0, 3) == math.inf
    with pytest.raises(ValueError, match="can never launch 32 GPUs"):
        run_in_cloud(pool, 32, 100.0, 0.0, JobPhysics(None), 0, random.Random(0))


def test_lost_work_excludes_the_startup_and_checkpoint_writes_of_the_preempted_launch() -> None:
    # Checkpoints every 100 s of work, each write 20 s. Running from 10 s (startup) to the
    # drop at 300 s: two cycles of 120 s keep 200 s of work, then 50 s of work are lost.
    pool = replayed_spot((1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1))
    physics = JobPhysics(checkpoint_interval_s=100.0, checkpoint_write_s=20.0)
    run = run_in_cloud(pool, 2, 500.0, 0.0, physics, 0, random.Random(0))
    assert run.preemptions == 1
    assert run.lost_gpu_seconds == pytest.approx(2 * 50.0)  # not 2 x 100 (10 startup, 40 writes)


def test_an_on_demand_pool_with_a_preemption_rate_is_preempted() -> None:
    pool = dataclasses.replace(on_demand_pool(startup_s=0.0), preemption_rate_per_hour=3600.0)
    run = run_in_cloud(pool, 1, 100.0, 0.0, JobPhysics(None), 0, random.Random(1))
    assert run.preemptions > 0
    assert run.cost_usd == pytest.approx(run.gpu_seconds * 2.0 / 3600)  # its own price
