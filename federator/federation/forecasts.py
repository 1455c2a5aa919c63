"""How far the cost model's on-prem wait forecasts are from the waits jobs really get.

Every "stays on-prem: 45m expected wait …" decision is a forecast: the replay of the queue in
docs/cost-model.md §1, which does not foresee arrivals and, given Kueue's quota rather than
where jobs run, pools GPUs across nodes after now. On a busy cluster with Kueue's
BestEffortFIFO, small jobs keep taking freed GPUs before a gang finds room, and gangs wait much
longer than forecast (the simulator measured 3-5x on trace A when it pooled GPUs too).
Operators should see this on their own cluster, so the loop keeps each waiting job's first
forecast and, when the job starts on-prem, adds both waits to counters per gang size; the
rate of `federator_onprem_wait_real_seconds_total` over the rate of
`federator_onprem_wait_forecast_seconds_total` is how much longer jobs of that size waited.
Kept in memory: a restart forgets the forecasts still open (and restarts the counters). A
start is seen at the first pass after it, so a real wait is late by at most one interval. Only
the leader's passes count, so a sum over the replicas counts each start once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from federator import metrics
from federator.core.decisions import Decision, DecisionKind
from federator.core.models import gang_size
from federator.federation.ports import OnPremJob, OnPremView


@dataclass(frozen=True, slots=True)
class _Forecast:
    made_at: float
    wait_s: float
    size: str


class WaitForecasts:
    """First forecast per waiting job (by uid), settled into metrics when the job starts."""

    def __init__(self) -> None:
        self._open: dict[str, _Forecast] = {}

    def __len__(self) -> int:
        return len(self._open)

    def note(self, decisions: Iterable[Decision], jobs: Iterable[OnPremJob], now: float) -> None:
        """Keep the first finite stay forecast of every job decided this pass."""
        by_key = {job.key: job for job in jobs}
        for decision in decisions:
            job = by_key.get(decision.job_key)
            if job is None or decision.kind is not DecisionKind.STAY or job.uid in self._open:
                continue
            if math.isfinite(decision.expected_wait_s):
                self._open[job.uid] = _Forecast(now, decision.expected_wait_s, gang_size(job.gpus))

    def settle(self, onprem: OnPremView, now: float, *, counting: bool = True) -> None:
        """Count the jobs that started on-prem since their forecast; forget the others.

        Only the leader counts (`counting`), as with decisions and spend: every replica
        forecasts, and counting on each would double the sums across replicas. A follower
        still settles, so that when it leads it counts only the starts from then on.
        """
        known = {job.uid: job for job in onprem.jobs}
        for uid in list(self._open):
            job = known.get(uid)
            if job is not None and job.waiting and job.record is None:
                continue  # still waiting on-prem
            forecast = self._open.pop(uid)
            # Out of the view (which holds the waiting jobs, those with a record and those that
            # keep lost copies) or in it neither waiting nor placed, but still on-prem: it
            # started here. With a record it went to the cloud (its wait is not the queue's any
            # more); gone from the cluster, it was deleted.
            started = job is None or (job.record is None and not job.waiting)
            if counting and started and uid in onprem.source_uids:
                size = forecast.size
                metrics.ONPREM_WAIT_FORECASTS.labels(gpus=size).inc()
                metrics.ONPREM_WAIT_FORECAST_SECONDS.labels(gpus=size).inc(forecast.wait_s)
                real = max(0.0, now - forecast.made_at)
                metrics.ONPREM_WAIT_REAL_SECONDS.labels(gpus=size).inc(real)
