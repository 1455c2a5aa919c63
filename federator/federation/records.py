"""The placement record: what federator promised about one job, kept on the on-prem Job itself.

The record is the single source of truth for "where does this job run". It is written before
any other step of a placement, every later step is keyed by it, and a restarted federator
rebuilds everything from the records it reads back. It is stored as compact JSON in the
annotation `federator.io/record`; `to_json`/`from_json` are pure and total (a record that does
not parse is reported, never guessed at).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any


class Phase(StrEnum):
    PLACING = "placing"  # intent written; the copy may or may not exist yet
    PLACED = "placed"  # the copy exists (or existed) on `cluster`
    REQUEUED = "requeued"  # the copy was lost (preemption, lost cluster); decide again
    DONE = "done"  # the on-prem Job carries the terminal state


class RecordError(ValueError):
    """An annotation that does not hold a record we can read."""


@dataclass(frozen=True, slots=True)
class LostCopy:
    """The copy of an attempt lost with its cluster: federator cannot see it, but a partition
    is not a deletion, so it may still run and bill on that cluster. Budgets count it at
    `usd_per_hour` from `since` (the requeue) until `ended_at`, which settling sets once its
    cluster shows it stopped (`lost_copies.settlements`); until then it counts as running.
    It stays on the record (and the kept record) for as long as the Job exists, so that its
    cost is counted once, under its own key (`key`), whatever becomes of the job's record."""

    cluster: str
    namespace: str
    name: str
    attempt: int
    usd_per_hour: float  # price_per_gpu_hour_usd x gpus of the lost attempt
    since: float  # when its attempt was requeued (up to then it is in `earlier_usd`)
    ended_at: float | None = None  # when it stopped, once settled; None: it may run on

    @property
    def settled(self) -> bool:
        return self.ended_at is not None

    def key(self, uid: str) -> str:
        """Its key among the spend book's and the spend counter's contributions: apart from
        its job's (`uid`), so that it counts once whether the job has a record or not."""
        return f"{uid}/lost/{self.cluster}/{self.namespace}/{self.name}"

    def cost_usd(self, now: float, *, after: float = 0.0) -> float:
        """What it cost from `since` (or `after`, if later) until `now`, or its end if settled
        (a settled copy's cost is fixed)."""
        end = now if self.ended_at is None else min(now, self.ended_at)
        return self.usd_per_hour * max(0.0, end - max(self.since, after)) / 3600.0

    def to_data(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "namespace": self.namespace,
            "name": self.name,
            "attempt": self.attempt,
            "usd_per_hour": self.usd_per_hour,
            "since": self.since,
            **({} if self.ended_at is None else {"ended_at": self.ended_at}),
        }

    @classmethod
    def from_data(cls, data: Any) -> LostCopy:
        lost = cls(
            cluster=str(data["cluster"]),
            namespace=str(data["namespace"]),
            name=str(data["name"]),
            attempt=int(data["attempt"]),
            usd_per_hour=float(data["usd_per_hour"]),
            since=float(data["since"]),
            ended_at=_optional_float(data.get("ended_at")),
        )
        times = (lost.usd_per_hour, lost.since, lost.ended_at or 0.0)
        if not all(math.isfinite(t) for t in times):
            raise ValueError(f"lost_copies: {lost.name}: not a finite rate and time")
        return lost


