"""Invariants of `decide` over generated rounds: budgets, caps, capacity, rules, monotonicity."""

from __future__ import annotations

import math
from dataclasses import replace
from fnmatch import fnmatchcase

from hypothesis import given, settings
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
TENANTS = ("t1", "t2", "t3")


@st.composite
def jobs(draw: st.DrawFn) -> list[PendingJob]:
    count = draw(st.integers(1, 12))
    made = []
    for index in range(count):
        names = draw(st.lists(st.sampled_from(DATASETS), max_size=2, unique=True))
        made.append(
            PendingJob(
                key=f"ns/j{index}",
                gpus=draw(st.sampled_from([1, 2, 4, 8, 16, 32])),
                submitted_at=NOW - draw(st.floats(0, 50_000)),
                runtime_estimate_s=draw(st.floats(60, 200_000)),
                tenant=draw(st.sampled_from(TENANTS)),
                priority=draw(st.integers(0, 3)),
                gpu_types=draw(
                    st.sampled_from([frozenset(), frozenset({"A100"}), frozenset({"H100"})])
                ),
                datasets=tuple(DatasetNeed(name, draw(st.integers(0, 10**12))) for name in names),
                deadline_at=draw(st.none() | st.floats(NOW, NOW + 400_000)),
                burst_allowed=draw(st.booleans()) or draw(st.booleans()),
                checkpoint_interval_s=draw(st.none() | st.floats(60, 7200)),
            )
        )
    return made


