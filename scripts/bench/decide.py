"""Benchmark one decision round: 10,000 pending jobs against 50 cloud offers.

Usage: .venv/bin/python scripts/bench/decide.py [--jobs N] [--offers N] [--repeat N] [--seed S]

Prints the median CPU time of a full `decide` round per strategy and per job, and the ratios
against two baselines measured in the same process: the `never` strategy (the on-prem replay
alone, the floor any strategy pays) and an exhaustive pricing of every job on every offer (what
the federator round would cost without its bound-and-stop search). The scenario is synthetic
but shaped like a busy cluster: 640 on-prem GPUs all running, job sizes and runtimes drawn like
the Philly trace's (mostly 1 GPU, heavy-tailed runtimes), half the offers spot.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import replace

from federator.core import costs
from federator.core.models import CapacityType, Offer, OnPremState, PendingJob, RunningJob, Spend
from federator.core.placements import DecisionKind, decide
from federator.core.policy import Budgets, DecisionPolicy, Strategy

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--offers", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    jobs = make_jobs(args.jobs, rng)
    offers = make_offers(args.offers, rng)
    onprem = make_onprem(rng)
    spend = Spend(today_usd=1_000.0)
    base = DecisionPolicy(
        value_of_time_usd_per_gpu_hour=3.0,
        gpu_speed={"H100": 2.0},
        budgets=Budgets(max_usd_per_day=50_000.0),
    )
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
        seconds = median_s(
            lambda p=policy: decide(jobs, onprem, offers, spend, p, NOW), args.repeat
        )
        bursts = len(round_.of_kind(DecisionKind.BURST))
        print(
            f"{strategy.value:34} {seconds * 1e3:8.1f} ms/round {seconds / args.jobs * 1e6:6.2f} "
            f"µs/job  x{seconds / never:4.2f} of never  x{seconds / brute:4.2f} of exhaustive  "
            f"({bursts} bursts)"
        )


if __name__ == "__main__":
    main()
