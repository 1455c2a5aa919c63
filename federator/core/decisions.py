"""What a decision round answers: per job stay, burst or hold, with its numbers and its reason.

These are values: the daemon acts on them and logs them, the simulator replays them, `federator
plan` prints them. A decision carries every term the model priced (`terms`) so that nobody has
to recompute why it was taken, and one human line (`reason`) that says it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from federator.core.models import CapacityType


class DecisionKind(StrEnum):
    STAY = "stay"  # leave the job in the on-prem queue
    BURST = "burst"  # run it in `cluster`/`pool` now
    # Federator means to burst it to `cluster`/`pool` once something clears (its data is
    # replicated, budget frees up); it stays queued on-prem meanwhile and may still start there.
    HOLD = "hold"


@dataclass(frozen=True, slots=True)
class Decision:
    """One job's decision. Durations are seconds from the round's `now`."""

    job_key: str
    kind: DecisionKind
    cluster: str | None
    pool: str | None
    expected_cost_usd: float  # what the chosen option is expected to bill
    expected_wait_s: float  # until the job runs: on-prem queue wait, or cloud startup + copy
    expected_completion_s: float  # until the job is expected to finish (inf: never on-prem)
    terms: Mapping[str, float]  # every priced term, by name (see docs/cost-model.md)
    reason: str  # one human line
    capacity_type: CapacityType | None = None
    # When this decision changes by itself if nothing else does (a timeout, a minimum pending
    # time, a copy finishing), on the caller's clock; None when only new state can change it.
    revisit_at: float | None = None
    gpus: int = 0

    @property
    def pool_name(self) -> str | None:
        return None if self.cluster is None else f"{self.cluster}/{self.pool}"


@dataclass(frozen=True, slots=True)
class Round:
    """All decisions of one call to `decide`, in the order the jobs were given."""

    decisions: tuple[Decision, ...]
    now: float = 0.0
    notes: Mapping[str, float] = field(default_factory=dict)  # round-wide figures

    def by_key(self) -> dict[str, Decision]:
        return {decision.job_key: decision for decision in self.decisions}

    def of_kind(self, kind: DecisionKind) -> tuple[Decision, ...]:
        return tuple(decision for decision in self.decisions if decision.kind is kind)

    @property
    def bursts(self) -> tuple[Decision, ...]:
        return self.of_kind(DecisionKind.BURST)

    @property
    def expected_cloud_cost_usd(self) -> float:
        return sum(decision.expected_cost_usd for decision in self.bursts)
