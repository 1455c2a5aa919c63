"""Invariants of `decide` over generated rounds: budgets, caps, capacity, rules, monotonicity."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from fnmatch import fnmatchcase
from typing import TypeVar

import pytest
from hypothesis import assume, given, settings, target
from hypothesis import strategies as st

from federator.core import costs
from federator.core.choices import RoundOptions
from federator.core.models import (
    CapacityType,
    DatasetNeed,
    Offer,
    OnPremState,
    PendingJob,
    RunningJob,
    Spend,
)
from federator.core.placements import Decision, DecisionKind, Round, decide
from federator.core.policy import AtCap, Budgets, Caps, DecisionPolicy, Strategy, TenantRule

NOW = 100_000.0
DATASETS = ("public-a", "public-b", "secret-x")
CLOUDS = ("cloud-a", "cloud-b")
TENANTS = ("t1", "t2", "t3")
# Dataset sets a job reads; a secret one keeps the job on-prem.
DATASET_SETS = ((), (), ("public-a",), ("public-a", "public-b"), ("secret-x", "public-b"))
# A few round prices make ties between pools common (the order of offers must not matter);
# the floats in between keep arbitrary prices in play.
PRICES = st.sampled_from([0.5, 1.0, 2.0, 4.0]) | st.floats(0.1, 8.0)

# `busy=True` draws a round made to burst: on-prem full for hours, jobs that may burst and
# fit the clouds, waiting priced well above cloud prices, generous budgets and small caps and
# pools. Without it most generated rounds burst nothing (the reviewer counted 1-9 of 150),
# and then no cap or pool size is ever checked.


@st.composite
def jobs(draw: st.DrawFn, *, busy: bool = False) -> list[PendingJob]:
    # sampled_from, not integers(): Hypothesis would mostly draw one job, and caps and pool
    # sizes only matter when several jobs compete for them.
    count = draw(st.sampled_from(range(2 if busy else 1, 13)))
    made = []
    for index in range(count):
        names = draw(st.sampled_from(DATASET_SETS[:4] if busy else DATASET_SETS))
        made.append(
            PendingJob(
                key=f"ns/j{index}",
                gpus=draw(st.sampled_from([1, 2, 4, 8] if busy else [1, 2, 4, 8, 16, 32])),
                submitted_at=NOW - draw(st.floats(0, 50_000)),
                runtime_estimate_s=draw(st.floats(600, 36_000) if busy else st.floats(60, 200_000)),
                tenant=draw(st.sampled_from(TENANTS)),
                priority=draw(st.integers(0, 3)),
                gpu_types=draw(
                    st.sampled_from([frozenset(), frozenset({"A100"}), frozenset({"H100"})])
                ),
                datasets=tuple(DatasetNeed(name, draw(st.integers(0, 10**12))) for name in names),
                deadline_at=None if busy else draw(st.none() | st.floats(NOW, NOW + 400_000)),
                burst_allowed=busy or draw(st.sampled_from([True, True, True, False])),
                checkpoint_interval_s=draw(st.none() | st.floats(60, 7200)),
            )
        )
    return made


@st.composite
def offers(draw: st.DrawFn, *, busy: bool = False) -> tuple[Offer, ...]:
    count = draw(st.sampled_from(range(1 if busy else 0, 7)))
    made = []
    for index in range(count):
        capacity = draw(st.sampled_from(list(CapacityType)))
        made.append(
            Offer(
                cluster=draw(st.sampled_from(CLOUDS)),
                pool=f"pool-{index}",
                gpu_type=draw(st.sampled_from(["A100", "H100"])),
                capacity_type=capacity,
                price_per_gpu_hour_usd=draw(PRICES),
                # Small pools too, so two jobs of a round can want the same last GPUs.
                free_gpus=draw(
                    st.sampled_from([4, 8, 12, 16])
                    if busy
                    else st.sampled_from([0, 4, 8, 16]) | st.integers(0, 64)
                ),
                preemption_rate_per_hour=(
                    draw(st.floats(0, 3)) if capacity is CapacityType.SPOT else 0.0
                ),
                startup_latency_s=draw(st.floats(0, 1200)),
                region=draw(st.sampled_from(["us-east-1", "eu-west-1"])),
                ingress_usd_per_gb=draw(st.floats(0, 0.1)),
                transfer_bytes_per_s=draw(st.floats(1e6, 1e9)),
                replicated_datasets=frozenset(
                    draw(st.lists(st.sampled_from(DATASETS), max_size=2, unique=True))
                ),
            )
        )
    if draw(st.sampled_from([busy, True])):
        # Twins that differ only by name: each ties its original on every number, and only a
        # tie-break by name (not the order offers came in) may pick between them.
        made += [
            replace(o, cluster=draw(st.sampled_from(CLOUDS)), pool=f"twin-{o.pool}") for o in made
        ]
    return tuple(made)


@st.composite
def states(draw: st.DrawFn, *, busy: bool = False) -> OnPremState:
    total = draw(st.sampled_from([8, 16, 64]))
    if busy:  # full for hours: the cloud is the only way to start soon
        remaining = draw(st.floats(20_000, 200_000))
        return OnPremState(total, 0, running=(RunningJob("r-all", total, remaining),))
    running = []
    used = 0
    while used < total and draw(st.booleans()):
        gpus = draw(st.integers(1, total - used))
        running.append(RunningJob(f"r{len(running)}", gpus, draw(st.floats(0, 100_000))))
        used += gpus
    return OnPremState(total_gpus=total, free_gpus=total - used, running=tuple(running))


T = TypeVar("T")


def optional(values: st.SearchStrategy[T]) -> st.SearchStrategy[T | None]:
    return st.none() | values


BUSY_STRATEGIES = [Strategy.FEDERATOR, Strategy.ALWAYS, Strategy.GREEDY_SPOT]


@st.composite
def policies(draw: st.DrawFn, *, busy: bool = False) -> DecisionPolicy:
    generous = 50.0 if busy else 0.0  # a busy round's budgets leave room for a few bursts
    return DecisionPolicy(
        strategy=draw(st.sampled_from(BUSY_STRATEGIES if busy else list(Strategy))),
        # Up to well above the cloud prices (0.1-8 $/GPU-hour), where waiting is dear.
        value_of_time_usd_per_gpu_hour=draw(st.floats(20, 40) if busy else st.floats(0, 40)),
        value_of_time_usd_per_job_hour=draw(st.floats(0, 20)),
        onprem_usd_per_gpu_hour=draw(st.floats(0, 1)),
        burst_margin_fraction=draw(st.floats(0, 0.5)),
        budgets=Budgets(
            max_usd_per_hour=draw(optional(st.floats(generous, 200))),
            max_usd_per_day=draw(optional(st.floats(generous * 10, 2000))),
            tenant_max_usd_per_month={"t1": draw(st.floats(generous, 500))},
            default_tenant_max_usd_per_month=draw(optional(st.floats(generous * 10, 5000))),
            at_cap=draw(st.sampled_from(list(AtCap))),
        ),
        caps=Caps(
            max_bursted_jobs=draw(optional(st.integers(0, 10))),
            max_bursted_gpus=draw(optional(st.integers(0, 64))),
            cluster_max_bursted_jobs=draw(per_cloud(st.integers(0, 5), every=False)),
            cluster_max_bursted_gpus=draw(per_cloud(st.integers(0, 40), every=False)),
        ),
        tenants={
            "t2": TenantRule(allowed_regions=frozenset({"eu-west-1"})),
            "t3": TenantRule(allowed_clusters=frozenset({"cloud-b"})),
        },
        resident_datasets=("secret-*",),
        gpu_speed={"H100": 2.0},
        starburst_runtime_weighted_mean_gpus=draw(st.floats(1, 8)),
        starburst_max_queue_length=draw(optional(st.integers(0, 5))),
        queue_externality_weight=draw(st.sampled_from([0.0, 1.0])),
    )


@st.composite
def spends(draw: st.DrawFn, *, busy: bool = False) -> Spend:
    money = 0.1 if busy else 1.0  # a busy round has spent little yet
    return Spend(
        last_hour_usd=draw(st.floats(0, 100 * money)),
        today_usd=draw(st.floats(0, 1000 * money)),
        tenant_month_usd={"t1": draw(st.floats(0, 400 * money))},
        bursted_jobs=draw(st.integers(0, 5)),
        bursted_gpus=draw(st.integers(0, 32)),
        cluster_bursted_jobs=draw(per_cloud(st.integers(0, 3), every=busy)),
        cluster_bursted_gpus=draw(per_cloud(st.integers(0, 24), every=busy)),
    )


def per_cloud(values: st.SearchStrategy[int], *, every: bool) -> st.SearchStrategy[dict[str, int]]:
    """A value for every cloud, or for some of them."""
    if every:
        return st.fixed_dictionaries(dict.fromkeys(CLOUDS, values))
    return st.fixed_dictionaries({}, optional=dict.fromkeys(CLOUDS, values))


Inputs = tuple[list[PendingJob], OnPremState, tuple[Offer, ...], Spend, DecisionPolicy]


LIMITS = ("bursted jobs", "bursted GPUs", "a cloud's jobs", "a cloud's GPUs", "pool sizes")


@st.composite
def caps_with_room(draw: st.DrawFn, spend: Spend) -> Caps:
    """One limit a few jobs or GPUs above what is already bursted, the others unset: a busy
    round runs into it (with every cap set, the tightest one hides the others); "pool sizes"
    leaves only the pools' free GPUs."""
    limit = draw(st.sampled_from((*LIMITS, "a cloud's GPUs")))  # the cap with most to get wrong

    def above(used: int, most: int) -> int:
        return draw(st.integers(used, used + most))

    def each_cloud(used: Mapping[str, int], most: int) -> dict[str, int]:
        clouds = draw(st.sampled_from([CLOUDS, CLOUDS[:1], CLOUDS[1:]]))
        return {cloud: above(used.get(cloud, 0), most) for cloud in clouds}

    if limit == "bursted jobs":
        return Caps(max_bursted_jobs=above(spend.bursted_jobs, 4))
    if limit == "bursted GPUs":
        return Caps(max_bursted_gpus=above(spend.bursted_gpus, 16))
    if limit == "a cloud's jobs":
        return Caps(cluster_max_bursted_jobs=each_cloud(spend.cluster_bursted_jobs, 3))
    if limit == "a cloud's GPUs":
        return Caps(cluster_max_bursted_gpus=each_cloud(spend.cluster_bursted_gpus, 12))
    return Caps()


