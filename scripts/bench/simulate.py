"""Benchmark of `federator simulate`: speed, and federator's cost-JCT curve against the others.

    .venv/bin/python scripts/bench/simulate.py            # speed (trace A + 200k synthetic)
    .venv/bin/python scripts/bench/simulate.py --quality  # + curves at 576 and 640 GPUs
    .venv/bin/python scripts/bench/simulate.py --write-synthetic synthetic_200k.csv
        # the speed run's 200,000-job trace as a CSV, to time `federator simulate` end to end

Speed: one full run of trace A per policy, and one run of a synthetic 200,000-job trace for
`federator`, each timed in wall-clock and CPU seconds; ratios are printed against the
`never` run of the same trace in the same process (the cost of the simulation with the
decision core doing the least work).

Quality: each policy's knob sweep on trace A with the bench policy file
(`simulate_policy.yaml`: V100 spot + on-demand) and with on-demand only
(`simulate_ondemand_policy.yaml`: everyone pays the same price per GPU-hour). Every curve
is reduced to its Pareto frontier (cost vs mean JCT); federator's points are compared with
the other curve interpolated at the same mean JCT (cost ratio) and at the same cost (JCT
difference).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from federator.sim import runs, setup
from federator.sim.engine import Simulation
from federator.sim.estimates import EstimateMode
from federator.sim.results import RunResult
from federator.sim.traces import (
    TraceJob,
    jittered,
    read_trace,
    synthetic_trace,
    write_trace,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TRACE_A = REPO / ".." / "shared" / "data" / "traces" / "trace_a_philly.csv"
POLICY_FILES = {
    "spot+on-demand": HERE / "simulate_policy.yaml",
    "on-demand only": HERE / "simulate_ondemand_policy.yaml",
}
HOUR = 3600.0


def timed_run(
    trace: Sequence[TraceJob],
    world: setup.WorldSetup,
    spec: runs.RunSpec,
    planners: runs.Planners | None = None,
) -> tuple[RunResult, float, float]:
    controller = runs.controller_for(spec, world.policy, trace, world.scenario, planners)
    wall, cpu = time.perf_counter(), time.process_time()
    result = Simulation(trace, world.scenario, controller).run()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def configured(name: str, world: setup.WorldSetup) -> runs.RunSpec:
    knob = runs.configured_knob(name, world.policy) if name in runs.KNOB_NAMES else None
    return runs.RunSpec(name, knob)


def speed() -> None:
    trace = read_trace(TRACE_A)
    world = setup.load_world(
        POLICY_FILES["spot+on-demand"], trace, setup.WorldOptions(onprem_gpus=576)
    )
    print(f"== speed: trace A ({len(trace):,} jobs), 576 on-prem GPUs, one run per policy")
    baseline = None
    for name in ("never", "always", "greedy-spot", "starburst", "federator"):
        spec = configured(name, world)
        result, wall, cpu = timed_run(trace, world, spec)
        baseline = baseline or cpu
        print(
            f"{name:12s} wall {wall:6.2f} s  cpu {cpu:6.2f} s  cpu/never {cpu / baseline:5.2f}x  "
            f"rounds {result.decision_rounds:6d}  decided {result.decided_jobs:7d}"
        )
    synthetic = big_synthetic_trace()
    big = setup.load_world(
        POLICY_FILES["spot+on-demand"], synthetic, setup.WorldOptions(onprem_gpus=1024)
    )
    print(f"== speed: synthetic {len(synthetic):,} jobs, 1024 on-prem GPUs")
    base = None
    for name in ("never", "federator"):
        spec = configured(name, big)
        result, wall, cpu = timed_run(synthetic, big, spec)
        base = base or cpu
        print(
            f"{name:12s} wall {wall:6.2f} s  cpu {cpu:6.2f} s  cpu/never {cpu / base:5.2f}x  "
            f"bursted {result.summary.bursted_jobs:,}"
        )


def big_synthetic_trace() -> tuple[TraceJob, ...]:
    """The speed run's 200,000 jobs for 1,024 on-prem GPUs, 10% more demand than capacity."""
    return synthetic_trace(200_000, seed=1, cluster_gpus=1024, load=1.1)


