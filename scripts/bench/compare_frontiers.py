"""Two federator curves of the same replays, compared at the same mean JCT.

    .venv/bin/python scripts/bench/compare_frontiers.py BASE.json CANDIDATE.json

Both files are `simulate.py --quality --json` outputs of the same worlds, sizes and replays
(`--jitter`), one per code version or setting. For each replay, each file's federator points
are reduced to their Pareto frontier; the candidate's cost is divided by the base's at 41
mean JCTs evenly spaced over the range both frontiers reach (linear between points). Printed
per world, size and replay: the geometric mean of those ratios (below 1: the candidate is
cheaper at the same JCT) and each frontier's worst ratio against Starburst's frontier of the
base file, so a change that only slides points along the curve (a different knob reaching
the same JCT) shows as 1.0, not as a gain.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from simulate import cost_at_jct, frontier  # this script's sibling, on sys.path when run

Curve = list[tuple[float, float]]  # (cost $, mean JCT h)
Replay = tuple[str, int, int | None]  # world, on-prem GPUs, jitter seed (None: as written)
POINTS = 41


def curves(path: Path) -> dict[tuple[Replay, str], Curve]:
    """Each replay's points per policy, from one `--json` file."""
    found: dict[tuple[Replay, str], Curve] = defaultdict(list)
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:  # a wrong path or a file cut short: say which
        raise SystemExit(f"{path}: not a simulate.py --json file ({error})") from None
    for row in rows:
        replay = (row["world"], row["onprem_gpus"], row["jitter_seed"])
        found[replay, row["policy"]].append((row["cloud_cost_usd"], row["mean_jct_s"] / 3600))
    return found


def ratios(ours: Curve, theirs: Curve) -> list[float]:
    """Our frontier's cost over theirs at POINTS mean JCTs across the range both reach."""
    if not ours or not theirs:
        return []
    low = max(min(j for _, j in ours), min(j for _, j in theirs))
    high = min(max(j for _, j in ours), max(j for _, j in theirs))
    found = []
    for jct in np.linspace(low, high, POINTS) if high > low else []:
        mine, other = cost_at_jct(ours, float(jct)), cost_at_jct(theirs, float(jct))
        if mine is not None and other is not None and mine > 0 and other > 0:
            found.append(mine / other)
    return found


def geometric_mean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else math.nan


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("base", type=Path, help="simulate.py --json output: the reference")
    parser.add_argument("candidate", type=Path, help="the same replays with the change")
    args = parser.parse_args()
    base, candidate = curves(args.base), curves(args.candidate)
    replays = sorted(
        {replay for replay, policy in base if policy == "federator"},
        key=lambda r: (r[0], r[1], -1 if r[2] is None else r[2]),
    )
    every: dict[tuple[str, int], list[float]] = defaultdict(list)
    for replay in replays:
        old = frontier(base[replay, "federator"])
        new = frontier(candidate.get((replay, "federator"), []))
        starburst = frontier(base.get((replay, "starburst"), []))
        change = ratios(new, old)
        every[replay[:2]].extend(change)
        worst_old = max(ratios(old, starburst), default=math.nan)
        worst_new = max(ratios(new, starburst), default=math.nan)
        which = "as written" if replay[2] is None else str(replay[2])
        print(
            f"{replay[0]:>15s} {replay[1]:4d} GPUs, replay {which:>10}: "
            f"candidate/base {geometric_mean(change):5.3f}  worst vs Starburst "
            f"{worst_old:5.3f} -> {worst_new:5.3f}"
        )
    for (world, size), values in every.items():
        print(
            f"== {world}, {size} GPUs: candidate/base at the same mean JCT, geometric mean over "
            f"{len(values)} points: {geometric_mean(values):5.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