@st.composite
def rounds(draw: st.DrawFn) -> Inputs:
    """The inputs of one round, two in three busy (made to burst), the others anything."""
    busy = draw(st.sampled_from([True, True, False]))
    spend = draw(spends(busy=busy))
    policy = draw(policies(busy=busy))
    if busy:
        policy = replace(policy, caps=draw(caps_with_room(spend)))
    return draw(jobs(busy=busy)), draw(states(busy=busy)), draw(offers(busy=busy)), spend, policy


def pool_of(decision: Decision, pools: tuple[Offer, ...]) -> Offer:
    (offer,) = (o for o in pools if (o.cluster, o.pool) == (decision.cluster, decision.pool))
    return offer


@settings(max_examples=200, deadline=None)
@given(rounds())
def test_a_round_never_breaks_a_budget_cap_pool_size_or_rule(inputs: Inputs) -> None:
    pending, onprem, pools, spend, policy = inputs
    round_ = decide(pending, onprem, pools, spend, policy, NOW)
    assert [d.job_key for d in round_.decisions] == [j.key for j in pending]
    by_key = {j.key: j for j in pending}
    bursts = round_.bursts
    # A round that bursts nothing checks none of the caps below: steer towards busy rounds.
    target(float(len(bursts)), label="bursts in the round")
    slack = 1e-6
    budgets, caps = policy.budgets, policy.caps
    total = sum(d.expected_cost_usd for d in bursts)
    hourly = sum(pool_of(d, pools).price_per_gpu_hour_usd * d.gpus for d in bursts)
    if budgets.max_usd_per_day is not None and bursts:
        assert spend.today_usd + total <= budgets.max_usd_per_day + slack
    if budgets.max_usd_per_hour is not None and bursts:
        assert spend.last_hour_usd + hourly <= budgets.max_usd_per_hour + slack
    for tenant in TENANTS:
        mine = [d for d in bursts if by_key[d.job_key].tenant == tenant]
        cap = budgets.tenant_max_usd_per_month.get(tenant, budgets.default_tenant_max_usd_per_month)
        if cap is not None and mine:
            spent = spend.tenant_month_usd.get(tenant, 0.0)
            assert spent + sum(d.expected_cost_usd for d in mine) <= cap + slack
    if caps.max_bursted_jobs is not None and bursts:
        assert spend.bursted_jobs + len(bursts) <= caps.max_bursted_jobs
    if caps.max_bursted_gpus is not None and bursts:
        assert spend.bursted_gpus + sum(d.gpus for d in bursts) <= caps.max_bursted_gpus
    for cloud in CLOUDS:
        here = [d for d in bursts if d.cluster == cloud]
        jobs_cap = caps.cluster_max_bursted_jobs.get(cloud)
        if jobs_cap is not None and here:
            assert spend.cluster_bursted_jobs.get(cloud, 0) + len(here) <= jobs_cap
        gpus_cap = caps.cluster_max_bursted_gpus.get(cloud)
        if gpus_cap is not None and here:
            used = spend.cluster_bursted_gpus.get(cloud, 0) + sum(d.gpus for d in here)
            assert used <= gpus_cap
    for offer in pools:
        used = sum(d.gpus for d in bursts if (d.cluster, d.pool) == (offer.cluster, offer.pool))
        assert used <= max(0, offer.free_gpus)
    for decision in round_.decisions:
        if decision.kind is DecisionKind.STAY:
            continue
        job = by_key[decision.job_key]
        offer = pool_of(decision, pools)
        assert job.burst_allowed
        assert not any(fnmatchcase(d.name, "secret-*") for d in job.datasets)
        assert not job.gpu_types or offer.gpu_type in job.gpu_types
        if job.tenant == "t2":
            assert offer.region == "eu-west-1"
        if job.tenant == "t3":
            assert offer.cluster == "cloud-b"


