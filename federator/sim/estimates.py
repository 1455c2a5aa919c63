"""Runtime estimators: what the policy is told about a job's run time, never the truth itself.

Every policy but the oracle decides on an estimate, as the daemon would. The estimator is
chosen per run so the same trace can be replayed with perfect estimates (the Starburst paper's
assumption), with a given relative error, or with what a per-queue history of finished jobs
would say. Noise is drawn per job from a stream seeded by (seed, job id), so two policies in
the same run see the same estimate for the same job.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass

from federator import errors
from federator.core.models import RuntimeSource
from federator.sim.traces import MAX_TIME_S, TraceJob

HISTORY_WINDOW = 200  # finished jobs a queue remembers; recent behaviour beats old behaviour


# A log-normal error of sigma 5 already puts one estimate in twenty off by a factor of e^10;
# far past it, exp() of a draw overflows (noisy:300 was a traceback).
MAX_NOISE_SIGMA = 5.0


@dataclass(frozen=True, slots=True)
class EstimateMode:
    """Parsed `--estimate`: `exact`, `noisy:SIGMA`, `history[:DEFAULT_S]` or `oracle`."""

    kind: str
    error: float = 0.0  # noisy: sigma of the log-normal multiplicative error
    default_s: float = 3600.0  # history: estimate before a queue has finished any job

    @classmethod
    def parse(cls, text: str) -> EstimateMode:
        kind, _, argument = text.partition(":")
        if kind in ("exact", "oracle") and not argument:
            return cls(kind)
        if kind == "noisy":
            return cls(kind, error=_noise_sigma(text, argument or "0.5"))
        if kind == "history":
            return cls(kind, default_s=_history_default(text, argument or "3600"))
        raise errors.UserError(
            f"--estimate {text!r}: use exact, noisy:SIGMA (e.g. noisy:0.5) or history[:DEFAULT_S]"
        )

    @property
    def source(self) -> RuntimeSource:
        return {
            "exact": RuntimeSource.ANNOTATION,
            "noisy": RuntimeSource.ANNOTATION,
            "history": RuntimeSource.HISTORY,
            "oracle": RuntimeSource.ORACLE,
        }[self.kind]

    def label(self) -> str:
        if self.kind == "noisy":
            return f"noisy:{self.error:g}"
        return self.kind


class RuntimeEstimator:
    """Estimates for jobs as they arrive; learns from finished jobs in `history` mode."""

    def __init__(self, mode: EstimateMode, seed: int) -> None:
        self.mode = mode
        self.seed = seed
        self._history: dict[str, deque[float]] = {}
        self._sums: dict[str, float] = {}

    def estimate(self, job: TraceJob) -> float:
        if self.mode.kind in ("exact", "oracle"):
            return job.duration_s
        if self.mode.kind == "noisy":
            rng = random.Random(f"{self.seed}:estimate:{job.job_id}")
            return job.duration_s * math.exp(rng.gauss(0.0, self.mode.error))
        window = self._history.get(job.queue)
        if not window:
            return self.mode.default_s
        return self._sums[job.queue] / len(window)

    def observe_finished(self, job: TraceJob) -> None:
        """A job finished; in history mode its true run time joins its queue's history."""
        if self.mode.kind != "history":
            return
        window = self._history.setdefault(job.queue, deque())
        window.append(job.duration_s)
        self._sums[job.queue] = self._sums.get(job.queue, 0.0) + job.duration_s
        if len(window) > HISTORY_WINDOW:
            self._sums[job.queue] -= window.popleft()


def _number(text: str, argument: str, what: str) -> float:
    try:
        value = float(argument)
    except ValueError:
        raise errors.UserError(f"--estimate {text!r}: {what} must be a number") from None
    if not math.isfinite(value):
        raise errors.UserError(f"--estimate {text!r}: {what} must be a finite number")
    return value


def _noise_sigma(text: str, argument: str) -> float:
    sigma = _number(text, argument, "SIGMA")
    if sigma < 0:
        raise errors.UserError(f"--estimate {text!r}: SIGMA must be 0 or more")
    if sigma > MAX_NOISE_SIGMA:
        raise errors.UserError(
            f"--estimate {text!r}: SIGMA is at most {MAX_NOISE_SIGMA:g} (the standard "
            "deviation of the log of the error: noisy:0.5 puts most estimates within a factor "
            "of 2.7 of the truth)"
        )
    return sigma


def _history_default(text: str, argument: str) -> float:
    default = _number(text, argument, "DEFAULT_S")
    if not 0 < default <= MAX_TIME_S:
        raise errors.UserError(
            f"--estimate {text!r}: DEFAULT_S (seconds assumed before a queue has a finished "
            f"job) must be above 0 and at most {MAX_TIME_S:,.0f}"
        )
    return default
