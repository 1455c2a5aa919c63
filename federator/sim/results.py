"""One finished run's result (`RunResult`) and the invariants every run must hold before it is one.

`Simulation.run` (`federator.sim.engine`) returns a `RunResult` only once `check_invariants`
holds: every job finished exactly once, on-prem never over capacity, no cloud charge for a job
that never bursted, no job starting before its submission. Reports, the CLI and the bench
scripts read it.
"""

from __future__ import annotations

from dataclasses import dataclass

from federator.sim.metrics import JobOutcomes, Summary


@dataclass(frozen=True, slots=True)
class RunResult:
    """One finished run: its identity, per-job outcomes and summary figures."""

    policy: str
    knob: float | None
    knob_name: str
    onprem_gpus: int
    estimate: str
    seed: int
    outcomes: JobOutcomes
    summary: Summary
    decision_rounds: int
    decided_jobs: int
    max_onprem_gpus_used: int
    cloud_usd_by_pool: dict[str, float]  # the pools' own bills, kept apart from per-job charges
    # Which replay of the trace (`federator simulate --replays`): 0 is the trace as written,
    # k >= 1 is traces.jittered(trace, seed=k). The engine leaves it 0; the command sets it.
    replay: int = 0


def check_invariants(outcomes: JobOutcomes, max_onprem_used: int, onprem_gpus: int) -> None:
    """Each job finished exactly once; on-prem never over capacity; cost = sum of charges."""
    unfinished = [int(i) for i in (outcomes.finished_count != 1).nonzero()[0][:5]]
    if unfinished:
        raise AssertionError(f"jobs did not finish exactly once (first indexes: {unfinished})")
    if max_onprem_used > onprem_gpus:
        raise AssertionError(f"on-prem used {max_onprem_used} of {onprem_gpus} GPUs")
    if (outcomes.cost_usd[~outcomes.bursted] != 0).any():
        raise AssertionError("a job that never bursted was charged for the cloud")
    if (outcomes.start_s < outcomes.submit_s).any() or (outcomes.end_s < outcomes.start_s).any():
        raise AssertionError("a job started before its submission or ended before its start")
