"""The oracle's rounds: each books planned bursts against the core's ledger of that round, and
the rules of which pools a job may use (round-independent) are built once, not every round."""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import pytest

from federator.core.models import Offer
from federator.core.policy import DecisionPolicy
from federator.sim import oracle, policies
from federator.sim.cloud import CloudPool
from federator.sim.oracle import CloudOption, PlannedBurst, PlannedBursts
from federator.sim.traces import TraceJob
from federator.sim.world import World

from .helpers import on_demand_pool, tiny_scenario

POOL = dataclasses.replace(on_demand_pool(startup_s=100.0), max_gpus=8)
TRACE = (
    TraceJob("a", 0.0, 8, 1000.0),
    TraceJob("b", 0.0, 8, 1000.0),
    TraceJob("h100", 0.0, 8, 1000.0, gpu_type="H100"),  # the A100 pool is not for it
)


def planned_world() -> tuple[World, PlannedBursts]:
    world = World(TRACE, tiny_scenario(POOL))
    for job in range(len(TRACE)):
        world.estimate_at_submission(job)
    option = CloudOption(POOL, cost_usd=1.0, delay_s=100.0)
    plan = {job: PlannedBurst(option, 36_000.0) for job in range(len(TRACE))}
    return world, PlannedBursts("oracle", plan, DecisionPolicy(value_of_time_usd_per_gpu_hour=2.0))


def test_the_pool_rules_are_built_once_not_every_round(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[int] = []
    real = oracle.RoundOptions

    def counting(*args: object, **kwargs: object) -> oracle.RoundOptions:
        built.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    world, player = planned_world()
    monkeypatch.setattr(oracle, "RoundOptions", counting)
    assert [order.pool for order in player.decide(world, 0.0, [0])] == [POOL]
    world.pool_used_gpus[POOL.name] = 0  # a's burst ended: room for b in a later round
    assert [order.pool for order in player.decide(world, 30.0, [1])] == [POOL]
    assert len(built) == 1  # the rules; each round built only its ledger


def test_a_planned_burst_the_rules_forbid_never_goes() -> None:
    world, player = planned_world()
    orders = player.decide(world, 0.0, [2])
    assert [(order.job, order.pool) for order in orders] == [(2, None)]  # room, but not its type


def test_a_round_reuses_the_offer_of_a_pool_that_did_not_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world, player = planned_world()
    built: list[float] = []
    for module in (oracle, policies):
        real = module.pool_offer

        def counting(pool: CloudPool, world: World, now: float, real: Any = real) -> Offer:
            built.append(now)
            return cast(Offer, real(pool, world, now))

        monkeypatch.setattr(module, "pool_offer", counting)
    assert [order.pool for order in player.decide(world, 0.0, [0])] == [POOL]
    # Later, the pool as it was (this world does not book the bursts a player orders).
    assert [order.pool for order in player.decide(world, 30.0, [1])] == [POOL]
    assert built == [0.0, 0.0]  # the rules' offer, and the first round's: reused at 30 s


def test_pool_offers_are_rebuilt_when_the_room_changes() -> None:
    world, _ = planned_world()
    offers = policies.PoolOffers()
    first = offers.offer(POOL, world, 0.0)
    assert offers.offer(POOL, world, 30.0) is first
    world.pool_used_gpus[POOL.name] = 2
    assert offers.offer(POOL, world, 60.0).free_gpus == 6
