"""Where along the mean-JCT range federator's frontier meets a cost target against another's.

    .venv/bin/python scripts/bench/frontier_gap.py RUNS.json [--against starburst] [--target 0.8]
        [--ours federator]

RUNS.json is a `simulate.py --quality --json` output (any worlds, sizes and `--jitter`
replays). For each replay both policies' points are reduced to their Pareto frontiers, and
federator's cost is divided by the other's at 41 mean JCTs evenly spaced over the range both
reach (linear between points, as `simulate.py` compares them). Printed per replay: at how
many of the 41 the ratio is at most the target, the worst ratio and where it is. Then per
world and size, over all replays: the mean ratio in each tenth of the range, from the
expensive end (lowest JCT) to the cheap end, with the mean JCT of that tenth; and the other
side of the target, federator's mean JCT minus the other's at 41 equal costs over the range of
cost both reach (below 0: federator is faster for the same money).

Why not per knob: a ratio per knob value depends on where that value happens to land and on
how densely the other policy's knob was swept near it (a sparse grid draws straight lines
across the bends of a curve). Equal-JCT points over the whole shared range, with both grids
dense, show where the curves really stand.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from compare_frontiers import Curve, Replay, curves  # siblings, on sys.path when run
from simulate import cost_at_jct, frontier, jct_at_cost

POINTS = 41
TENTHS = 10


def gaps(ours: Curve, theirs: Curve) -> list[tuple[float, float]]:
    """(mean JCT h, our cost / theirs) at POINTS JCTs across the shared range, cheapest
    JCT first; empty when the ranges do not overlap."""
    low = max(min(j for _, j in ours), min(j for _, j in theirs))
    high = min(max(j for _, j in ours), max(j for _, j in theirs))
    if high <= low:
        return []
    found = []
    for jct in np.linspace(low, high, POINTS):
        mine, other = cost_at_jct(ours, float(jct)), cost_at_jct(theirs, float(jct))
        if mine is not None and other is not None and other > 0:
            found.append((float(jct), mine / other))
    return found


def jct_differences(ours: Curve, theirs: Curve) -> list[float]:
    """Our mean JCT minus theirs (h) at POINTS costs across the range of cost both reach."""
    low = max(min(c for c, _ in ours), min(c for c, _ in theirs))
    high = min(max(c for c, _ in ours), max(c for c, _ in theirs))
    found = []
    for cost in np.linspace(low, high, POINTS) if high > low else []:
        mine, other = jct_at_cost(ours, float(cost)), jct_at_cost(theirs, float(cost))
        if mine is not None and other is not None:
            found.append(mine - other)
    return found


def describe_replay(replay: Replay, found: list[tuple[float, float]], target: float) -> str:
    """One replay's line: how many points meet the target, the worst, where the misses are."""
    met = [jct for jct, ratio in found if ratio <= target]
    missed = [jct for jct, ratio in found if ratio > target]
    worst_jct, worst = max(found, key=lambda point: point[1])
    which = "as written" if replay[2] is None else f"jitter {replay[2]}"
    where = f"; above it at {min(missed):.3f}-{max(missed):.3f} h" if missed else ""
    return (
        f"{replay[0]:>15s} {replay[1]:4d} GPUs, {which:>10}: <= {target}x at {len(met):2d} of "
        f"{len(found)} points, worst {worst:5.3f}x at {worst_jct:.3f} h{where}"
    )


def describe_tenths(found: list[list[tuple[float, float]]], target: float) -> list[str]:
    """Mean ratio and JCT per tenth of the range, over the replays (each has POINTS points)."""
    lines = []
    for tenth in range(TENTHS):
        lo, hi = tenth * (POINTS - 1) / TENTHS, (tenth + 1) * (POINTS - 1) / TENTHS
        cell = [p for one in found for i, p in enumerate(one) if lo <= i < hi or i == hi == 40]
        if not cell:
            continue
        ratios = [ratio for _, ratio in cell]
        lines.append(
            f"   tenth {tenth + 1:2d} (mean JCT {np.mean([j for j, _ in cell]):.3f} h): mean "
            f"{np.mean(ratios):5.3f}x, worst {max(ratios):5.3f}x, <= {target}x at "
            f"{sum(r <= target for r in ratios)} of {len(ratios)}"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", type=Path, help="simulate.py --quality --json output")
    parser.add_argument("--against", default="starburst", help="the other policy")
    parser.add_argument("--target", type=float, default=0.8, help="cost ratio to meet")
    parser.add_argument("--ours", default="federator", help="the policy measured (the oracle too)")
    args = parser.parse_args()
    runs = curves(args.runs)
    replays = sorted(
        {replay for replay, policy in runs if policy == args.ours},
        key=lambda r: (r[0], r[1], -1 if r[2] is None else r[2]),
    )
    every: dict[tuple[str, int], list[list[tuple[float, float]]]] = defaultdict(list)
    faster: dict[tuple[str, int], list[float]] = defaultdict(list)
    for replay in replays:
        ours, theirs = frontier(runs[replay, args.ours]), frontier(runs[replay, args.against])
        found = gaps(ours, theirs) if ours and theirs else []
        if not found:
            print(f"{replay}: no shared range of mean JCT with {args.against}")
            continue
        every[replay[:2]].append(found)
        faster[replay[:2]].extend(jct_differences(ours, theirs))
        print(describe_replay(replay, found, args.target))
    for (world, size), found in every.items():
        points = [ratio for one in found for _, ratio in one]
        met = sum(ratio <= args.target for ratio in points)
        print(
            f"== {world}, {size} GPUs, {len(found)} replays: {args.ours} <= {args.target}x "
            f"{args.against} at {met} of {len(points)} equal-JCT points "
            f"(tenths from the expensive end):"
        )
        print("\n".join(describe_tenths(found, args.target)))
        differences = faster[world, size]
        if differences:
            print(
                f"   at the same cost: {args.ours}'s mean JCT lower at "
                f"{sum(d < 0 for d in differences)} of {len(differences)} equal-cost points, by "
                f"{-max(differences):.3f} to {-min(differences):.3f} h"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
