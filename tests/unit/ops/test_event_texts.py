"""What a researcher reads in `kubectl describe job`, and how often it is posted."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from federator import events


class Kind(enum.StrEnum):
    STAY = "stay"
    BURST = "burst"
    HOLD = "hold"


@dataclass(frozen=True)
class FakeDecision:
    job_key: str = "team-a/train-7"
    kind: Any = Kind.BURST
    cluster: str | None = "cloud-a"
    pool: str | None = "a100-spot"
    expected_cost_usd: float = 1234.5
    expected_wait_s: float = 7200.0
    expected_completion_s: float = 30.0
    terms: Mapping[str, Any] = field(default_factory=dict)
    reason: str = "waiting 2.0 h on-prem costs $410 more than a100-spot"


@pytest.mark.parametrize(
    ("kind", "want_reason", "want_headline"),
    [
        pytest.param(Kind.BURST, "FederatorBurst", "Bursting to cloud-a/a100-spot: ", id="burst"),
        pytest.param("hold", "FederatorHold", "Holding for cloud-a/a100-spot: ", id="hold as str"),
        pytest.param(Kind.STAY, "FederatorStay", "Staying in the on-prem queue: ", id="stay"),
    ],
)
def test_a_decision_reads_as_a_sentence_with_its_numbers(
    kind: Any, want_reason: str, want_headline: str
) -> None:
    """Reason per kind; the message says where, why, and the expected cost/wait/completion."""
    text = events.for_decision(FakeDecision(kind=kind))
    assert text.reason == want_reason
    assert not text.warning
    assert text.message == (
        f"{want_headline}waiting 2.0 h on-prem costs $410 more than a100-spot "
        "(expected cost $1,234.50, expected wait 2.0 h, expected completion in 30 s)"
    )


def test_dry_run_decisions_say_so() -> None:
    """Under --dry-run the Event makes clear nothing was done."""
    assert events.for_decision(FakeDecision(), acted=False).message.startswith("[dry-run] ")


def test_an_infinite_wait_is_written_unbounded() -> None:
    """The model's infinity ("never on this path") is not printed as 'inf h'."""
    text = events.for_decision(FakeDecision(kind=Kind.STAY, expected_wait_s=math.inf))
    assert "expected wait unbounded" in text.message


def test_messages_are_clipped_below_the_apiserver_limit() -> None:
    """A very long reason never makes the apiserver reject the Event."""
    text = events.for_decision(FakeDecision(reason="x" * 5000))
    assert len(text.message) == events.MAX_MESSAGE_CHARS
    assert text.message.endswith("…")


@pytest.mark.parametrize(
    ("outcome", "want_reason", "want_warning"),
    [
        ("placed", "FederatorPlaced", False),
        ("already_placed", "FederatorPlaced", False),
        ("failed", "FederatorPlacementFailed", True),
        ("withdrawn", "FederatorWithdrawn", False),
        ("replaced", "FederatorReplaced", True),
    ],
)
def test_every_placement_outcome_has_an_event(
    outcome: str, want_reason: str, want_warning: bool
) -> None:
    """Each outcome of metrics.PLACEMENT_OUTCOMES maps to a reason; failures are Warnings."""
    text = events.for_placement(outcome, cluster="cloud-b", pool="h100-spot", detail="quota")
    assert (text.reason, text.warning) == (want_reason, want_warning)
    assert "cloud-b/h100-spot" in text.message
    assert text.message.endswith(": quota")


def test_the_same_news_is_posted_once_even_when_numbers_drift() -> None:
    """Re-deciding the same burst every round, with a shrinking wait, posts one Event."""
    dedup = events.Deduplicator()
    first = events.for_decision(FakeDecision())
    later = events.for_decision(FakeDecision(expected_wait_s=3600.0))
    assert first.message != later.message
    assert dedup.should_post("team-a/train-7", first)
    assert not dedup.should_post("team-a/train-7", later)


def test_a_changed_decision_is_posted_again() -> None:
    """Switching pool (or kind) is news."""
    dedup = events.Deduplicator()
    assert dedup.should_post("j", events.for_decision(FakeDecision()))
    assert dedup.should_post(
        "j", events.for_decision(replace(FakeDecision(), pool="a100-ondemand"))
    )
    assert dedup.should_post("j", events.for_decision(FakeDecision(kind=Kind.STAY)))


def test_the_deduplicator_forgets_old_jobs_to_stay_bounded() -> None:
    """Past its capacity, the least recently posted job is forgotten (and may repost once)."""
    dedup = events.Deduplicator(capacity=2)
    text = events.for_decision(FakeDecision())
    for key in ("a", "b", "c"):
        assert dedup.should_post(key, text)
    assert dedup.should_post("a", text)
    assert not dedup.should_post("c", text)
    dedup.forget("c")
    assert dedup.should_post("c", text)


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("stays on-prem: a beats b", "Staying in the on-prem queue: a beats b"),
        (
            "stays on-prem for now: cloud-a/spot would win, but the job has been pending 1m",
            "Staying in the on-prem queue for now: cloud-a/spot would win, but the job has "
            "been pending 1m",
        ),
        (
            "stays on-prem after its timeout: no on-demand pool has 8 free GPUs",
            "Staying in the on-prem queue after its timeout: no on-demand pool has 8 free GPUs",
        ),
        ("starts on-prem now", "Staying in the on-prem queue: starts on-prem now"),
    ],
)
def test_a_stay_reason_does_not_repeat_the_headline(reason: str, message: str) -> None:
    """The operator tour saw "Staying in the on-prem queue: stays on-prem for now: ..."."""
    stay = FakeDecision(kind=Kind.STAY, cluster=None, pool=None, reason=reason)
    text = events.for_decision(stay)
    assert text.message.startswith(message + " ("), text.message
