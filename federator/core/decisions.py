"""What a decision round answers: per job stay, burst or hold, with its numbers and its reason.

These are values: the daemon acts on them and logs them, the simulator replays them, `federator
plan` prints them. A decision carries every term the model priced (`terms`) so that nobody has
to recompute why it was taken, and one human line (`reason`) that says it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

from federator.core.models import CapacityType


class Breakdown(Protocol):
    """Something priced that can list its terms (the estimates in `costs`)."""

    def terms(self) -> dict[str, float]: ...


class Terms(Mapping[str, float]):
    """A decision's breakdown by term name, put together the first time someone reads it.

    Most decisions of a big round are never inspected term by term; building every dict up
    front cost more than the rest of such a decision. The values are final when the decision
    is made (the parts are immutable), only the dict is deferred. Named figures come as two
    plain tuples — the names shared by every decision of one shape, the values plain floats —
    because a staying decision keeps nothing else alive: a round of 10,000 then leaves one
    object here per decision for the garbage collector to walk, not seven (those walks were
    a third of a round's time). `parts` are the priced options that list their own terms.
    """

    __slots__ = ("_built", "_names", "_parts", "_values")

    def __init__(
        self,
        names: tuple[str, ...],
        values: tuple[float, ...],
        parts: tuple[Breakdown, ...] = (),
    ) -> None:
        self._names = names
        self._values = values
        self._parts = parts
        self._built: dict[str, float] | None = None

    def _dict(self) -> dict[str, float]:
        if self._built is None:
            built = dict(zip(self._names, self._values, strict=True))
            for part in self._parts:
                built.update(part.terms())
            self._built = built
        return self._built

    def __getitem__(self, name: str) -> float:
        return self._dict()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict())

    def __len__(self) -> int:
        return len(self._dict())

    def __repr__(self) -> str:
        return repr(self._dict())


class DecisionKind(StrEnum):
    STAY = "stay"  # leave the job in the on-prem queue
    BURST = "burst"  # run it in `cluster`/`pool` now
    # Federator means to burst it to `cluster`/`pool` once something clears (its data is
    # replicated, budget frees up); it stays queued on-prem meanwhile and may still start there.
    HOLD = "hold"


class Reason:
    """A decision's human line, written the first time someone reads it.

    Formatting money and durations costs more than the rest of a staying job's decision, and
    most decisions of a big round are never read by a person. `render(*args)` must be pure
    over immutable arguments, so the line is the same whenever it is written.
    """

    __slots__ = ("_args", "_render", "_text")

    def __init__(self, render: Callable[..., str], args: tuple[Any, ...]) -> None:
        self._render = render
        self._args = args
        self._text: str | None = None

    def __str__(self) -> str:
        if self._text is None:
            self._text = self._render(*self._args)
        return self._text

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Reason | str):
            return str(self) == str(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(str(self))

    def __repr__(self) -> str:
        return repr(str(self))


class _DecisionFields(NamedTuple):
    job_key: str
    kind: DecisionKind
    cluster: str | None
    pool: str | None
    expected_cost_usd: float  # what the chosen option is expected to bill
    expected_wait_s: float  # until the job runs: on-prem queue wait, or cloud startup + copy
    expected_completion_s: float  # until the job is expected to finish (inf: never on-prem)
    terms: Mapping[str, float]  # every priced term, by name (see docs/cost-model.md)
    reason: str | Reason  # one human line; read it as `Decision.reason`, always a str
    capacity_type: CapacityType | None = None
    # When this decision changes by itself if nothing else does (a timeout, a minimum pending
    # time, a copy finishing), on the caller's clock; None when only new state can change it.
    revisit_at: float | None = None
    gpus: int = 0


class Decision(_DecisionFields):
    """One job's decision. Durations are seconds from the round's `now`.

    A NamedTuple rather than a frozen dataclass, on purpose: a round builds one per pending job
    (10,000 in the benchmark) and a frozen dataclass's __init__ measured ~6x slower (4.7 µs vs
    0.9 µs for 12 fields); it is just as immutable. `reason` may be given as a `Reason`, which
    is written out when it is first read; `decision.reason` is always the line itself.
    """

    __slots__ = ()

    @property
    def reason(self) -> str:
        reason = tuple.__getitem__(self, 8)
        return reason if type(reason) is str else str(reason)

    @property
    def pool_name(self) -> str | None:
        return None if self.cluster is None else f"{self.cluster}/{self.pool}"

    def _asdict(self) -> dict[str, Any]:
        fields = _DecisionFields._asdict(self)
        fields["reason"] = self.reason
        return fields


@dataclass(frozen=True, slots=True)
class Round:
    """All decisions of one call to `decide`, in the order the jobs were given."""

    decisions: tuple[Decision, ...]
    now: float = 0.0

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