@settings(max_examples=100, deadline=None)
@given(rounds(), st.data())
def test_same_inputs_give_the_same_round(inputs: Inputs, data: st.DataObject) -> None:
    """The order offers and jobs come in never matters, even between pools at the same price
    (PRICES makes such ties common): the tie is broken by name, not by position."""
    pending, onprem, pools, spend, policy = inputs
    first = decide(pending, onprem, pools, spend, policy, NOW)
    shuffled_pools = tuple(data.draw(st.permutations(pools), label="offers"))
    shuffled_jobs = data.draw(st.permutations(pending), label="jobs")
    again = decide(shuffled_jobs, onprem, shuffled_pools, spend, policy, NOW)
    by_key = {d.job_key: d for d in again.decisions}
    assert [by_key[d.job_key] for d in first.decisions] == list(first.decisions)
    assert decide(pending, onprem, shuffled_pools, spend, policy, NOW) == first
    target(float(len(first.bursts)), label="bursts in the round")


def single_job_policy(policy: DecisionPolicy) -> DecisionPolicy:
    """The federator strategy with a sunk on-prem cluster: bursting is only about time."""
    return replace(policy, strategy=Strategy.FEDERATOR, onprem_usd_per_gpu_hour=0.0)


@settings(max_examples=150, deadline=None)
@given(rounds(), st.data())
def test_raising_a_pools_price_never_makes_it_chosen(inputs: Inputs, data: st.DataObject) -> None:
    pending, onprem, pools, spend, policy = inputs
    assume(pools)
    job = pending[0]
    policy = single_job_policy(policy)
    index = data.draw(st.integers(0, len(pools) - 1))
    dearer = pools[index]
    raised = replace(
        dearer, price_per_gpu_hour_usd=dearer.price_per_gpu_hour_usd * data.draw(st.floats(1, 10))
    )
    before = decide([job], onprem, pools, spend, policy, NOW).decisions[0]
    # Most telling when the job bursts elsewhere: the raised pool must not take it over.
    target(float(before.kind is DecisionKind.BURST), label="bursts before the raise")
    after_pools = (*pools[:index], raised, *pools[index + 1 :])
    after = decide([job], onprem, after_pools, spend, policy, NOW).decisions[0]
    if before.pool != dearer.pool:
        assert after.pool != dearer.pool


