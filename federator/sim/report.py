"""Showing simulation results: a table per run, a JSON file, and cost-versus-JCT curves.

The JSON rows are flat objects (one per run; only `wait_forecast` is a list, of one object
per gang size) so they load straight into pandas or jq; the keys the issue promises (`policy,
knob, cloud_cost_usd, mean_jct_s, p95_jct_s, mean_wait_s, deadline_misses, bursted_jobs,
onprem_utilization`) are always present, and `replay` (0: the trace as written, k: its
submit times jittered from seed k; `federator simulate --replays`).

With several replays, each run (policy + knob) is also summed up over them: the mean and the
min-max of its cloud cost and mean JCT (`replay_spreads`), in a table and on the plot.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rich.console import Console
from rich.table import Table

from federator import errors, jsonsafe
from federator.core.models import GANG_SIZES
from federator.core.reasons import duration
from federator.sim.metrics import wait_forecasts
from federator.sim.results import RunResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes

HOUR = 3600.0

_ORACLE_NOTE = (
    "oracle = clairvoyant heuristic (hindsight search with true run times and future arrivals; "
    "spot preemptions priced at their mean, not foreseen); it is NOT a lower bound."
)


def to_json_rows(results: Sequence[RunResult]) -> list[dict[str, Any]]:
    rows = []
    for result in results:
        row: dict[str, Any] = {
            "policy": result.policy,
            "knob": result.knob,
            "knob_name": result.knob_name,
            "onprem_gpus": result.onprem_gpus,
            "estimate": result.estimate,
            "seed": result.seed,
            "replay": result.replay,
            "decision_rounds": result.decision_rounds,
            "decided_jobs": result.decided_jobs,
        }
        row.update(result.summary.as_dict())
        row["wait_forecast"] = [
            {
                "gpus": forecast.gpus,
                "jobs": forecast.jobs,
                "forecast_mean_wait_s": forecast.forecast_mean_s,
                "real_mean_wait_s": forecast.real_mean_s,
            }
            for forecast in wait_forecasts(result.outcomes)
        ]
        if result.policy == "oracle":
            row["note"] = _ORACLE_NOTE
        rows.append(row)
    return rows


def check_output(path: Path, flag: str) -> None:
    """Refuse, before any run, an output file that could not be written after the runs.

    The file is opened (or created and removed again), so a missing or read-only directory
    and a path that is a directory are found while nothing has been computed yet.
    """
    if path.is_dir():
        raise errors.UserError(f"{flag} {path}: is a directory; give the file to write")
    if path.parent.exists() and not path.parent.is_dir():
        raise errors.UserError(f"{flag} {path}: {path.parent} is a file, not a directory")
    if not path.parent.is_dir():
        raise errors.UserError(f"{flag} {path}: directory {path.parent} does not exist")
    try:
        if path.exists():
            with path.open("r+b"):
                pass
        else:
            with path.open("xb"):
                pass
            path.unlink()
    except OSError as error:
        raise errors.UserError(
            f"{flag} {path}: cannot write this file: {error.strerror}"
        ) from error


def plot_formats() -> tuple[str, ...]:
    """The file extensions `plot_curves` can write (matplotlib's, e.g. png, pdf, svg).

    Not pgf: matplotlib writes it only where a LaTeX system is installed.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    return tuple(sorted(set(FigureCanvasAgg.get_supported_filetypes()) - {"pgf"}))


def check_plot_output(path: Path) -> None:
    """`--plot`: a writable file whose extension names a format matplotlib can write."""
    if path.is_dir():  # matplotlib would quietly write DIR.png beside it
        raise errors.UserError(f"--plot {path}: is a directory; give the file to write")
    formats = plot_formats()
    extension = path.suffix.lower().removeprefix(".")
    if extension not in formats:
        found = f"extension .{extension}" if extension else "no extension"
        raise errors.UserError(
            f"--plot {path}: {found}; the file's extension chooses the format, one of "
            f"{', '.join('.' + name for name in formats)}"
        )
    check_output(path, "--plot")


def write_json(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write `to_json_rows` output (the CLI makes each replay's rows as it ends)."""
    # Strict JSON: a figure that is not finite (a run with no job to average) is null.
    text = jsonsafe.dumps(list(rows))
    try:
        path.write_text(text + "\n", encoding="utf-8")
    except OSError as error:
        raise errors.UserError(f"--json {path}: cannot write: {error.strerror}") from error


def _runs_table(title: str, *headers: str) -> Table:
    """A table of runs: the policy column left, every figure right-aligned."""
    table = Table(title=title, title_justify="left")
    for header in headers:
        table.add_column(header, justify="left" if header == "policy" else "right")
    return table


def results_table(results: Sequence[RunResult], title: str) -> Table:
    table = _runs_table(
        title,
        "policy",
        "knob",
        "cloud $",
        "on-prem util",
        "mean JCT",
        "p50",
        "p95",
        "p99",
        "mean wait",
        "p95 wait",
        "slowdown",
        "deadline miss",
        "bursted",
        "cloud GPU-h",
        "preempt",
    )
    for result in results:
        s = result.summary
        table.add_row(
            result.policy,
            "-" if result.knob is None else f"{result.knob:g}",
            _amount(s.cloud_cost_usd),
            f"{s.onprem_utilization:.1%}",
            _hours(s.mean_jct_s),
            _hours(s.p50_jct_s),
            _hours(s.p95_jct_s),
            _hours(s.p99_jct_s),
            _hours(s.mean_wait_s),
            _hours(s.p95_wait_s),
            f"{s.mean_slowdown:.2f}",
            f"{s.deadline_misses}/{s.deadline_jobs}" if s.deadline_jobs else "-",
            f"{s.bursted_jobs:,}",
            _amount(s.cloud_gpu_hours),
            f"{s.preemptions:,}",
        )
    return table


def _amount(value: float) -> str:
    """Whole units from 100 on; below, cents (a $0.40 run must not read as free)."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"


def forecasts_table(results: Sequence[RunResult]) -> Table | None:
    """Per run that forecasts on-prem starts, its mean forecast and real wait by gang size."""
    rows = [(result, wait_forecasts(result.outcomes)) for result in results]
    rows = [(result, forecasts) for result, forecasts in rows if forecasts]
    if not rows:
        return None
    table = Table(
        title="On-prem wait: first forecast -> real wait (jobs), for the jobs that then stayed",
        title_justify="left",
    )
    table.add_column("policy")
    table.add_column("knob", justify="right")
    for label, _, _ in GANG_SIZES:
        table.add_column(f"{label} GPU" + ("" if label == "1" else "s"), justify="right")
    for result, forecasts in rows:
        by_size = {forecast.gpus: forecast for forecast in forecasts}
        cells = [
            "-"
            if (forecast := by_size.get(label)) is None
            else f"{duration(forecast.forecast_mean_s)} -> {duration(forecast.real_mean_s)}"
            f" ({forecast.jobs:,})"
            for label, _, _ in GANG_SIZES
        ]
        knob = "-" if result.knob is None else f"{result.knob:g}"
        table.add_row(result.policy, knob, *cells)
    return table


def print_results(console: Console, results: Sequence[RunResult], title: str) -> None:
    console.print(results_table(results, title))
    console.print("JCT and waits in hours; knobs: " + _knob_legend(results))
    if any(result.policy == "oracle" for result in results):
        console.print(_ORACLE_NOTE)
    forecasts = forecasts_table(results)
    if forecasts is not None:
        console.print(forecasts)
        console.print(
            "The forecast is the cost model's replay of the queue (docs/cost-model.md §1): it"
            " does not foresee arrivals; in the simulator it follows each node's GPUs."
        )


@dataclass(frozen=True, slots=True)
class ReplaySpread:
    """One run (policy + knob) over the replays of a trace: its cloud cost and mean JCT, as
    the mean over the replays and the least and most of any replay."""

    policy: str
    knob: float | None
    replays: int
    cost_mean_usd: float
    cost_min_usd: float
    cost_max_usd: float
    jct_mean_s: float
    jct_min_s: float
    jct_max_s: float


def replay_spreads(by_replay: Sequence[Sequence[RunResult]]) -> list[ReplaySpread]:
    """Per run, its figures over the replays: `by_replay[k][i]` is run i of replay k (every
    replay makes the same runs in the same order, so a run is its position, not its name)."""
    return [_spread_of(same_run) for same_run in zip(*by_replay, strict=True)]


def _spread_of(same_run: Sequence[RunResult]) -> ReplaySpread:
    costs = [result.summary.cloud_cost_usd for result in same_run]
    jcts = [result.summary.mean_jct_s for result in same_run]
    return ReplaySpread(
        policy=same_run[0].policy,
        knob=same_run[0].knob,
        replays=len(same_run),
        cost_mean_usd=statistics.fmean(costs),
        cost_min_usd=min(costs),
        cost_max_usd=max(costs),
        jct_mean_s=statistics.fmean(jcts),
        jct_min_s=min(jcts),
        jct_max_s=max(jcts),
    )


def replay_summary_table(by_replay: Sequence[Sequence[RunResult]], title: str) -> Table:
    table = _runs_table(
        title,
        "policy",
        "knob",
        "cloud $ mean",
        "cloud $ min–max",
        "mean JCT mean",
        "mean JCT min–max",
        "replays",
    )
    for spread in replay_spreads(by_replay):
        table.add_row(
            spread.policy,
            "-" if spread.knob is None else f"{spread.knob:g}",
            _amount(spread.cost_mean_usd),
            f"{_amount(spread.cost_min_usd)}–{_amount(spread.cost_max_usd)}",
            _fine_hours(spread.jct_mean_s),
            f"{_fine_hours(spread.jct_min_s)}–{_fine_hours(spread.jct_max_s)}",
            f"{spread.replays}",
        )
    return table


def print_replay_summary(
    console: Console, by_replay: Sequence[Sequence[RunResult]], title: str
) -> None:
    """After the per-replay tables of one on-prem size: each run over all its replays."""
    replays = len(by_replay)
    console.print(replay_summary_table(by_replay, f"{title}: over {replays} replays"))
    jittered = "1 delays" if replays == 2 else f"1..{replays - 1} delay"
    console.print(
        f"Mean and min–max over the {replays} replays: 0 is the trace as written, {jittered}"
        " each submit time by U[0, 1) s seeded by the replay's number. Runs whose ranges"
        " overlap are not told apart by this trace.",
        highlight=False,
    )


def _knob_legend(results: Sequence[RunResult]) -> str:
    names = sorted({f"{r.policy}: {r.knob_name}" for r in results if r.knob_name})
    return "; ".join(names) or "none"


def _hours(seconds: float) -> str:
    return f"{seconds / HOUR:.2f}h"


def _fine_hours(seconds: float) -> str:
    """Hours to the 3.6 s: replays of one run differ by a few hundredths of an hour of mean JCT,
    which two decimals would show as one figure."""
    return f"{seconds / HOUR:.3f}h"


_STYLES = {
    "never": ("black", "s"),
    "always": ("tab:red", "v"),
    "greedy-spot": ("tab:orange", "^"),
    "starburst": ("tab:blue", "o"),
    "federator": ("tab:green", "D"),
    "oracle": ("tab:purple", "x"),
}


def plot_curves(path: Path, results: Sequence[RunResult], title: str) -> None:
    """Cost (x) versus mean JCT (y), one curve per policy and on-prem size, sorted by cost.

    With several replays (`RunResult.replay`), each replay's curve is drawn thin and faint and
    the mean over the replays bold, in the policy's colour, named once in the legend.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 6), dpi=120)
    groups: dict[tuple[str, int], list[RunResult]] = {}
    for result in results:
        groups.setdefault((result.policy, result.onprem_gpus), []).append(result)
    sizes = sorted({size for _, size in groups})
    replays = sorted({result.replay for result in results})
    paid = [r.summary.cloud_cost_usd for r in results if r.summary.cloud_cost_usd > 0]
    floor = min(paid) / 2 if paid else 1.0  # where $0 runs are drawn on the log axis
    for (policy, size), runs in sorted(groups.items()):
        color, marker = _STYLES.get(policy, ("gray", "."))
        label = policy if len(sizes) == 1 else f"{policy} ({size} GPUs)"
        style = "-" if sizes.index(size) == 0 else "--"
        if len(replays) == 1:
            _draw_curve(axes, _points(runs), floor, label, color=color, marker=marker, style=style)
            continue
        # Each replay faint and unlabelled (the policy is in the legend once, with its mean).
        for replay in replays:
            points = _points([r for r in runs if r.replay == replay])
            _draw_curve(axes, points, floor, "_nolegend_", color=color, style=style, weight="faint")
        mean = _mean_points(runs)
        _draw_curve(
            axes, mean, floor, label, color=color, marker=marker, style=style, weight="bold"
        )
    if len(replays) > 1:  # a legend entry of its own says what thin and bold lines are
        linewidth, alpha = _LINE_WEIGHTS["faint"]
        key = f"thin: each of {len(replays)} replays; bold: their mean"
        axes.plot([], [], color="gray", linewidth=linewidth, alpha=alpha, label=key)
    axes.set_xscale("log")
    axes.set_xlabel("cloud cost (USD, log scale; runs with no cloud cost at the left edge)")
    axes.set_ylabel("mean job completion time (hours)")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    if any(policy == "oracle" for policy, _ in groups):
        figure.text(0.01, 0.01, "oracle: clairvoyant heuristic, not a lower bound", fontsize=8)
    figure.tight_layout()
    try:
        figure.savefig(path)
    except OSError as error:
        raise errors.UserError(f"--plot {path}: cannot write: {error.strerror}") from error
    except ValueError as error:  # an unknown format (refused before the runs by check_plot_output)
        raise errors.UserError(f"--plot {path}: cannot write: {error}") from error
    finally:
        plt.close(figure)


Points = list[tuple[float, float]]  # (cloud cost in $, mean JCT in hours), one per run
Weight = Literal["normal", "faint", "bold"]


def _points(runs: Sequence[RunResult]) -> Points:
    return [(r.summary.cloud_cost_usd, r.summary.mean_jct_s / HOUR) for r in runs]


def _mean_points(runs: Sequence[RunResult]) -> Points:
    """Per knob, the mean cost and the mean of the mean JCT over the replays."""
    by_knob: dict[float | None, list[RunResult]] = {}
    for result in runs:
        by_knob.setdefault(result.knob, []).append(result)
    return [
        (
            statistics.fmean(r.summary.cloud_cost_usd for r in same_knob),
            statistics.fmean(r.summary.mean_jct_s / HOUR for r in same_knob),
        )
        for same_knob in by_knob.values()
    ]


def _draw_curve(
    axes: Axes,
    points: Points,
    floor: float,
    label: str,
    *,
    color: str,
    style: str,
    marker: str | None = None,
    weight: Weight = "normal",
) -> None:
    """One policy's points sorted by cost (a stable sort: runs of equal cost keep their
    order); a policy that never paid the cloud is a dotted line at its mean JCT (it has no
    cost to place it on the log axis). `weight`: normal (one replay), faint (each of several
    replays) or bold (their mean)."""
    points = sorted(points, key=lambda point: point[0])
    linewidth, alpha = _LINE_WEIGHTS[weight]
    if all(cost <= 0 for cost, _ in points):
        no_cloud = label if weight == "faint" else f"{label}: no cloud"
        axes.axhline(
            points[0][1],
            color=color,
            linestyle=":",
            label=no_cloud,
            linewidth=linewidth,
            alpha=alpha,
        )
        return
    axes.plot(
        [max(cost, floor) for cost, _ in points],
        [jct for _, jct in points],
        marker=marker,
        color=color,
        linestyle=style,
        label=label,
        linewidth=linewidth,
        alpha=alpha,
    )


# (linewidth, alpha); None is matplotlib's own, as the plot was before --replays.
_LINE_WEIGHTS: dict[Weight, tuple[float | None, float | None]] = {
    "normal": (None, None),
    "faint": (0.8, 0.35),
    "bold": (2.5, None),
}