@st.composite
def offers(draw: st.DrawFn) -> tuple[Offer, ...]:
    count = draw(st.integers(0, 6))
    made = []
    for index in range(count):
        capacity = draw(st.sampled_from(list(CapacityType)))
        made.append(
            Offer(
                cluster=draw(st.sampled_from(["cloud-a", "cloud-b"])),
                pool=f"pool-{index}",
                gpu_type=draw(st.sampled_from(["A100", "H100"])),
                capacity_type=capacity,
                price_per_gpu_hour_usd=draw(st.floats(0.1, 8.0)),
                free_gpus=draw(st.integers(0, 64)),
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
    return tuple(made)


@st.composite
def states(draw: st.DrawFn) -> OnPremState:
    total = draw(st.sampled_from([8, 16, 64]))
    running = []
    used = 0
    while used < total and draw(st.booleans()):
        gpus = draw(st.integers(1, total - used))
        running.append(RunningJob(f"r{len(running)}", gpus, draw(st.floats(0, 100_000))))
        used += gpus
    return OnPremState(total_gpus=total, free_gpus=total - used, running=tuple(running))


def optional(values: st.SearchStrategy[float]) -> st.SearchStrategy[float | None]:
    return st.none() | values


@st.composite
def policies(draw: st.DrawFn) -> DecisionPolicy:
    return DecisionPolicy(
        strategy=draw(st.sampled_from(list(Strategy))),
        value_of_time_usd_per_gpu_hour=draw(st.floats(0, 20)),
        value_of_time_usd_per_job_hour=draw(st.floats(0, 20)),
        onprem_usd_per_gpu_hour=draw(st.floats(0, 1)),
        burst_margin_fraction=draw(st.floats(0, 0.5)),
        budgets=Budgets(
            max_usd_per_hour=draw(optional(st.floats(0, 200))),
            max_usd_per_day=draw(optional(st.floats(0, 2000))),
            tenant_max_usd_per_month={"t1": draw(st.floats(0, 500))},
            default_tenant_max_usd_per_month=draw(optional(st.floats(0, 5000))),
            at_cap=draw(st.sampled_from(list(AtCap))),
        ),
        caps=Caps(
            max_bursted_jobs=draw(optional(st.integers(0, 10))),
            max_bursted_gpus=draw(optional(st.integers(0, 64))),
            cluster_max_bursted_jobs={"cloud-a": draw(st.integers(0, 5))},
            cluster_max_bursted_gpus={"cloud-b": draw(st.integers(0, 40))},
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
def spends(draw: st.DrawFn) -> Spend:
    return Spend(
        last_hour_usd=draw(st.floats(0, 100)),
        today_usd=draw(st.floats(0, 1000)),
        tenant_month_usd={"t1": draw(st.floats(0, 400))},
        bursted_jobs=draw(st.integers(0, 5)),
        bursted_gpus=draw(st.integers(0, 32)),
        cluster_bursted_jobs={"cloud-a": draw(st.integers(0, 3))},
    )


def pool_of(decision: Decision, pools: tuple[Offer, ...]) -> Offer:
    (offer,) = (o for o in pools if (o.cluster, o.pool) == (decision.cluster, decision.pool))
    return offer


@settings(max_examples=150, deadline=None)
@given(jobs(), states(), offers(), spends(), policies())
def test_a_round_never_breaks_a_budget_cap_pool_size_or_rule(
    pending: list[PendingJob],
    onprem: OnPremState,
    pools: tuple[Offer, ...],
    spend: Spend,
    policy: DecisionPolicy,
) -> None:
    round_ = decide(pending, onprem, pools, spend, policy, NOW)
    assert [d.job_key for d in round_.decisions] == [j.key for j in pending]
    by_key = {j.key: j for j in pending}
    bursts = round_.bursts
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
    a_jobs = [d for d in bursts if d.cluster == "cloud-a"]
    if a_jobs:
        assert (
            spend.cluster_bursted_jobs["cloud-a"] + len(a_jobs)
            <= caps.cluster_max_bursted_jobs["cloud-a"]
        )
    b_gpus = sum(d.gpus for d in bursts if d.cluster == "cloud-b")
    if b_gpus:
        assert b_gpus <= caps.cluster_max_bursted_gpus["cloud-b"]
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


@settings(max_examples=60, deadline=None)
@given(jobs(), states(), offers(), spends(), policies())
def test_same_inputs_give_the_same_round(
    pending: list[PendingJob],
    onprem: OnPremState,
    pools: tuple[Offer, ...],
    spend: Spend,
    policy: DecisionPolicy,
) -> None:
    first = decide(pending, onprem, pools, spend, policy, NOW)
    again = decide(list(pending), onprem, tuple(reversed(pools)), spend, policy, NOW)
    assert first == again


def single_job_policy(policy: DecisionPolicy) -> DecisionPolicy:
    """The federator strategy with a sunk on-prem cluster: bursting is only about time."""
    return replace(policy, strategy=Strategy.FEDERATOR, onprem_usd_per_gpu_hour=0.0)


@settings(max_examples=150, deadline=None)
@given(jobs(), states(), offers(), spends(), policies(), st.data())
def test_raising_a_pools_price_never_makes_it_chosen(
    pending: list[PendingJob],
    onprem: OnPremState,
    pools: tuple[Offer, ...],
    spend: Spend,
    policy: DecisionPolicy,
    data: st.DataObject,
) -> None:
    if not pools:
        return
    job = pending[0]
    policy = single_job_policy(policy)
    index = data.draw(st.integers(0, len(pools) - 1))
    target = pools[index]
    raised = replace(
        target, price_per_gpu_hour_usd=target.price_per_gpu_hour_usd * data.draw(st.floats(1, 10))
    )
    before = decide([job], onprem, pools, spend, policy, NOW).decisions[0]
    after_pools = (*pools[:index], raised, *pools[index + 1 :])
    after = decide([job], onprem, after_pools, spend, policy, NOW).decisions[0]
    if before.pool != target.pool:
        assert after.pool != target.pool


@settings(max_examples=150, deadline=None)
@given(jobs(), states(), offers(), spends(), policies(), st.floats(1, 20))
def test_raising_the_value_of_time_never_reduces_bursting(
    pending: list[PendingJob],
    onprem: OnPremState,
    pools: tuple[Offer, ...],
    spend: Spend,
    policy: DecisionPolicy,
    factor: float,
) -> None:
    job = replace(pending[0], deadline_at=None)
    policy = single_job_policy(policy)
    higher = replace(
        policy,
        value_of_time_usd_per_gpu_hour=policy.value_of_time_usd_per_gpu_hour * factor,
        value_of_time_usd_per_job_hour=policy.value_of_time_usd_per_job_hour * factor,
    )
    before = decide([job], onprem, pools, spend, policy, NOW).decisions[0]
    after = decide([job], onprem, pools, spend, higher, NOW).decisions[0]
    if before.kind is not DecisionKind.STAY:
        assert after.kind is not DecisionKind.STAY, (before.reason, after.reason)


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