@settings(max_examples=150, deadline=None)
@given(rounds(), st.floats(1, 20))
def test_raising_the_value_of_time_never_reduces_bursting(inputs: Inputs, factor: float) -> None:
    pending, onprem, pools, spend, policy = inputs
    job = replace(pending[0], deadline_at=None)
    policy = single_job_policy(policy)
    higher = replace(
        policy,
        value_of_time_usd_per_gpu_hour=policy.value_of_time_usd_per_gpu_hour * factor,
        value_of_time_usd_per_job_hour=policy.value_of_time_usd_per_job_hour * factor,
    )
    before = decide([job], onprem, pools, spend, policy, NOW).decisions[0]
    assume(before.kind is not DecisionKind.STAY)  # else there is nothing to keep
    after = decide([job], onprem, pools, spend, higher, NOW).decisions[0]
    assert after.kind is not DecisionKind.STAY, (before.reason, after.reason)


@pytest.mark.parametrize("value", [2.0, 4.0, 8.0, 50.0, 500.0])
def test_a_job_that_bursts_at_a_low_value_of_time_bursts_at_every_higher_one(value: float) -> None:
    """The fixed case of the property above: one 8-GPU job, on-prem full for 6 h, a $1 pool.
    At $2 per GPU-hour of waiting it already bursts; dearer waiting must not change that."""
    pool = Offer(
        cluster="cloud-a",
        pool="p",
        gpu_type="A100",
        capacity_type=CapacityType.ON_DEMAND,
        price_per_gpu_hour_usd=1.0,
        free_gpus=32,
        region="us-east-1",
    )
    full = OnPremState(total_gpus=16, free_gpus=0, running=(RunningJob("r", 16, 6 * 3600.0),))
    job = PendingJob(key="ns/j", gpus=8, submitted_at=0.0, runtime_estimate_s=3600.0)
    policy = single_job_policy(DecisionPolicy(value_of_time_usd_per_gpu_hour=value))
    (decision,) = decide([job], full, (pool,), Spend(), policy, 10_000.0).decisions
    assert decision.kind is DecisionKind.BURST, decision.reason


