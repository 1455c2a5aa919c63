"""The text of the Kubernetes Events federator posts on on-prem Jobs, and when to post one.

A researcher runs `kubectl describe job` and should read, on their own Job, what federator
decided and why ("Bursting to cloud-a/a100-spot: …"). This module turns decisions and
placement outcomes into Event reason/message/type, and keeps the Event stream quiet: a job
re-decided the same way every reconcile round gets one Event, not one per round. "The same
way" means the same kind, target and reason once its numbers are masked ("stays on-prem: #
expected wait worth $# beats cloud-a/a100-spot at $#"); the numbers themselves drift every
round and only count when the expected wait moves by a large factor (`Deduplicator`).

It is pure (no I/O, no clock); posting the Event is the on-prem adapter's job
(`federator.kube`, behind `EventSink` — the federation loop's `OnPremPort.event` has exactly
this shape).
"""

from __future__ import annotations

import collections
import functools
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

# The apiserver rejects Event messages over 1 KiB in events.k8s.io/v1 (`note`); core/v1 takes
# more, but kubectl truncates long ones anyway. Keep ours well below.
MAX_MESSAGE_CHARS = 1000

REASONS = {
    "stay": "FederatorStay",
    "burst": "FederatorBurst",
    "hold": "FederatorHold",
}
"""Event `reason` per decision kind: short UpperCamelCase, as Kubernetes conventions ask."""

PLACEMENT_REASONS = {
    "placed": "FederatorPlaced",
    "already_placed": "FederatorPlaced",
    "failed": "FederatorPlacementFailed",
    "withdrawn": "FederatorWithdrawn",
    "replaced": "FederatorReplaced",
}
"""Event `reason` per placement outcome (the values of `metrics.PLACEMENT_OUTCOMES`)."""

_WARNING_OUTCOMES = frozenset({"failed", "replaced"})


class DecisionLike(Protocol):
    """The fields of a core decision that operators read (satisfied structurally)."""

    @property
    def job_key(self) -> str: ...
    @property
    def kind(self) -> Any: ...  # an enum or a str: "stay" | "burst" | "hold"
    @property
    def cluster(self) -> str | None: ...
    @property
    def pool(self) -> str | None: ...
    @property
    def expected_cost_usd(self) -> float: ...
    @property
    def expected_wait_s(self) -> float: ...
    @property
    def expected_completion_s(self) -> float: ...
    @property
    def terms(self) -> Mapping[str, Any]: ...
    @property
    def reason(self) -> str: ...


@dataclass(frozen=True, slots=True)
class EventText:
    """What one Event says; `warning` selects type Warning instead of Normal.

    `topic` is what makes two Events "the same news" for `Deduplicator` (kind and target):
    the message carries numbers that drift every round and must not cause a repost.
    """

    reason: str
    message: str
    warning: bool = False
    topic: str = ""
    wait_s: float = math.nan  # the decision's expected wait; NaN when the text has none


JobT_contra = TypeVar("JobT_contra", contravariant=True)


class EventSink(Protocol[JobT_contra]):
    """Posts an Event on an on-prem job; implemented by the on-prem Kubernetes adapter."""

    async def event(
        self, job: JobT_contra, *, reason: str, message: str, warning: bool
    ) -> None: ...


def kind_of(decision: DecisionLike) -> str:
    """The decision kind as a plain string, whether the core uses an enum or a str."""
    return str(getattr(decision.kind, "value", decision.kind))


def decision_news(decision: DecisionLike, *, acted: bool = True) -> EventText:
    """What `Deduplicator` compares for a decision, without the message: cheap enough to run
    for every decision of every pass (build the message with `for_decision` only for news)."""
    kind = kind_of(decision)
    target = _target(decision.cluster, decision.pool)
    return EventText(
        REASONS.get(kind, "FederatorDecision"),
        "",
        topic=f"{kind}:{target}:{acted}:{gist(decision.reason)}",
        wait_s=decision.expected_wait_s,
    )


def for_decision(decision: DecisionLike, *, acted: bool = True) -> EventText:
    """Describe a decision on the job it concerns, with its cost and its reason."""
    news = decision_news(decision, acted=acted)
    kind = kind_of(decision)
    target = _target(decision.cluster, decision.pool)
    headline = {
        "stay": "Staying in the on-prem queue",
        "burst": f"Bursting to {target}",
        "hold": f"Holding for {target}",
    }.get(kind, f"Decided {kind}")
    numbers = (
        f"expected cost ${decision.expected_cost_usd:,.2f}, "
        f"expected wait {_duration(decision.expected_wait_s)}, "
        f"expected completion in {_duration(decision.expected_completion_s)}"
    )
    prefix = "" if acted else "[dry-run] "
    why = decision.reason
    stays = _STAY_PREFIX.match(why) if kind == "stay" else None
    if stays is not None:  # the headline says it already: "...queue for now: ..."
        headline, why = f"{headline}{stays['when'] or ''}", why[stays.end() :]
    return replace(news, message=_clip(f"{prefix}{headline}: {why} ({numbers})"))


# The prefix of a stay reason, with what qualifies it ("for now", "after its timeout").
_STAY_PREFIX = re.compile(r"^stays on-prem(?P<when> [^:]+)?: ")
# A number as reasons write them: "$41", "6h10m", "2.0", "$∞", not the digits of a name such
# as "a100-spot" or "h100" (preceded by a letter, a dash or a slash).
_NUMBER = re.compile(r"(?<![\w/-])\$?[\d∞][\w.,∞]*")


