"""What one simulated run measured: per-job outcomes, and the summary figures users compare.

Definitions (every table, JSON file and plot uses these):
* JCT = completion - submission; wait = first moment the job runs - submission (in the cloud
  that is after data transfer and startup latency, so a burst is never "free" in wait).
* slowdown = JCT / max(run time, 10 s) (bounded, so 1-second jobs do not dominate the mean).
* on-prem utilization = busy on-prem GPU-seconds inside [first submission, last submission]
  divided by GPUs x that window: the part of the trace where the workload arrives (the trace
  clock's origin does not matter). When every job arrives at once that window is empty, and
  the makespan [first submission, last completion] is used instead.
* cloud cost = sum of every bursted job's compute and data charges; the run checks it equals
  the per-job sum.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

from federator.core.models import GANG_SIZES

SLOWDOWN_FLOOR_S = 10.0

Floats = npt.NDArray[np.float64]


@dataclass(slots=True)
class JobOutcomes:
    """Per-job results of one run, as parallel arrays indexed like the trace."""

    submit_s: Floats
    duration_s: Floats
    gpus: Floats
    start_s: Floats  # first moment the job ran (nan until it did)
    end_s: Floats  # completion (nan until it finished)
    bursted: npt.NDArray[np.bool_]
    cost_usd: Floats
    data_usd: Floats
    cloud_gpu_s: Floats
    lost_gpu_s: Floats
    preemptions: npt.NDArray[np.int64]
    deadline_s: Floats  # nan when the job has none
    finished_count: npt.NDArray[np.int64]  # how many times each job finished (must be 1)
    pool: npt.NDArray[np.int64]  # index of the cloud pool in the scenario; -1 on-prem
    # The policy's first forecast of the job's on-prem start, and when it made it (nan: none).
    forecast_at_s: Floats
    forecast_start_s: Floats

    @classmethod
    def empty(cls, count: int) -> JobOutcomes:
        def nans() -> Floats:
            return np.full(count, math.nan)

        return cls(
            submit_s=nans(),
            duration_s=nans(),
            gpus=nans(),
            start_s=nans(),
            end_s=nans(),
            bursted=np.zeros(count, dtype=np.bool_),
            cost_usd=np.zeros(count),
            data_usd=np.zeros(count),
            cloud_gpu_s=np.zeros(count),
            lost_gpu_s=np.zeros(count),
            preemptions=np.zeros(count, dtype=np.int64),
            deadline_s=nans(),
            finished_count=np.zeros(count, dtype=np.int64),
            pool=np.full(count, -1, dtype=np.int64),
            forecast_at_s=nans(),
            forecast_start_s=nans(),
        )


@dataclass(frozen=True, slots=True)
class Summary:
    """The figures of one run; `to_json` adds the run's identity."""

    jobs: int
    cloud_cost_usd: float
    cloud_data_usd: float
    onprem_utilization: float
    mean_jct_s: float
    p50_jct_s: float
    p95_jct_s: float
    p99_jct_s: float
    mean_wait_s: float
    p95_wait_s: float
    mean_slowdown: float
    deadline_misses: int
    deadline_jobs: int
    bursted_jobs: int
    cloud_gpu_hours: float
    lost_gpu_hours: float
    preemptions: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def summarize(outcomes: JobOutcomes, onprem_gpus: int) -> Summary:
    """Reduce per-job outcomes to the summary figures (all jobs count)."""
    jct = outcomes.end_s - outcomes.submit_s
    wait = outcomes.start_s - outcomes.submit_s
    slowdown = jct / np.maximum(outcomes.duration_s, SLOWDOWN_FLOOR_S)
    has_deadline = ~np.isnan(outcomes.deadline_s)
    missed = has_deadline & (outcomes.end_s > np.where(has_deadline, outcomes.deadline_s, 0.0))
    return Summary(
        jobs=len(jct),
        cloud_cost_usd=float(outcomes.cost_usd.sum()),
        cloud_data_usd=float(outcomes.data_usd.sum()),
        onprem_utilization=onprem_utilization(outcomes, onprem_gpus),
        mean_jct_s=float(jct.mean()),
        p50_jct_s=float(np.percentile(jct, 50)),
        p95_jct_s=float(np.percentile(jct, 95)),
        p99_jct_s=float(np.percentile(jct, 99)),
        mean_wait_s=float(wait.mean()),
        p95_wait_s=float(np.percentile(wait, 95)),
        mean_slowdown=float(slowdown.mean()),
        deadline_misses=int(missed.sum()),
        deadline_jobs=int(has_deadline.sum()),
        bursted_jobs=int(outcomes.bursted.sum()),
        cloud_gpu_hours=float(outcomes.cloud_gpu_s.sum() / 3600.0),
        lost_gpu_hours=float(outcomes.lost_gpu_s.sum() / 3600.0),
        preemptions=int(outcomes.preemptions.sum()),
    )


def onprem_utilization(outcomes: JobOutcomes, onprem_gpus: int) -> float:
    """Busy on-prem GPU-seconds over GPUs x the utilization window (module docstring)."""
    if not len(outcomes.submit_s) or onprem_gpus <= 0:
        return 0.0
    first, last = float(outcomes.submit_s.min()), float(outcomes.submit_s.max())
    if last <= first:  # every job arrived at once: no arrival window, use the makespan
        last = float(outcomes.end_s.max())
    if last <= first:
        return 0.0
    busy = onprem_busy_gpu_seconds(outcomes, first, last)
    return busy / (onprem_gpus * (last - first))


def onprem_busy_gpu_seconds(outcomes: JobOutcomes, from_s: float, until_s: float) -> float:
    """GPU-seconds on-prem jobs ran inside [from_s, until_s]."""
    onprem = ~outcomes.bursted
    start = np.maximum(outcomes.start_s[onprem], from_s)
    end = np.minimum(outcomes.end_s[onprem], until_s)
    return float((np.maximum(end - start, 0.0) * outcomes.gpus[onprem]).sum())


@dataclass(frozen=True, slots=True)
class WaitForecast:
    """How the policy's first on-prem wait forecast compares with the real wait, for the jobs
    of one size that stayed on-prem after it (both waits from the moment of the forecast)."""

    gpus: str
    jobs: int
    forecast_mean_s: float
    real_mean_s: float

    @property
    def ratio(self) -> float:
        """Real over forecast wait (inf when only the real wait is above 0, nan when neither)."""
        if self.forecast_mean_s > 0:
            return self.real_mean_s / self.forecast_mean_s
        return math.nan if self.real_mean_s == 0 else math.inf


def wait_forecasts(outcomes: JobOutcomes) -> tuple[WaitForecast, ...]:
    """Per gang size, the stayed jobs' forecast and real waits; empty when none was forecast."""
    forecast = ~np.isnan(outcomes.forecast_start_s) & ~outcomes.bursted
    forecast &= ~np.isnan(outcomes.start_s)
    if not forecast.any():
        return ()
    rows = []
    for label, smallest, largest in GANG_SIZES:
        chosen = forecast & (outcomes.gpus >= smallest) & (outcomes.gpus <= largest)
        if not chosen.any():
            continue
        asked = outcomes.forecast_at_s[chosen]
        rows.append(
            WaitForecast(
                gpus=label,
                jobs=int(chosen.sum()),
                forecast_mean_s=float((outcomes.forecast_start_s[chosen] - asked).mean()),
                real_mean_s=float((outcomes.start_s[chosen] - asked).mean()),
            )
        )
    return tuple(rows)
