"""Small worlds for the simulator's tests: pools, scenarios and traces written by hand."""

from __future__ import annotations

from pathlib import Path

from federator.core.models import CapacityType
from federator.sim.cloud import CloudPool, JobPhysics
from federator.sim.scenarios import Scenario
from federator.sim.traces import TraceJob
from federator.sim.world import World

SHARED_DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
TRACE_A = SHARED_DATA / "traces" / "trace_a_philly.csv"


class ScriptedController:
    """The `Controller` parts a hand-written test controller shares; subclasses write `decide`."""

    name = "scripted"
    knob: float | None = None

    def prepare(self, world: World) -> None:
        return None


def on_demand_pool(price: float = 2.0, startup_s: float = 60.0) -> CloudPool:
    return CloudPool(
        cluster="cloud",
        pool="od",
        gpu_type="A100",
        capacity_type=CapacityType.ON_DEMAND,
        price_per_gpu_hour_usd=price,
        on_demand_price_per_gpu_hour_usd=price,
        startup_latency_s=startup_s,
    )


def spot_pool(price: float = 0.5, rate: float = 0.0, startup_s: float = 60.0) -> CloudPool:
    return CloudPool(
        cluster="cloud",
        pool="spot",
        gpu_type="A100",
        capacity_type=CapacityType.SPOT,
        price_per_gpu_hour_usd=price,
        on_demand_price_per_gpu_hour_usd=2.0,
        preemption_rate_per_hour=rate,
        startup_latency_s=startup_s,
    )


def tiny_scenario(*pools: CloudPool, period_s: float = 0.0) -> Scenario:
    """One 8-GPU node, event-driven decisions, no checkpoints (nothing is preempted here)."""
    return Scenario(
        onprem_gpus=8,
        gpus_per_node=8,
        pools=pools,
        physics=JobPhysics(checkpoint_interval_s=None),
        decision_period_s=period_s,
    )


def tiny_trace() -> tuple[TraceJob, ...]:
    """j0 fills the node for an hour; j1 (4 GPUs) and j2 (2 GPUs) arrive behind it."""
    return (
        TraceJob("j0", 0.0, 8, 3600.0),
        TraceJob("j1", 100.0, 4, 1800.0),
        TraceJob("j2", 200.0, 2, 600.0),
    )
