"""Benchmark one decision round: 10,000 pending jobs against 50 cloud offers.

Usage: .venv/bin/python scripts/bench/decide.py [--jobs N] [--offers N] [--repeat N] [--seed S]
                                                [--pools N]
       .venv/bin/python scripts/bench/decide.py --record FILE | --check FILE [--trace CSV]

Prints the median CPU time of a full `decide` round per strategy and per job, and the ratios
against two baselines measured in the same process: the `never` strategy (the on-prem replay
alone, the floor any strategy pays) and an exhaustive pricing of every job on every offer (what
the federator round would cost without its bound-and-stop search). The scenario is synthetic
but shaped like a busy cluster: 640 on-prem GPUs all running, job sizes and runtimes drawn like
the Philly trace's (mostly 1 GPU, heavy-tailed runtimes), half the offers spot.

`--record` / `--check` guard speed work on the core: they fingerprint every field of every
decision (kind, pool, costs, waits, revisit time, the reason line and every term) of a fixed
set of rounds — a few thousand small rounds with varied jobs, offers, budgets, caps, rules and
strategies, the benchmark's big round per strategy, and every round a simulation of a trace
asks (`--trace`, default trace A, with `config/sandbox.yaml`) — and `--check` says which
round first differs from the recorded file. Record before a change, check after it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from federator.core import costs
from federator.core.models import (
    CapacityType,
    DatasetNeed,
    Offer,
    OnPremState,
    PendingJob,
    QuotaPool,
    RunningJob,
    RuntimeSource,
    Spend,
)
from federator.core.placements import Decision, DecisionKind, Round, decide
from federator.core.policy import AtCap, Budgets, Caps, DecisionPolicy, Strategy, TenantRule

REPO = Path(__file__).resolve().parents[2]
TRACE_A = REPO / ".." / "shared" / "data" / "traces" / "trace_a_philly.csv"

NOW = 1_000_000.0


def make_jobs(count: int, rng: random.Random) -> list[PendingJob]:
    sizes = [1] * 70 + [2] * 8 + [4] * 10 + [8] * 9 + [16] * 2 + [32]
    return [
        PendingJob(
            key=f"team-{index % 7}/job-{index:05d}",
            gpus=rng.choice(sizes),
            submitted_at=NOW - rng.uniform(0, 86_400),
            runtime_estimate_s=min(30 * 86_400, rng.lognormvariate(8.0, 1.8)),
            queue=f"q{index % 3}",
            tenant=f"team-{index % 7}",
            priority=index % 4,
        )
        for index in range(count)
    ]


def make_offers(count: int, rng: random.Random) -> list[Offer]:
    made = []
    for index in range(count):
        spot = index % 2 == 0
        gpu = "H100" if index % 5 == 0 else "A100"
        made.append(
            Offer(
                cluster=f"cloud-{'ab'[index % 2]}",
                pool=f"pool-{index:02d}",
                gpu_type=gpu,
                capacity_type=CapacityType.SPOT if spot else CapacityType.ON_DEMAND,
                price_per_gpu_hour_usd=rng.uniform(0.8, 2.0) if spot else rng.uniform(2.5, 5.0),
                free_gpus=rng.choice([16, 32, 64, 128]),
                preemption_rate_per_hour=rng.uniform(0.05, 0.8) if spot else 0.0,
                startup_latency_s=rng.uniform(60, 600),
                region=rng.choice(["us-east-1", "us-west-2", "eu-west-1"]),
            )
        )
    return made


def make_onprem(rng: random.Random) -> OnPremState:
    running = tuple(RunningJob(f"run-{i}", 8, rng.uniform(60, 40 * 3600)) for i in range(80))
    return OnPremState(total_gpus=640, free_gpus=0, running=running)


def exhaustive(
    jobs: list[PendingJob], offers: list[Offer], policy: DecisionPolicy
) -> Callable[[], object]:
    """Baseline: price every job on every offer, nothing else (no replay, no ledger)."""

    def run() -> object:
        best = []
        for job in jobs:
            value = policy.value_of_time_usd_per_hour(
                gpus=job.gpus, queue=job.queue, priority=job.priority
            )
            best.append(
                min(
                    costs.price_cloud(
                        job, offer, now=NOW, policy=policy, value_per_hour=value
                    ).total_usd
                    for offer in offers
                )
            )
        return best

    return run


def median_s(run: Callable[[], object], repeat: int) -> float:
    """Median CPU seconds of `run` (CPU time, so other processes on a busy box count less)."""
    samples = []
    for _ in range(repeat):
        start = time.process_time()
        run()
        samples.append(time.process_time() - start)
    return statistics.median(samples)


def reference_loop() -> None:
    """A fixed pure-Python workload: its time says how fast this box runs Python right now."""
    sum(i * i for i in range(1_000_000))


# --- fingerprints: the decisions must not change when the core gets faster ------------------


def fingerprint(round_: Round, keys: set[str] | None = None) -> str:
    """A digest of every field of every decision of a round (of `keys` only, if given)."""
    digest = hashlib.sha256(repr(round_.now).encode())
    for decision in round_.decisions:
        if keys is None or decision.job_key in keys:
            digest.update(repr(_fields(decision)).encode())
    return digest.hexdigest()[:20]


def _fields(decision: Decision) -> tuple[object, ...]:
    return (
        decision.job_key,
        str(decision.kind),
        decision.cluster,
        decision.pool,
        decision.expected_cost_usd,
        decision.expected_wait_s,
        decision.expected_completion_s,
        sorted(decision.terms.items()),
        decision.reason,
        None if decision.capacity_type is None else str(decision.capacity_type),
        decision.revisit_at,
        decision.gpus,
    )


def varied_round(rng: random.Random) -> tuple[list[PendingJob], OnPremState, list[Offer], Spend]:
    """A small round with every feature the core knows: data, deadlines, rules, node shapes."""
    names = ("public-a", "public-b", "secret-x")
    jobs = [
        PendingJob(
            key=f"ns/j{index}",
            gpus=rng.choice([1, 1, 2, 4, 8, 16, 32]),
            submitted_at=NOW - rng.uniform(0, 50_000),
            runtime_estimate_s=rng.uniform(60, 200_000),
            tenant=rng.choice(["t1", "t2", "t3"]),
            queue=rng.choice(["q0", "q1"]),
            priority=rng.randint(0, 3),
            gpu_types=rng.choice([frozenset(), frozenset({"A100"}), frozenset({"H100"})]),
            datasets=tuple(
                DatasetNeed(name, rng.randint(0, 10**12))
                for name in rng.sample(names, rng.randint(0, 2))
            ),
            deadline_at=rng.choice([None, NOW + rng.uniform(0, 400_000)]),
            burst_allowed=rng.random() < 0.8,
            checkpoint_interval_s=rng.choice([None, rng.uniform(60, 7200)]),
            gpus_per_pod=rng.choice([None, None, 1, 4, 8]),
            runtime_source=rng.choice(list(RuntimeSource)),
            output_bytes=rng.choice([0, 10**10]),
        )
        for index in range(rng.randint(1, 40))
    ]
    offers = []
    for index in range(rng.randint(0, 8)):
        spot = rng.random() < 0.5
        offers.append(
            Offer(
                cluster=rng.choice(["cloud-a", "cloud-b"]),
                pool=f"pool-{index}",
                gpu_type=rng.choice(["A100", "H100"]),
                capacity_type=CapacityType.SPOT if spot else CapacityType.ON_DEMAND,
                price_per_gpu_hour_usd=rng.uniform(0.1, 8.0),
                free_gpus=rng.randint(0, 64),
                preemption_rate_per_hour=rng.uniform(0, 3) if spot else 0.0,
                startup_latency_s=rng.uniform(0, 1200),
                region=rng.choice(["us-east-1", "eu-west-1"]),
                gpus_per_node=rng.choice([4, 8]),
                ingress_usd_per_gb=rng.uniform(0, 0.1),
                egress_usd_per_gb=rng.uniform(0, 0.1),
                transfer_bytes_per_s=rng.uniform(1e6, 1e9),
                replicated_datasets=frozenset(rng.sample(names, rng.randint(0, 2))),
                pending_dataset_bytes={"public-a": 10**9} if rng.random() < 0.3 else {},
            )
        )
    total = rng.choice([8, 16, 64])
    running: list[RunningJob] = []
    used = 0
    while used < total and rng.random() < 0.7:
        gpus = rng.randint(1, total - used)
        running.append(RunningJob(f"r{len(running)}", gpus, rng.uniform(0, 100_000)))
        used += gpus
    nodes: tuple[int, ...] = ()
    if rng.random() < 0.5 and total - used > 0:
        free, parts = total - used, []
        while free > 0:
            part = min(free, rng.randint(1, 8))
            parts.append(part)
            free -= part
        nodes = tuple(parts)
    onprem = OnPremState(
        total_gpus=total,
        free_gpus=total - used,
        running=tuple(running),
        node_free_gpus=nodes,
        queue_order=tuple(job.key for job in rng.sample(jobs, len(jobs) // 2)),
    )
    spend = Spend(
        last_hour_usd=rng.uniform(0, 100),
        today_usd=rng.uniform(0, 1000),
        tenant_month_usd={"t1": rng.uniform(0, 400)},
        bursted_jobs=rng.randint(0, 5),
        bursted_gpus=rng.randint(0, 32),
    )
    return jobs, onprem, offers, spend


def varied_policy(rng: random.Random) -> DecisionPolicy:
    def maybe(value: float) -> float | None:
        return None if rng.random() < 0.5 else value

    caps_jobs = rng.randint(0, 10) if rng.random() < 0.3 else None
    return DecisionPolicy(
        strategy=rng.choice(list(Strategy)),
        value_of_time_usd_per_gpu_hour=rng.uniform(0, 20),
        value_of_time_usd_per_job_hour=rng.choice([0.0, rng.uniform(0, 20)]),
        queue_value_of_time_usd_per_gpu_hour={"q1": rng.uniform(0, 10)},
        priority_value_multipliers=((1, 1.5), (3, 4.0)) if rng.random() < 0.5 else (),
        onprem_usd_per_gpu_hour=rng.uniform(0, 1),
        burst_margin_fraction=rng.uniform(0, 0.5),
        burst_margin_usd=rng.choice([0.0, 5.0]),
        min_pending_before_burst_s=rng.choice([0.0, 0.0, 600.0, 20_000.0]),
        default_checkpoint_interval_s=rng.choice([None, 1800.0]),
        preemption_rate_per_node=rng.random() < 0.3,
        bill_startup=rng.random() < 0.8,
        congestion_weight=rng.choice([0.0, 1.0, 2.5]),
        onprem_backfill=rng.random() < 0.7,
        budgets=Budgets(
            max_usd_per_hour=maybe(rng.uniform(0, 200)),
            max_usd_per_day=maybe(rng.uniform(0, 2000)),
            tenant_max_usd_per_month={"t1": rng.uniform(0, 500)},
            default_tenant_max_usd_per_month=maybe(rng.uniform(0, 5000)),
            at_cap=rng.choice(list(AtCap)),
        ),
        caps=Caps(
            max_bursted_jobs=caps_jobs,
            max_bursted_gpus=rng.randint(0, 64) if rng.random() < 0.3 else None,
            cluster_max_bursted_jobs={"cloud-a": rng.randint(0, 5)},
            cluster_max_bursted_gpus={"cloud-b": rng.randint(0, 40)},
        ),
        tenants={
            "t2": TenantRule(allowed_regions=frozenset({"eu-west-1"})),
            "t3": TenantRule(allowed_clusters=frozenset({"cloud-b"}), burst_allowed=True),
            "t4": TenantRule(burst_allowed=False),
        },
        resident_datasets=("secret-*",),
        gpu_speed={"H100": 2.0},
        starburst_runtime_weighted_mean_gpus=rng.uniform(1, 8),
        starburst_max_queue_length=rng.randint(0, 5) if rng.random() < 0.5 else None,
    )


def synthetic_fingerprints(rounds: int) -> Iterator[tuple[str, str]]:
    rng = random.Random(20261129)
    for index in range(rounds):
        jobs, onprem, offers, spend = varied_round(rng)
        policy = varied_policy(rng)
        now = NOW + rng.choice([0.0, 300.0])
        yield f"varied-{index}", fingerprint(decide(jobs, onprem, offers, spend, policy, now))
    big_rng = random.Random(1)
    jobs, offers = make_jobs(10_000, big_rng), make_offers(50, big_rng)
    onprem = make_onprem(big_rng)
    base = bench_policy()
    for strategy in Strategy:
        policy = replace(base, strategy=strategy)
        round_ = decide(jobs, onprem, offers, Spend(today_usd=1_000.0), policy, NOW)
        yield f"bench-{strategy}", fingerprint(round_)


def simulated_fingerprints(trace_path: Path) -> Iterator[tuple[str, str]]:
    """Every round a simulation of the trace asks the core, per policy (sandbox policy file)."""
    from federator.sim import runs, setup
    from federator.sim.engine import Simulation
    from federator.sim.policies import CoreController
    from federator.sim.traces import read_trace

    trace = read_trace(trace_path)
    world = setup.load_world(
        REPO / "config" / "sandbox.yaml", trace, setup.WorldOptions(onprem_gpus=576)
    )
    specs = [runs.RunSpec(name, None) for name in ("never", "always", "greedy-spot")]
    specs += [runs.RunSpec("starburst", 0.25), runs.RunSpec("federator", None)]
    specs += [runs.RunSpec("federator", 5.0), runs.RunSpec("federator", 0.3)]
    for spec in specs:
        found: list[str] = []

        def recording(
            jobs: Sequence[PendingJob], *args: Any, found: list[str] = found, **kwargs: Any
        ) -> Round:
            round_ = decide(jobs, *args, **kwargs)
            # The jobs due for a decision; the others only hold their place in the queue.
            found.append(fingerprint(round_, {job.key for job in jobs if job.burst_allowed}))
            return round_

        policy = runs.decision_policy(spec, world.policy, trace)
        controller = CoreController(spec.policy, policy, knob=spec.knob, decide=recording)
        result = Simulation(trace, world.scenario, controller).run()
        whole = hashlib.sha256("".join(found).encode()).hexdigest()[:20]
        yield f"sim-{spec.label}-rounds", str(len(found))
        yield f"sim-{spec.label}", whole
        yield f"sim-{spec.label}-cost", repr(result.summary.cloud_cost_usd)
        for index, digest in enumerate(found):
            yield f"sim-{spec.label}-round-{index}", digest


def record_or_check(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    found = dict(synthetic_fingerprints(args.rounds))
    found.update(simulated_fingerprints(args.trace))
    print(f"{len(found)} fingerprints in {time.perf_counter() - started:.1f} s")
    if args.record is not None:
        args.record.write_text(json.dumps(found, indent=0) + "\n", encoding="utf-8")
        print(f"recorded to {args.record}")
        return 0
    expected = json.loads(args.check.read_text(encoding="utf-8"))
    differ = [name for name in expected if found.get(name) != expected[name]]
    missing = sorted(set(found) ^ set(expected))
    for name in differ[:10]:
        print(f"DIFFERS {name}: recorded {expected[name]}, now {found.get(name)}")
    for name in missing[:10]:
        print(f"ONLY IN ONE RUN {name}")
    if differ or missing:
        print(f"{len(differ)} of {len(expected)} fingerprints differ")
        return 1
    print(f"all {len(expected)} fingerprints identical to {args.check}")
    return 0


def bench_policy() -> DecisionPolicy:
    return DecisionPolicy(
        value_of_time_usd_per_gpu_hour=3.0,
        gpu_speed={"H100": 2.0},
        budgets=Budgets(max_usd_per_day=50_000.0),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--offers", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--seed", type=int, default=1)
    guard = parser.add_mutually_exclusive_group()
    guard.add_argument("--record", type=Path, metavar="FILE", help="write decision fingerprints")
    guard.add_argument("--check", type=Path, metavar="FILE", help="compare with a --record file")
    parser.add_argument("--rounds", type=int, default=3000, help="varied rounds to fingerprint")
    parser.add_argument("--trace", type=Path, default=TRACE_A, help="trace to simulate")
    parser.add_argument(
        "--pools",
        type=int,
        default=0,
        metavar="N",
        help="also time the federator round with the jobs spread over N on-prem quota pools",
    )
    args = parser.parse_args()
    if args.record is not None or args.check is not None:
        return record_or_check(args)
    rng = random.Random(args.seed)
    jobs = make_jobs(args.jobs, rng)
    offers = make_offers(args.offers, rng)
    onprem = make_onprem(rng)
    spend = Spend(today_usd=1_000.0)
    base = bench_policy()
    print(
        f"{args.jobs} pending jobs, {args.offers} offers, median CPU time of {args.repeat} rounds"
    )
    print(f"{'reference loop (1e6 squares)':34} {median_s(reference_loop, 5) * 1e3:8.1f} ms")
    never = median_s(
        lambda: decide(jobs, onprem, offers, spend, replace(base, strategy=Strategy.NEVER), NOW),
        args.repeat,
    )
    brute = median_s(exhaustive(jobs, offers, base), max(1, args.repeat // 3))
    print(f"{'baseline: never (replay only)':34} {never * 1e3:8.1f} ms")
    print(f"{'baseline: price every job x offer':34} {brute * 1e3:8.1f} ms")
    for strategy in Strategy:
        policy = replace(base, strategy=strategy)
        round_ = decide(jobs, onprem, offers, spend, policy, NOW)
        seconds = median_s(partial(decide, jobs, onprem, offers, spend, policy, NOW), args.repeat)
        bursts = len(round_.of_kind(DecisionKind.BURST))
        print(
            f"{strategy.value:34} {seconds * 1e3:8.1f} ms/round {seconds / args.jobs * 1e6:6.2f} "
            f"µs/job  x{seconds / never:4.2f} of never  x{seconds / brute:4.2f} of exhaustive  "
            f"({bursts} bursts)"
        )
    if args.pools > 1:
        time_quota_pools(jobs, onprem, offers, spend, base, args)
    return 0


def time_quota_pools(
    jobs: list[PendingJob],
    onprem: OnPremState,
    offers: list[Offer],
    spend: Spend,
    policy: DecisionPolicy,
    args: argparse.Namespace,
) -> None:
    """The same round with jobs and running jobs dealt round-robin to `--pools` quota pools of
    equal size (one replay per pool, starts merged), against the one-pool round, alternating."""
    count = args.pools
    size = onprem.total_gpus // count
    pooled = replace(
        onprem,
        running=tuple(
            replace(r, quota_pool=f"cq-{i % count}") for i, r in enumerate(onprem.running)
        ),
        quota_pools=tuple(QuotaPool(f"cq-{i}", size, 0) for i in range(count)),
    )
    spread = [replace(job, quota_pool=f"cq-{i % count}") for i, job in enumerate(jobs)]
    one = partial(decide, jobs, onprem, offers, spend, policy, NOW)
    many = partial(decide, spread, pooled, offers, spend, policy, NOW)
    singles, pooled_runs = [], []
    for _ in range(3):
        singles.append(median_s(one, args.repeat))
        pooled_runs.append(median_s(many, args.repeat))
    single, several = statistics.median(singles), statistics.median(pooled_runs)
    bursts = len(many().of_kind(DecisionKind.BURST))
    print(
        f"{f'federator, {count} quota pools':34} {several * 1e3:8.1f} ms/round "
        f"x{several / single:4.2f} of one pool ({single * 1e3:.1f} ms, same process)  "
        f"({bursts} bursts)"
    )


if __name__ == "__main__":
    sys.exit(main())
