"""Which runs a `federator simulate` invocation makes: policies, their knobs, their sweeps.

Each policy has one main knob, the one a person would turn to trade cloud dollars for waiting:

| policy | knob | meaning |
|---|---|---|
| never, always, greedy-spot | - | no knob: one point each |
| starburst | waiting budget ρ | Σ timeouts = ρ × Σ runtimes (Compute-Wait, β solved exactly) |
| federator | value of waiting, $ per job-hour | what one hour of a job's waiting is worth |
| oracle | value of waiting, $ per job-hour | the same price of time, decided in hindsight |

The sweeps price waiting per job-hour (and set every per-GPU-hour value, the queues' own
included, to 0, and drop priority multipliers) because the curves are drawn against the *mean*
JCT, where every job counts once whatever its size. Without `--sweep`, federator and the oracle
run with the policy file's values exactly as written, and report no knob.

Sweep grids are geometric and wide on purpose (they span "almost never bursts" to "bursts
nearly everything" on any cluster); they are not fitted to a trace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import partial

from federator import errors
from federator.core import starburst
from federator.core.policy import DecisionPolicy, Strategy
from federator.sim.controllers import Controller
from federator.sim.engine import Simulation
from federator.sim.oracle import HindsightPlanner, OracleController
from federator.sim.policies import CoreController
from federator.sim.results import RunResult
from federator.sim.scenarios import Scenario
from federator.sim.traces import TraceJob

POLICIES = ("never", "always", "greedy-spot", "starburst", "federator", "oracle")

KNOB_NAMES = {
    "starburst": "waiting_budget",
    "federator": "value_usd_per_job_hour",
    "oracle": "value_usd_per_job_hour",
}

# Starburst's cost changes fastest near ρ=0: on trace A at 576 GPUs it falls from $133k at 0 to
# $107k at 0.001, $81k at 0.01 and $62k at 0.03. With no point between 0 and 0.03 a straight
# line across those bends made Starburst look a third dearer than it is at the lowest mean JCTs
# (federator's v=1000 read 0.71x its cost, and is 0.95x; docs/benchmarks.md, "Starburst's grid
# near ρ=0"). Its runs are the cheapest of the sweep, so the grid is dense where it bends.
SWEEPS: dict[str, tuple[float, ...]] = {
    "starburst": (
        *(0.0, 0.001, 0.002, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1),
        *(0.15, 0.25, 0.5, 0.75, 1.0, 2.0, 4.0, 8.0, 16.0),
    ),
    "federator": (0.1, 0.3, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 300.0, 1000.0),
    "oracle": (0.1, 0.3, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 300.0, 1000.0),
}


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One run to make: a policy at one knob value."""

    policy: str
    knob: float | None

    @property
    def label(self) -> str:
        if self.knob is None:
            return self.policy
        return f"{self.policy} {KNOB_NAMES[self.policy]}={self.knob:g}"


def plan_runs(policies: Sequence[str], sweep: bool, base: DecisionPolicy) -> list[RunSpec]:
    """The runs for the chosen policies: the config's knob, or each policy's sweep grid."""
    unknown = [name for name in policies if name not in POLICIES]
    if unknown:
        raise errors.UserError(
            f"--policy {unknown[0]}: unknown policy; choose from {', '.join(POLICIES)}"
        )
    runs: list[RunSpec] = []
    for name in policies:
        if name not in KNOB_NAMES:
            runs.append(RunSpec(name, None))
        elif sweep:
            runs.extend(RunSpec(name, knob) for knob in SWEEPS[name])
        else:
            runs.append(RunSpec(name, configured_knob(name, base)))
    return runs


def configured_knob(policy: str, base: DecisionPolicy) -> float | None:
    """The knob as the policy file sets it (None: federator and the oracle run with the file's
    values of waiting as written, which no single knob describes)."""
    if policy == "starburst":
        return base.starburst_waiting_budget
    return None


def decision_policy(
    spec: RunSpec, base: DecisionPolicy, trace: Sequence[TraceJob]
) -> DecisionPolicy:
    """The policy file's decision policy, switched to the run's strategy and knob.

    For Starburst, Σ(g·r)/Σr is computed from the trace, as the paper solves β over the
    whole workload.
    """
    if spec.policy == "starburst":
        weighted = starburst.runtime_weighted_mean_gpus((job.gpus, job.duration_s) for job in trace)
        return replace(
            base,
            strategy=Strategy.STARBURST,
            starburst_waiting_budget=spec.knob if spec.knob is not None else 0.25,
            starburst_runtime_weighted_mean_gpus=weighted,
        )
    if spec.policy in ("federator", "oracle"):
        federator = replace(base, strategy=Strategy.FEDERATOR)
        return federator if spec.knob is None else per_job_value(federator, spec.knob)
    return replace(base, strategy=Strategy(spec.policy))