def test_round_type_is_a_value() -> None:
    empty = decide([], OnPremState(total_gpus=8, free_gpus=8), (), Spend(), DecisionPolicy(), NOW)
    assert empty == Round(decisions=(), now=NOW)


@settings(max_examples=150, deadline=None)
@given(jobs(), offers(), policies(), st.floats(0, 50))
def test_the_search_bound_never_exceeds_the_priced_total(
    pending: list[PendingJob], pools: tuple[Offer, ...], policy: DecisionPolicy, value: float
) -> None:
    """The search stops at the first bound above the best total: a bound above a real total
    would skip a better option."""
    options = RoundOptions(pools, Spend(), policy, NOW)
    for job in pending:
        runtime_h = job.runtime_estimate_s / 3600
        candidates = list(options._bounds_in_order(job, runtime_h, value))
        for bound, index, cost_bound in candidates:
            offer = options.offers[index]
            for held in (False, True):
                option = costs.price_cloud(
                    job,
                    offer,
                    now=NOW,
                    policy=policy,
                    value_per_hour=value,
                    held=held,
                    free_gpus=offer.free_gpus,
                )
                assert bound <= option.total_usd + 1e-9 * max(1.0, abs(option.total_usd))
                assert cost_bound <= option.cost_usd + 1e-9 * max(1.0, abs(option.cost_usd))
        floor = options._class_floor(job, runtime_h, value)
        assert all(floor <= b + 1e-9 for b, _, _ in candidates)


@settings(max_examples=150, deadline=None)
@given(jobs(), offers(), offers(), policies(), st.floats(0, 50))
def test_bounds_come_out_lowest_first_though_each_is_worked_out_only_when_needed(
    pending: list[PendingJob],
    pools: tuple[Offer, ...],
    more: tuple[Offer, ...],
    policy: DecisionPolicy,
    value: float,
) -> None:
    """Offers are bounded in the order of a cheaper floor and a bound is handed out once no
    floor left is below it: the order must be that of sorting every bound, and each floor must
    be under its bound (a floor above it would hand a bound out too early)."""
    renamed = tuple(replace(offer, pool=f"more-{offer.pool}") for offer in more)
    options = RoundOptions(pools + renamed, Spend(), policy, NOW)
    free = options.ledger.free
    for job in pending:
        runtime_h = job.runtime_estimate_s / 3600
        lazily = list(options._bounds_in_order(job, runtime_h, value))
        assert lazily == sorted(lazily)
        found, indices = options._floors_under_bounds(job, runtime_h, value)
        floors = dict(zip(indices, found, strict=True))
        assert {index for _, index, _ in lazily} == {i for i in floors if job.gpus <= free[i]}
        for bound, index, _ in lazily:
            assert floors[index] <= bound
        assert not floors or max(floors.values()) > -math.inf  # the floors were worked out


@settings(max_examples=150, deadline=None)
@given(jobs(), states(), offers(), spends(), policies(), st.data())
def test_asking_for_some_decisions_gives_exactly_those_of_the_whole_round(
    pending: list[PendingJob],
    onprem: OnPremState,
    pools: tuple[Offer, ...],
    spend: Spend,
    policy: DecisionPolicy,
    data: st.DataObject,
) -> None:
    """`only` may skip pricing jobs that cannot burst and stop early; it never changes a
    decision, its reason or its terms."""
    keys = [job.key for job in pending]
    asked = set(data.draw(st.lists(st.sampled_from(keys), max_size=len(keys))))
    whole = decide(pending, onprem, pools, spend, policy, NOW)
    some = decide(pending, onprem, pools, spend, policy, NOW, only=asked)
    expected = [d for d in whole.decisions if d.job_key in asked]
    assert list(some.decisions) == expected
    assert [d.reason for d in some.decisions] == [d.reason for d in expected]
    assert [dict(d.terms) for d in some.decisions] == [dict(d.terms) for d in expected]
