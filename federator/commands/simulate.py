"""`federator simulate`: replay a GPU job trace against simulated on-prem and cloud capacity."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from federator import errors
from federator.commands.options import add_policy_file_option
from federator.commands.output import literal, new_console

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from federator.sim import runs, setup
    from federator.sim.results import RunResult
    from federator.sim.traces import TraceJob

DESCRIPTION = """\
Replay a job trace against a simulated on-prem Kueue cluster and the cloud pools of a policy
file, with federator's own decision core choosing what bursts, and compare burst policies by
their cloud bill and their job completion times (JCT).

The on-prem cluster admits jobs like Kueue's BestEffortFIFO (a job that does not fit lets
later ones that fit go first) and places each job as a gang on nodes of --gpus-per-node GPUs.
Cloud pools take their prices, preemption priors, startup latency and caps from the policy
file; --spot-trace and --spot-prices replay a recorded spot market instead. Policies see only
runtime estimates (--estimate), never the true run time, except the oracle.

Policies: never (on-prem only), always (cheapest on-demand as soon as a job cannot start),
greedy-spot (cheapest spot likewise), starburst (ATC'24 Compute-Wait, knob: waiting budget),
federator (the cost model, knob: value of waiting in $ per job-hour), oracle (clairvoyant
hindsight search: a heuristic reference, NOT a lower bound). --sweep runs each knob over its
grid; without it a run uses the policy file's values exactly as written (its value of waiting
per GPU-hour included). A queue's `burst: never`/`opt-in` and `burst_rules` apply by the
trace's queue column (the trace has no labels: opt-in queues never burst).

--replays N shows how much a comparison moves from one replay of the trace to the next: a
busy queue is chaotic, and delaying every submit time by under a second (which no policy
should care about) moves a policy's cost at a given mean JCT. Replay 0 is the trace as written,
replay k (1..N-1) the same jobs each submitted U[0, 1) s later, drawn from seed k.

Trace CSV columns: job_id,submit_time_s,num_gpus,duration_s and optionally queue,
deadline_s, gpu_type. A broken trace is reported row by row and nothing runs.