def per_job_value(policy: DecisionPolicy, usd_per_job_hour: float) -> DecisionPolicy:
    """Every job's hour of waiting worth `usd_per_job_hour`, whatever its size, queue or
    priority: no per-GPU-hour value is left (a queue's own would outweigh the knob) and no
    priority multiplier (every simulated job has priority 0, so one would only rescale it)."""
    return replace(
        policy,
        value_of_time_usd_per_gpu_hour=0.0,
        value_of_time_usd_per_job_hour=usd_per_job_hour,
        queue_value_of_time_usd_per_gpu_hour={},
        priority_value_multipliers=(),
    )


def scaled_values(policy: DecisionPolicy, factor: float) -> DecisionPolicy:
    """The policy with every value of waiting times `factor` (1: as written): the oracle's
    path towards the policy file's own values."""
    return replace(
        policy,
        value_of_time_usd_per_gpu_hour=policy.value_of_time_usd_per_gpu_hour * factor,
        value_of_time_usd_per_job_hour=policy.value_of_time_usd_per_job_hour * factor,
        queue_value_of_time_usd_per_gpu_hour={
            queue: value * factor
            for queue, value in policy.queue_value_of_time_usd_per_gpu_hour.items()
        },
    )


# One planner per (trace, scenario, swept or as written): it caches its path of plans. Keyed by
# id() because traces are lists; an id is never reused while the dict holds its planner, since
# each planner keeps its trace and scenario alive (`HindsightPlanner.trace`, `.scenario`).
Planners = dict[tuple[int, int, bool], HindsightPlanner]


def controller_for(
    spec: RunSpec,
    base: DecisionPolicy,
    trace: Sequence[TraceJob],
    scenario: Scenario,
    planners: Planners | None = None,
) -> Controller:
    """The controller for one run; oracle runs over one world share a planner (its cache)."""
    policy = decision_policy(spec, base, trace)
    knob_name = KNOB_NAMES.get(spec.policy, "") if spec.knob is not None else ""
    if spec.policy == "oracle":
        return _oracle(spec, base, trace, scenario, {} if planners is None else planners)
    return CoreController(spec.policy, policy, knob=spec.knob, knob_name=knob_name)


def _oracle(
    spec: RunSpec,
    base: DecisionPolicy,
    trace: Sequence[TraceJob],
    scenario: Scenario,
    planners: Planners,
) -> OracleController:
    """A swept oracle plans at the knob's $ per job-hour; one without a knob plans with the
    policy file's values as written (scale 1 on its path)."""
    swept = spec.knob is not None
    key = (id(trace), id(scenario), swept)
    if key not in planners:
        federator = replace(base, strategy=Strategy.FEDERATOR)
        if swept:
            planners[key] = HindsightPlanner(trace, scenario, partial(per_job_value, federator))
        else:
            planners[key] = HindsightPlanner(trace, scenario, partial(scaled_values, federator))
    if spec.knob is None:
        return OracleController(planners[key], at=1.0, knob=None, knob_name="")
    return OracleController(
        planners[key], at=spec.knob, knob=spec.knob, knob_name=KNOB_NAMES["oracle"]
    )


def run_all(
    trace: Sequence[TraceJob],
    scenario: Scenario,
    base: DecisionPolicy,
    runs: Sequence[RunSpec],
    progress: Callable[[RunSpec, int], None] | None = None,
) -> Iterator[RunResult]:
    """Run each spec in turn; `progress(spec, jobs)` is told how many jobs were submitted."""
    planners: Planners = {}
    for spec in runs:
        controller = controller_for(spec, base, trace, scenario, planners)
        tick = None if progress is None else _bind(progress, spec)
        yield Simulation(trace, scenario, controller, progress=tick).run()


def _bind(progress: Callable[[RunSpec, int], None], spec: RunSpec) -> Callable[[int], None]:
    def tick(jobs: int) -> None:
        progress(spec, jobs)

    return tick
