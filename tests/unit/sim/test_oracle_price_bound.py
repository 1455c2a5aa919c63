"""The oracle prices a job's cloud options only when its wait could be worth one: no run costs
less than its GPU-hours of work at the lowest price any pool bills (`oracle._least_price`)."""

from __future__ import annotations

import dataclasses
import math

import pytest

from federator.sim.cloud import JobPhysics, PriceHistory
from federator.sim.oracle import HOUR, _cloud_runs, _least_price
from federator.sim.scenarios import Scenario
from federator.sim.traces import TraceJob

from .helpers import on_demand_pool, spot_pool


def test_no_run_costs_less_than_its_work_at_the_lowest_price() -> None:
    history = PriceHistory(times_s=(0.0, 5000.0), usd_per_gpu_hour=(0.9, 0.3))
    pools = (
        on_demand_pool(price=2.0, startup_s=30.0),
        dataclasses.replace(spot_pool(price=0.5, rate=2.0), pool="spot-rate"),
        dataclasses.replace(spot_pool(price=0.5), pool="spot-history", price_history=history),
    )
    scenario = Scenario(onprem_gpus=8, pools=pools, physics=JobPhysics(checkpoint_interval_s=600.0))
    least = _least_price(pools)
    assert least == pytest.approx(0.3, rel=2e-3)
    assert least < 0.3
    for index, (gpus, work_s) in enumerate([(1, 60.0), (8, 3600.0), (4, 20_000.0)]):
        job = TraceJob(f"j{index}", 100.0 * index, gpus, work_s)
        for option in _cloud_runs(job, scenario, pools, job.submit_s):
            assert option.cost_usd >= gpus * work_s * least / HOUR


def test_a_negative_price_or_data_charge_bounds_nothing() -> None:
    assert _least_price((on_demand_pool(price=-1.0),)) == -math.inf
    rebate = dataclasses.replace(on_demand_pool(), egress_usd_per_gb=-0.01)
    assert _least_price((rebate,)) == -math.inf