examples:
  federator simulate --config policy.yaml --trace trace.csv --onprem-gpus 576
  federator simulate --config policy.yaml --trace trace.csv --onprem-gpus 576 \\
      --policy starburst --policy federator --sweep --json runs.json --plot curves.png
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="replay a job trace and compare burst policies by cost and completion time",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_policy_file_option(parser, "the policy YAML (cloud pools, prices, decision knobs)")
    parser.add_argument(
        "--trace", required=True, type=Path, metavar="CSV", help="the job trace to replay"
    )
    parser.add_argument(
        "--onprem-gpus",
        type=int,
        action="append",
        metavar="N",
        help="on-prem GPUs (repeat to compare sizes); default: the trace's "
        "mean demand in whole nodes, at least its biggest job",
    )
    parser.add_argument(
        "--gpus-per-node",
        type=int,
        default=8,
        metavar="N",
        help="GPUs per on-prem node (default: 8)",
    )
    parser.add_argument(
        "--policy",
        action="append",
        metavar="NAME",
        dest="policies",
        help="never, always, greedy-spot, starburst, federator, oracle "
        "(repeat; default: all but oracle)",
    )
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="run each policy over its knob grid to draw its cost-JCT curve",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="random seed of the spot preemption draws and noisy estimates, the same in every "
        "replay (default: 0)",
    )
    parser.add_argument(
        "--replays",
        type=_replays,
        default=1,
        metavar="N",
        help="replay the trace N times, to see how much a comparison moves from one replay to "
        "the next (default: 1). Replay 0 is the trace as written; replay k (k = 1..N-1) is the "
        "same jobs, each submitted later by a uniform draw from [0, 1) s seeded with k "
        "(federator.sim.traces.jittered(trace, seed=k)). Every run is made once per replay, on "
        "the same on-prem size and --seed. With N > 1: a table per replay, then per on-prem "
        "size each run's mean and min-max cloud cost and mean JCT over the replays",
    )
    parser.add_argument(
        "--estimate",
        default="exact",
        metavar="MODE",
        help="runtime estimates the policies see: exact (the default), noisy:SIGMA "
        "(log-normal error; bare noisy is noisy:0.5), history[:DEFAULT_S] (per-queue mean "
        "of finished jobs; DEFAULT_S before the first, 3600 unless given)",
    )
    parser.add_argument(
        "--spot-trace",
        action="append",
        default=[],
        metavar="[POOL=]FILE",
        help="replay a spot availability trace (Can't Be Late JSON) for POOL "
        "(cluster/pool) or every spot pool",
    )
    parser.add_argument(
        "--spot-prices",
        action="append",
        default=[],
        metavar="[POOL=]FILE@ZONE",
        help="replay a DescribeSpotPriceHistory JSON for POOL or every spot pool",
    )
    parser.add_argument(
        "--dataset-gb",
        type=_gigabytes,
        default=0.0,
        metavar="GB",
        help="data each job must copy to the cloud before it runs (default: 0)",
    )
    parser.add_argument(
        "--output-gb",
        type=_gigabytes,
        default=0.0,
        metavar="GB",
        help="results each bursted job copies back, charged at the cluster's egress price "
        "(default: 0)",
    )
    parser.add_argument(
        "--decision-period",
        type=_period,
        metavar="SECONDS",
        help="seconds between decision rounds, 0 to decide at every event "
        "(default: the policy's burst.decision_interval)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        metavar="OUT",
        help="write the runs as a JSON list, one object per run per replay (key `replay`)",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="OUT.png",
        help="draw cost-versus-mean-JCT curves (the extension picks the format: .png, .pdf, "
        ".svg); with --replays N > 1 each replay's curve is thin and their mean bold",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from federator.sim import fits, report, runs, setup, traces
    from federator.sim.estimates import EstimateMode

    # Outputs are checked before anything runs, so a long sweep's results are never lost.
    if args.json:
        report.check_output(args.json, "--json")
    if args.plot:
        report.check_plot_output(args.plot)
    options = setup.WorldOptions(
        gpus_per_node=_positive(args.gpus_per_node, "--gpus-per-node", most=MAX_GPUS_PER_NODE),
        estimate=EstimateMode.parse(args.estimate),
        seed=args.seed,
        spot_traces={
            pool: _existing(text, "--spot-trace")
            for pool, text in _pool_files(args.spot_trace, "--spot-trace").items()
        },
        spot_prices={
            pool: _at_zone(text)
            for pool, text in _pool_files(args.spot_prices, "--spot-prices").items()
        },
        dataset_gb_per_job=args.dataset_gb,
        output_gb_per_job=args.output_gb,
        decision_period_s=args.decision_period,
    )
    _outputs_apart(args, options)
    sizes = [_positive(n, "--onprem-gpus", most=MAX_ONPREM_GPUS) for n in args.onprem_gpus or []]
    sizes = _once(sizes, "--onprem-gpus")
    sizes = sizes or [0]
    policies = _once(args.policies or [], "--policy")
    policies = policies or ["never", "always", "greedy-spot", "starburst", "federator"]
    trace = traces.read_trace(args.trace)
    replays = args.replays
    # Every world and run is checked before the first run: a later size that cannot run must
    # not throw away the results of the earlier ones.
    worlds = []
    for size in sizes:
        sized = dataclasses.replace(options, onprem_gpus=size or None)
        world = setup.load_world(args.config, trace, sized)
        planned = runs.plan_runs(policies, args.sweep, world.policy)
        for spec in planned:
            fits.check_fits(trace, world.scenario, spec.policy)
        worlds.append(world)
    for warning in (
        setup.unmatched_gpu_types(trace, worlds[0].scenario.pools),
        setup.refused_queues(trace, worlds[0].scenario),
    ):
        if warning:
            print(f"federator: warning: {args.trace}: {warning}", file=sys.stderr)
    console = new_console()
    if not console.is_terminal:
        console = new_console(width=170)  # piped output: do not squeeze the table to 80 columns
    rows: list[dict[str, Any]] = []  # the --json rows, made as each replay ends
    kept: list[RunResult] = []  # every run's figures, for the summary and the plot
    # Every replay runs in the world built from the trace as written: the same on-prem size
    # (its default is sized from the trace) for all, so replays differ only in submit times.
    for world in worlds:
        title = (  # a table's title is markup; the trace's file name is not ours
            f"{literal(args.trace.name)}: {len(trace):,} job{'s' if len(trace) != 1 else ''}, "
            f"on-prem {world.scenario.onprem_gpus} GPUs, "
            f"estimates {options.estimate.label()}, seed {args.seed}"
        )
        by_replay = []
        for replay, found in _simulate(console, args, trace, world, policies):
            report.print_results(console, found, title + _replay_title(replay, replays))
            rows.extend(report.to_json_rows(found))
            by_replay.append([_figures_only(result) for result in found])
            kept.extend(by_replay[-1])
        if replays > 1:
            report.print_replay_summary(console, by_replay, title)
    if "starburst" in policies:
        console.print(_starburst_mean_gpus(trace), highlight=False, soft_wrap=True)
    if args.json:
        report.write_json(args.json, rows)
    if args.plot:
        title = f"{args.trace.name}: cloud cost vs mean JCT"
        if replays > 1:
            title += f", {replays} replays"
        report.plot_curves(args.plot, kept, title)
    return 0


def _figures_only(result: RunResult) -> RunResult:
    """The run without its per-job outcomes (about 120 bytes a job), once its tables and JSON
    rows are made: with --replays the runs add up (trace A, 2 sizes, 32 runs, 11 replays: 1.8
    GB kept whole), and the summary and the plot need only the figures."""
    from federator.sim.metrics import JobOutcomes

    return dataclasses.replace(result, outcomes=JobOutcomes.empty(0))


def _replay_title(replay: int, replays: int) -> str:
    """What a per-replay table's title adds: nothing with a single replay (the output stays
    as it was before --replays), else which replay and how it was made."""
    if replays == 1:
        return ""
    if replay == 0:
        return f", replay 0 of {replays} (the trace as written)"
    return f", replay {replay} of {replays} (jitter seed {replay})"


def _simulate(
    console: Console,
    args: argparse.Namespace,
    trace: Sequence[TraceJob],
    world: setup.WorldSetup,
    policies: list[str],
) -> Iterator[tuple[int, list[RunResult]]]:
    """Every planned run for one world, once per replay: yields each replay's number and its
    results in the planned order as it ends, under one progress bar (jobs submitted so far,
    all replays). Replay k is jittered when its turn comes, and the caller keeps only the
    figures of the replays before it: one replay's trace and outcomes in memory at a time."""
    from rich.progress import MofNCompleteColumn, Progress, TimeElapsedColumn

    from federator.sim import runs, traces

    planned = runs.plan_runs(policies, args.sweep, world.policy)
    columns = (*Progress.get_default_columns()[:-1], MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        replays = args.replays
        task = progress.add_task("simulating", total=len(trace) * len(planned) * replays)
        for replay in range(replays):
            replayed = trace if replay == 0 else traces.jittered(trace, seed=replay)
            tick = _ticker(progress, task, replay if replays > 1 else None)
            results = runs.run_all(replayed, world.scenario, world.policy, planned, tick)
            yield replay, [dataclasses.replace(result, replay=replay) for result in results]


def _ticker(
    progress: Progress, task: TaskID, replay: int | None
) -> Callable[[runs.RunSpec, int], None]:
    """The progress callback of one replay's runs: it names the run (and the replay, if any)."""
    suffix = "" if replay is None else f", replay {replay}"

    def tick(spec: runs.RunSpec, jobs: int) -> None:
        progress.update(task, advance=jobs, description=spec.label + suffix)

    return tick


def _starburst_mean_gpus(trace: Sequence[TraceJob]) -> str:
    """The trace's figure a policy file's burst.starburst.runtime_weighted_mean_gpus wants
    (docs/configuration.md sends the reader here for it); the simulator's Starburst uses it."""
    from federator.core import starburst

    weighted = starburst.runtime_weighted_mean_gpus((job.gpus, job.duration_s) for job in trace)
    return (
        f"starburst: this trace's runtime-weighted mean GPUs (Σ GPUs x runtime / Σ runtime) is "
        f"{weighted:.2f}, so β = ρ / {weighted:.2f}; set it as "
        "burst.starburst.runtime_weighted_mean_gpus for the daemon"
    )


MAX_REPLAYS = 1000  # each replay is every run again: 1000 of trace A is hours per run


def _replays(text: str) -> int:
    """argparse type of --replays: a whole number from 1 to `MAX_REPLAYS`."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_REPLAYS:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number from 1 to {MAX_REPLAYS}")
    return value


_T = TypeVar("_T")


def _outputs_apart(args: argparse.Namespace, options: setup.WorldOptions) -> None:
    """Refuse an output path that is one of the inputs, or the other output: the run would
    overwrite the policy file or the trace (or write the JSON, then the plot over it)."""
    inputs = {"--config": args.config, "--trace": args.trace}
    for pool, path in options.spot_traces.items():
        inputs["--spot-trace" + ("" if pool == "*" else f" {pool}")] = path
    for pool, (path, _) in options.spot_prices.items():
        inputs["--spot-prices" + ("" if pool == "*" else f" {pool}")] = path
    outputs = [
        (flag, path) for flag, path in (("--json", args.json), ("--plot", args.plot)) if path
    ]
    for i, (flag, path) in enumerate(outputs):
        for other, taken in [*inputs.items(), *outputs[:i]]:
            if _same_file(path, taken):
                raise errors.UserError(
                    f"{flag} {path}: is also {other}'s file; the run would overwrite it, "
                    "give another path"
                )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def _once(values: list[_T], flag: str) -> list[_T]:
    """The values of a repeatable flag, refused if one is given twice: the same run twice
    would only repeat its figures (a simulation is deterministic) and cost its time again."""
    for i, value in enumerate(values):
        if value in values[:i]:
            raise errors.UserError(f"{flag} {value}: given twice; give each once")
    return values


# The simulated cluster holds a slot per GPU: a typo of ten digits must not fill the memory.
MAX_ONPREM_GPUS = 1_000_000
MAX_GPUS_PER_NODE = 64  # as a cloud pool's gpus_per_node in the policy file


def _positive(value: int, flag: str, most: int | None = None) -> int:
    if value < 1:
        raise errors.UserError(f"{flag} {value}: must be a whole number >= 1")
    if most is not None and value > most:
        raise errors.UserError(f"{flag} {value}: at most {most:,}")
    return value


# Data per job is turned into whole bytes; more than an exabyte per job is a typo.
MAX_GB_PER_JOB = 1e9


def _gigabytes(text: str) -> float:
    """argparse type of --dataset-gb / --output-gb: a finite number of GB >= 0."""
    value = _float(text)
    if not 0 <= value <= MAX_GB_PER_JOB:
        raise argparse.ArgumentTypeError(
            f"{text!r} must be a number of GB from 0 to {MAX_GB_PER_JOB:g}"
        )
    return value


# Below a millisecond the round grid stops being a grid (and overflows on a long trace).
MIN_DECISION_PERIOD_S = 1e-3
MAX_DECISION_PERIOD_S = 86400.0  # a round a day already leaves every queue alone for hours


def _period(text: str) -> float:
    """argparse type of --decision-period: 0 (every event) or a finite number of seconds."""
    value = _float(text)
    if not (value == 0 or MIN_DECISION_PERIOD_S <= value <= MAX_DECISION_PERIOD_S):
        raise argparse.ArgumentTypeError(
            f"{text!r} must be 0 (decide at every event) or a number of seconds from "
            f"{MIN_DECISION_PERIOD_S:g} to {MAX_DECISION_PERIOD_S:g} (a day)"
        )
    return value


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _pool_files(values: list[str], flag: str) -> dict[str, str]:
    """`[POOL=]VALUE` flags: by pool name, or "*" for every spot pool."""
    chosen: dict[str, str] = {}
    for value in values:
        pool, sep, rest = value.partition("=")
        key, text = (pool, rest) if sep else ("*", value)
        if not text or not key or key in chosen:  # "=FILE" names no pool
            raise errors.UserError(f"{flag} {value!r}: give [POOL=]FILE once per pool")
        chosen[key] = text
    return chosen


def _existing(text: str, flag: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise errors.UserError(f"{flag}: {path} is not a readable file")
    return path


def _at_zone(text: str) -> tuple[Path, str]:
    path, sep, zone = text.rpartition("@")
    if not sep or not zone or not path:
        raise errors.UserError(
            f"--spot-prices {text!r}: write FILE@ZONE, e.g. p3.2xlarge.json@us-east-1b"
        )
    return _existing(path, "--spot-prices"), zone