@dataclass(frozen=True, slots=True)
class PlacementRecord:
    cluster: str
    pool: str
    attempt: int
    phase: Phase
    placed_at: float
    gpus: int
    price_per_gpu_hour_usd: float = 0.0
    preemptions: int = 0
    not_before: float = 0.0  # no re-placement before this time (backoff)
    stale: tuple[str, ...] = ()  # "<cluster>/<namespace>/<name>" copies to delete
    reason: str = ""
    finished_at: float | None = None
    history: tuple[str, ...] = field(default=())  # "<cluster>/<pool>" of earlier attempts
    # What the cost model expected this attempt to cost in all: until it ends, budgets count
    # the larger of this and what has accrued, so passes cannot promise the same dollars twice.
    expected_cost_usd: float = 0.0
    earlier_usd: float = 0.0  # what earlier attempts of this job cost before their copy was lost
    # The copies lost with their cluster: running (they may bill on) until settled, then
    # with their end; counted apart from the job's attempts (`charges`).
    lost_copies: tuple[LostCopy, ...] = ()
    # How many of the job's copies were lost (preempted, cluster lost, never started, refused;
    # not one deleted on a draining cloud, `moves.COPY_GONE`): what
    # `burst.replacement.max_replacements` bounds. Not `attempt`, which a pull-back
    # also moves on, and which skips numbers past old copies. None: a record written before
    # the count was kept, read as its attempts (`losses`), the bound it had then.
    lost: int | None = None

    @property
    def losses(self) -> int:
        """The copies the job lost so far (see `lost`)."""
        if self.lost is not None:
            return self.lost
        return self.attempt if self.phase is Phase.REQUEUED else self.attempt - 1

    @property
    def placement(self) -> str:
        return f"{self.cluster}/{self.pool}"

    def requeue(self, *, now: float, backoff_s: float, stale_copy: str | None) -> PlacementRecord:
        """The record once its attempt's copy is gone (lost, pulled back, never made): decided
        again after `backoff_s`. Its count of lost copies is pinned as it stands; a loss adds
        one on top (`Moves._lost_attempt`). Left unset on a record that has none (written
        before the count), a requeued record would read its attempt as lost, pulled back or not.
        """
        stale = self.stale + ((stale_copy,) if stale_copy and stale_copy not in self.stale else ())
        return replace(
            self,
            lost=self.losses,
            earlier_usd=self.earlier_usd + self.attempt_cost_usd(now),
            phase=Phase.REQUEUED,
            not_before=now + backoff_s,
            stale=stale,
            history=(*self.history, self.placement),
        )

    def settle(self, ends: Iterable[tuple[LostCopy, float]]) -> PlacementRecord:
        """The record once each lost copy in `ends` is known to have stopped at its time: it
        keeps the copy with that end, so its cost is fixed and no longer counted as running."""
        stopped = dict(ends)
        return replace(
            self,
            lost_copies=tuple(
                replace(c, ended_at=stopped[c]) if c in stopped else c for c in self.lost_copies
            ),
        )

    def done(self, *, finished_at: float) -> PlacementRecord:
        """The record once the on-prem Job is terminal. A requeued record has no attempt
        running (what its attempts cost is all in `earlier_usd`), so the attempt it closes
        spans no time: otherwise the lost attempt would be charged a second time."""
        if self.phase is Phase.REQUEUED:
            return replace(self, phase=Phase.DONE, placed_at=finished_at, finished_at=finished_at)
        return replace(self, phase=Phase.DONE, finished_at=finished_at)

    def attempt_cost_usd(self, now: float, *, since: float = 0.0) -> float:
        """What this attempt has cost so far, counting only time after `since` (nothing once
        it is requeued: its copy is gone, and `earlier_usd` holds what it cost)."""
        if self.phase is Phase.REQUEUED:
            return 0.0
        end = self.finished_at if self.finished_at is not None else now
        hours = max(0.0, end - max(self.placed_at, since)) / 3600.0
        return self.price_per_gpu_hour_usd * self.gpus * hours

    def to_json(self) -> str:
        return json.dumps(self.to_data(), separators=(",", ":"), sort_keys=True)

    def to_data(self) -> dict[str, Any]:
        """The record as the JSON object `to_json` writes."""
        data: dict[str, Any] = {
            "cluster": self.cluster,
            "pool": self.pool,
            "attempt": self.attempt,
            "phase": self.phase.value,
            "placed_at": self.placed_at,
            "gpus": self.gpus,
            "price_per_gpu_hour_usd": self.price_per_gpu_hour_usd,
            "preemptions": self.preemptions,
            "not_before": self.not_before,
            "stale": list(self.stale),
            "reason": self.reason,
            "finished_at": self.finished_at,
            "history": list(self.history),
            "expected_cost_usd": self.expected_cost_usd,
            "earlier_usd": self.earlier_usd,
        }
        if self.lost_copies:
            data["lost_copies"] = [lost.to_data() for lost in self.lost_copies]
        if self.lost is not None:
            data["lost"] = self.lost
        return data

    @classmethod
    def from_json(cls, text: str) -> PlacementRecord:
        try:
            data = json.loads(text)
        except ValueError as e:
            raise RecordError(f"federator.io/record: cannot read {text[:80]!r}: {e}") from e
        return cls.from_data(data, shown=text)

    @classmethod
    def from_data(cls, data: Any, *, shown: str = "") -> PlacementRecord:
        """The record from the JSON object `to_data` gives (`shown`: its text, for the error)."""
        try:
            return cls(
                cluster=str(data["cluster"]),
                pool=str(data["pool"]),
                attempt=int(data["attempt"]),
                phase=Phase(data["phase"]),
                placed_at=float(data["placed_at"]),
                gpus=int(data["gpus"]),
                price_per_gpu_hour_usd=float(data.get("price_per_gpu_hour_usd", 0.0)),
                preemptions=int(data.get("preemptions", 0)),
                not_before=float(data.get("not_before", 0.0)),
                stale=tuple(str(s) for s in data.get("stale", ())),
                reason=str(data.get("reason", "")),
                finished_at=_optional_float(data.get("finished_at")),
                history=tuple(str(h) for h in data.get("history", ())),
                expected_cost_usd=float(data.get("expected_cost_usd", 0.0)),
                earlier_usd=float(data.get("earlier_usd", 0.0)),
                lost_copies=tuple(LostCopy.from_data(c) for c in data.get("lost_copies", ())),
                lost=_optional_count(data.get("lost")),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            text = shown or json.dumps(data, default=str)
            raise RecordError(f"federator.io/record: cannot read {text[:80]!r}: {e}") from e


def _optional_count(value: object) -> int | None:
    if value is None:
        return None
    count: int = int(str(value))  # "3" and 3 alike; 3.5 or "x" is a ValueError
    if count < 0:
        raise ValueError(f"lost: {count} is not a count")
    return count


def _optional_float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def copy_name(source_name: str, source_uid: str, attempt: int) -> str:
    """The deterministic name of a job's copy: the same inputs always give the same name.

    A retried create therefore meets `409 AlreadyExists` instead of making a duplicate. The UID
    part keeps two on-prem jobs of the same name (deleted and recreated) apart; the attempt keeps
    re-placements apart. Job names are DNS labels of at most 63 characters, and the Job
    controller adds a suffix to pod names, so we stay well below.
    """
    uid = source_uid.replace("-", "")[:10]
    suffix = f"-{uid}-{attempt}"
    head = source_name[: 52 - len(suffix)].rstrip("-.")
    return f"{head}{suffix}"