def frontier(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Pareto frontier of (cost, jct): by cost, each point strictly faster than the cheaper."""
    best: list[tuple[float, float]] = []
    for cost, jct in sorted(points):
        if not best or jct < best[-1][1]:
            best.append((cost, jct))
    return best


def cost_at_jct(curve: list[tuple[float, float]], jct: float) -> float | None:
    """The frontier's cost at a mean JCT (linear between points); None outside its range."""
    jcts = [j for _, j in curve]
    if not curve or jct > max(jcts) or jct < min(jcts):
        return None
    ordered = sorted(curve, key=lambda p: p[1])
    return float(np.interp(jct, [j for _, j in ordered], [c for c, _ in ordered]))


def jct_at_cost(curve: list[tuple[float, float]], cost: float) -> float | None:
    costs = [c for c, _ in curve]
    if not curve or cost > max(costs) or cost < min(costs):
        return None
    return float(np.interp(cost, costs, [j for _, j in curve]))


def quality(
    policies: Sequence[str],
    sizes: Sequence[int],
    worlds: Sequence[str],
    estimate: EstimateMode,
    replays: Sequence[tuple[int | None, Sequence[TraceJob]]],
    out: Path | None,
) -> None:
    """Sweep each policy per world, size and replay; compare federator with the others."""
    rows: list[dict[str, object]] = []
    for label in worlds:
        path = POLICY_FILES[label]
        for size in sizes:
            ratios: dict[str, list[dict[float, float]]] = {}
            for jitter, trace in replays:
                if jitter is not None:
                    print(f"== {label}, {size} GPUs, replay with --jitter {jitter}")
                options = setup.WorldOptions(onprem_gpus=size, estimate=estimate)
                world = setup.load_world(path, trace, options)
                points = sweep(policies, world, trace, label, size, jitter, rows)
                curves = {name: [(c, j) for _, c, j in p] for name, p in points.items()}
                compare(label, size, curves)
                for other in ("starburst", "oracle"):
                    if "federator" in points and other in points:
                        per_knob = ratios_at_same_jct(points["federator"], points[other])
                        ratios.setdefault(other, []).append(per_knob)
            if len(replays) > 1:
                summarize_replays(label, size, ratios)
    if out is not None:
        out.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")


Point = tuple[float | None, float, float]  # knob, cloud cost $, mean JCT h


def sweep(
    policies: Sequence[str],
    world: setup.WorldSetup,
    trace: Sequence[TraceJob],
    label: str,
    size: int,
    jitter: int | None,
    rows: list[dict[str, object]],
) -> dict[str, list[Point]]:
    """Every policy's knob sweep on one trace; appends a JSON row per run to `rows`."""
    points: dict[str, list[Point]] = {}
    planners: runs.Planners = {}
    for spec in planned_runs(policies, world):
        result, wall, _ = timed_run(trace, world, spec, planners)
        s = result.summary
        rows.append(
            {
                "world": label,
                "onprem_gpus": size,
                "jitter_seed": jitter,
                "policy": spec.policy,
                "knob": spec.knob,
                "cloud_cost_usd": s.cloud_cost_usd,
                "mean_jct_s": s.mean_jct_s,
                "wall_s": wall,
            }
        )
        points.setdefault(spec.policy, []).append(
            (spec.knob, s.cloud_cost_usd, s.mean_jct_s / HOUR)
        )
        print(
            f"  {label:15s} {size} {spec.label:40s} ${s.cloud_cost_usd:10,.0f} "
            f"JCT {s.mean_jct_s / HOUR:6.3f} h  ({wall:.1f} s)",
            flush=True,
        )
    return points


# Knob grids that replace runs.SWEEPS for the bench (--grid), e.g. a finer Starburst grid.
GRIDS: dict[str, tuple[float, ...]] = {}


def planned_runs(policies: Sequence[str], world: setup.WorldSetup) -> list[runs.RunSpec]:
    """Each policy's sweep, on its --grid if one was given."""
    specs = []
    for spec in runs.plan_runs(policies, sweep=True, base=world.policy):
        if spec.policy not in GRIDS:
            specs.append(spec)
        elif spec.knob == runs.SWEEPS[spec.policy][0]:  # the grid's runs, once
            specs.extend(runs.RunSpec(spec.policy, knob) for knob in GRIDS[spec.policy])
    return specs


def grid(text: str) -> tuple[str, tuple[float, ...]]:
    """argparse type of --grid POLICY=K1,K2,...: a policy's knob values (finite, >= 0), sorted."""
    name, _, values = text.partition("=")
    if name not in runs.SWEEPS or not values:
        choices = sorted(runs.SWEEPS)
        raise argparse.ArgumentTypeError(f"{text!r}: write POLICY=K1,K2,... for one of {choices}")
    try:
        knobs = {float(value) for value in values.split(",")}
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: knob values must be numbers") from None
    if not all(0 <= knob < math.inf for knob in knobs):
        raise argparse.ArgumentTypeError(f"{text!r}: knob values must be finite and >= 0")
    return name, tuple(sorted(knobs))


def ratios_at_same_jct(ours: Sequence[Point], theirs: Sequence[Point]) -> dict[float, float]:
    """Each of our knobs' cost over the other frontier's cost at the same mean JCT (if inside)."""
    curve = frontier([(cost, jct) for _, cost, jct in theirs])
    ratios = {}
    for knob, cost, jct in ours:
        at_jct = cost_at_jct(curve, jct)
        if knob is not None and at_jct:
            ratios[knob] = cost / at_jct
    return ratios


# The targets for federator's cost at the same mean JCT.
TARGET_RATIO = {"starburst": 0.8, "oracle": 1.15}


def summarize_replays(label: str, size: int, ratios: dict[str, list[dict[float, float]]]) -> None:
    """Per knob, the spread of the cost ratio over the jittered replays (see traces.jittered)."""
    for other, per_replay in ratios.items():
        target = TARGET_RATIO[other]
        print(
            f"== {label}, {size} GPUs, {len(per_replay)} replays: federator's cost / {other}'s "
            f"at the same mean JCT"
        )
        knobs = sorted({knob for replay in per_replay for knob in replay})
        for knob in knobs:
            values = [replay[knob] for replay in per_replay if knob in replay]
            over = sum(value > target for value in values)
            print(
                f"   v={knob:<6g} mean {np.mean(values):5.3f}  min {min(values):5.3f}  "
                f"max {max(values):5.3f}  above {target:g}x in {over} of {len(values)}"
            )


def compare(label: str, size: int, curves: dict[str, list[tuple[float, float]]]) -> None:
    ours = frontier(curves.get("federator", []))
    for other in ("starburst", "oracle"):
        theirs = frontier(curves.get(other, []))
        if not ours or not theirs:
            continue
        print(f"== {label}, {size} GPUs: federator vs {other}")
        for cost, jct in ours:
            at_jct = cost_at_jct(theirs, jct)
            at_cost = jct_at_cost(theirs, cost)
            ratio = "-" if at_jct is None or at_jct <= 0 else f"{cost / at_jct:5.3f}x cost"
            delta = "-" if at_cost is None else f"{jct - at_cost:+.3f} h JCT"
            print(
                f"   federator ${cost:10,.0f} JCT {jct:6.3f} h   vs {other}: {ratio:>12s} "
                f"at same JCT, {delta:>14s} at same cost"
            )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quality", action="store_true", help="also sweep the policies (minutes)")
    parser.add_argument(
        "--policy",
        action="append",
        help="policies to sweep (default: starburst, federator, oracle)",
    )
    parser.add_argument(
        "--size", type=int, action="append", help="on-prem GPUs (default: 576 and 640)"
    )
    parser.add_argument(
        "--world",
        action="append",
        choices=sorted(POLICY_FILES),
        help="bench policy file(s) for --quality (default: both)",
    )
    parser.add_argument("--estimate", default="exact", help="runtime estimates (see simulate)")
    parser.add_argument(
        "--synthetic",
        type=int,
        metavar="JOBS",
        help="sweep a synthetic trace (seed 11, sized for --size) instead of A",
    )
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument(
        "--write-synthetic", type=Path, metavar="CSV", help="write the 200,000-job trace and stop"
    )
    parser.add_argument("--json", type=Path, help="write the quality rows here")
    parser.add_argument(
        "--jitter",
        type=int,
        action="append",
        metavar="SEED",
        help="also replay the trace with every submit time delayed by U[0, 1) s from this seed "
        "(repeatable; with two or more replays, prints the spread of the ratios per knob)",
    )
    parser.add_argument(
        "--grid",
        type=grid,
        action="append",
        default=[],
        metavar="POLICY=K1,K2,...",
        help="sweep POLICY over these knob values instead of its default grid (repeatable)",
    )
    args = parser.parse_args()
    if (args.grid or args.jitter) and not args.quality:
        parser.error("--grid and --jitter shape the --quality sweeps: add --quality")
    if len({name for name, _ in args.grid}) < len(args.grid):
        parser.error("--grid: one grid per policy (write all its values in one --grid)")
    GRIDS.update(args.grid)
    policies = args.policy or ["starburst", "federator", "oracle"]
    if unswept := sorted(set(GRIDS) - set(policies)):
        parser.error(f"--grid {unswept[0]}=...: add --policy {unswept[0]} to sweep it")
    if args.jitter and len(set(args.jitter)) < len(args.jitter):
        parser.error("--jitter: each seed once (a repeated seed is the same replay again)")
    if args.write_synthetic is not None:
        write_trace(args.write_synthetic, big_synthetic_trace())
        return 0
    if not args.skip_speed:
        speed()
    if args.quality:
        worlds = args.world or list(POLICY_FILES)
        sizes = args.size or [576, 640]
        trace = read_trace(TRACE_A)
        if args.synthetic:
            trace = synthetic_trace(args.synthetic, seed=11, cluster_gpus=sizes[0], load=0.9)
        estimate = EstimateMode.parse(args.estimate)
        replays: list[tuple[int | None, Sequence[TraceJob]]] = [(None, trace)]
        replays += [(seed, jittered(trace, seed)) for seed in args.jitter or []]
        quality(policies, sizes, worlds, estimate, replays, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