@functools.lru_cache(maxsize=16_384)  # a waiting job's reason often repeats pass after pass
def gist(reason: str) -> str:
    """The reason with its numbers masked: what stays the same while the estimates drift."""
    return _NUMBER.sub("#", reason)


def for_placement(outcome: str, *, cluster: str, pool: str, detail: str = "") -> EventText:
    """Describe what happened when federator acted on a burst (see metrics.PLACEMENT_OUTCOMES)."""
    target = _target(cluster, pool)
    headline = {
        "placed": f"Created a copy on {target}",
        "already_placed": f"A copy already runs on {target}",
        "failed": f"Could not create a copy on {target}",
        "withdrawn": f"Deleted the copy on {target}; the job is back in the on-prem queue",
        "replaced": f"The copy on {target} was lost; placing the job again",
    }.get(outcome, f"{outcome} on {target}")
    message = f"{headline}: {detail}" if detail else headline
    return EventText(
        PLACEMENT_REASONS.get(outcome, "FederatorPlacement"),
        _clip(message),
        warning=outcome in _WARNING_OUTCOMES,
        topic=f"{outcome}:{target}",
    )


@dataclass(frozen=True, slots=True)
class _Posted:
    news: tuple[str, str]
    wait_s: float
    at: float | None


def namespace_event(
    namespace: str, text: EventText, *, timestamp: str, component: str = "federator"
) -> dict[str, Any]:
    """A core/v1 Event about federator's own namespace, for news that concerns no single job
    (a budget nearly spent). `timestamp` is RFC 3339; the apiserver names it (generateName)."""
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{component}-{text.reason.lower()}-", "namespace": namespace},
        # The apiserver wants involvedObject.namespace to equal the Event's, even for a
        # cluster-scoped object; `kubectl get events -n NAMESPACE` lists it.
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Namespace",
            "name": namespace,
            "namespace": namespace,
        },
        "reason": text.reason,
        "message": _clip(text.message),
        "type": "Warning" if text.warning else "Normal",
        "source": {"component": component},
        "firstTimestamp": timestamp,
        "lastTimestamp": timestamp,
        "count": 1,
    }


class Deduplicator:
    """Lets an Event through only when it is news for the job it concerns.

    News is a different reason or topic than the last Event posted on the job; with
    `wait_factor`, also an expected wait that moved by at least that factor (and at least
    `min_wait_change_s`) since the last post — compared with the last *posted* wait, so an
    estimate wobbling around a value never flaps; with `repeat_after_s` and a `now`, also the
    same news once that long has passed (the apiserver forgets Events after its `--event-ttl`,
    one hour by default, and `kubectl describe` should still show why a job waits).

    Bounded: it remembers the last `capacity` jobs (least recently posted forgotten first), so
    a long-running daemon does not grow with every job it ever saw; a forgotten job at worst
    gets one repeated Event.
    """

    def __init__(
        self,
        capacity: int = 10_000,
        *,
        wait_factor: float | None = None,
        min_wait_change_s: float = 300.0,
        repeat_after_s: float | None = None,
    ) -> None:
        self._capacity = capacity
        self._wait_factor = wait_factor
        self._min_wait_change_s = min_wait_change_s
        self._repeat_after_s = repeat_after_s
        self._last: collections.OrderedDict[str, _Posted] = collections.OrderedDict()

    def should_post(self, job_key: str, text: EventText, *, now: float | None = None) -> bool:
        news = (text.reason, text.topic or text.message)
        last = self._last.get(job_key)
        if last is not None and last.news == news and not self._due(last, text, now):
            self._last.move_to_end(job_key)
            return False
        self._last[job_key] = _Posted(news, text.wait_s, now)
        self._last.move_to_end(job_key)
        while len(self._last) > self._capacity:
            self._last.popitem(last=False)
        return True

    def forget(self, job_key: str) -> None:
        """Call when a job finished or disappeared, or when posting its Event failed."""
        self._last.pop(job_key, None)

    def retain_only(self, job_keys: Iterable[str]) -> None:
        """Forget every job but these (the ones still being decided): memory follows the
        queue, and a job that comes back later (re-queued after a burst) is news again."""
        keep = set(job_keys)
        for key in [key for key in self._last if key not in keep]:
            del self._last[key]

    def _due(self, last: _Posted, text: EventText, now: float | None) -> bool:
        repeat, at = self._repeat_after_s, last.at
        if repeat is not None and now is not None and at is not None and now - at >= repeat:
            return True
        if self._wait_factor is None:
            return False
        return _moved(last.wait_s, text.wait_s, self._wait_factor, self._min_wait_change_s)


def _moved(before: float, after: float, factor: float, min_change_s: float) -> bool:
    """Whether an expected wait changed enough to be worth telling (inf counts as a change)."""
    if math.isnan(before) or math.isnan(after):
        return False
    if math.isinf(before) or math.isinf(after):
        return before != after
    low, high = sorted((max(0.0, before), max(0.0, after)))
    return high - low >= min_change_s and high >= factor * max(low, 1.0)


def _target(cluster: str | None, pool: str | None) -> str:
    if cluster and pool:
        return f"{cluster}/{pool}"
    return cluster or pool or "the cloud"


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):  # the model's way of saying "not on this path"
        return "unbounded"
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _clip(message: str) -> str:
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    return message[: MAX_MESSAGE_CHARS - 1] + "…"
