"""Stay and hold decisions reach the job as Events, once per piece of news, never per pass."""

from __future__ import annotations

import math

from federator import events
from federator.core.decisions import Decision, DecisionKind
from federator.daemon import assembly, telling
from federator.federation.federation import PassReport
from tests.unit.kube.fakes import FakeOnPrem

WAIT_1H = 3600.0


def decision(
    key: str,
    kind: DecisionKind = DecisionKind.STAY,
    *,
    wait_s: float = WAIT_1H,
    reason: str = "stays on-prem: 1h00m expected wait worth $32 beats cloud-a/a100-spot at $55",
    pool: str | None = None,
) -> Decision:
    return Decision(
        job_key=key,
        kind=kind,
        cluster="cloud-a" if pool else None,
        pool=pool,
        expected_cost_usd=0.0 if kind is DecisionKind.STAY else 55.0,
        expected_wait_s=wait_s,
        expected_completion_s=wait_s + 600.0,
        terms={},
        reason=reason,
    )


def onprem_with(*names: str) -> FakeOnPrem:
    onprem = FakeOnPrem()
    for name in names:
        onprem.add(name, 8)
    return onprem


async def passes(onprem: FakeOnPrem, rounds: list[tuple[float, list[Decision]]]) -> list[int]:
    told = telling.decision_deduplicator()
    return [
        await telling.post_decision_events(onprem, told, PassReport(now=now, decisions=tuple(ds)))
        for now, ds in rounds
    ]


async def test_a_job_re_decided_stay_every_pass_gets_one_event() -> None:
    onprem = onprem_with("train")
    # the estimate drifts every pass, as it does on a live queue
    rounds = [(t, [decision("team-a/train", wait_s=WAIT_1H - t)]) for t in range(0, 300, 5)]
    posted = await passes(onprem, rounds)
    assert sum(posted) == 1
    assert onprem.events == [("team-a/train", "FederatorStay")]


async def test_stay_and_hold_are_posted_bursts_are_left_to_the_placement_event() -> None:
    onprem = onprem_with("a", "b", "c")
    await passes(
        onprem,
        [
            (
                0.0,
                [
                    decision("team-a/a"),
                    decision("team-a/b", DecisionKind.HOLD, pool="a100-spot",
                             reason="held: cloud-a/a100-spot at $55 would exceed a budget"),
                    decision("team-a/c", DecisionKind.BURST, pool="a100-spot", reason="bursted"),
                ],
            )
        ],
    )  # fmt: skip
    assert sorted(onprem.events) == [("team-a/a", "FederatorStay"), ("team-a/b", "FederatorHold")]


async def test_a_new_kind_or_reason_is_news_drifting_numbers_are_not() -> None:
    onprem = onprem_with("train")
    key = "team-a/train"
    held = decision(key, DecisionKind.HOLD, pool="a100-spot", reason="held: over $500/h budget")
    cheaper_on_prem = "stays on-prem: 58m expected wait worth $31 beats cloud-a/a100-spot at $54"
    no_pool = "stays on-prem: no cloud pool fits 8 GPUs"
    posted = await passes(
        onprem,
        [
            (0.0, [decision(key)]),
            (5.0, [decision(key, reason=cheaper_on_prem, wait_s=WAIT_1H - 120)]),  # numbers only
            (10.0, [held]),  # kind
            (15.0, [held]),
            (20.0, [decision(key)]),  # back to stay
            (25.0, [decision(key, reason=no_pool)]),  # a different reason
        ],
    )
    assert posted == [1, 0, 1, 0, 1, 1]
    assert [reason for _, reason in onprem.events] == [
        "FederatorStay", "FederatorHold", "FederatorStay", "FederatorStay",
    ]  # fmt: skip


async def test_a_stay_after_a_burst_is_news_again() -> None:
    """A job bursted, preempted and re-queued tells its new stay, though it stayed before."""
    onprem = onprem_with("train")
    key = "team-a/train"
    burst = decision(key, DecisionKind.BURST, pool="a100-spot", reason="bursted")
    posted = await passes(onprem, [(0.0, [decision(key)]), (5.0, [burst]), (9.0, [decision(key)])])
    assert posted == [1, 0, 1]


async def test_a_large_move_of_the_expected_wait_is_news_a_small_one_is_not() -> None:
    onprem = onprem_with("train")
    key = "team-a/train"
    posted = await passes(
        onprem,
        [
            (0.0, [decision(key, wait_s=4 * WAIT_1H)]),
            (5.0, [decision(key, wait_s=2 * WAIT_1H)]),  # halved: not yet news
            (10.0, [decision(key, wait_s=0.9 * WAIT_1H)]),  # over 4x shorter than the one told
            (15.0, [decision(key, wait_s=math.inf)]),  # it will never start on-prem now
            (20.0, [decision(key, wait_s=math.inf)]),
        ],
    )
    assert posted == [1, 0, 1, 1, 0]


async def test_the_same_news_is_told_again_before_the_apiserver_forgets_it() -> None:
    onprem = onprem_with("train")
    key = "team-a/train"
    later = telling.EVENT_REPEAT_S
    posted = await passes(
        onprem, [(0.0, [decision(key)]), (later - 1, [decision(key)]), (later, [decision(key)])]
    )
    assert posted == [1, 0, 1]
    assert telling.EVENT_REPEAT_S < 3600  # the apiserver's default --event-ttl


class FailingOnPrem(FakeOnPrem):
    failures = 1  # the first post fails

    async def event(self, job: object, *, reason: str, message: str, warning: bool) -> None:
        from federator.errors import ClusterUnavailable

        if self.failures:
            self.failures -= 1
            raise ClusterUnavailable("onprem", "connection refused")
        await super().event(job, reason=reason, message=message, warning=warning)  # type: ignore[arg-type]


async def test_an_event_that_could_not_be_posted_is_tried_again_next_pass() -> None:
    onprem = FailingOnPrem()
    onprem.add("train", 8)
    posted = await passes(onprem, [(0.0, [decision("team-a/train")])] * 3)
    assert posted == [0, 1, 0]
    assert onprem.events == [("team-a/train", "FederatorStay")]


async def test_a_decision_for_a_job_that_is_gone_posts_nothing() -> None:
    onprem = onprem_with("other")
    assert await passes(onprem, [(0.0, [decision("team-a/gone")])]) == [0]
    assert onprem.events == []


def test_the_message_says_why_and_what_to_expect_without_repeating_itself() -> None:
    text = events.for_decision(decision("team-a/train"))
    assert text.reason == "FederatorStay"
    assert text.message == (
        "Staying in the on-prem queue: 1h00m expected wait worth $32 beats cloud-a/a100-spot "
        "at $55 (expected cost $0.00, expected wait 60 min, expected completion in 70 min)"
    )


class PartsLike:
    """The fields of `daemon.Parts` that telling decisions reads."""

    def __init__(self, onprem: FakeOnPrem, *, leader: bool, dry_run: bool) -> None:
        from federator import leadership

        self.onprem = onprem
        self.dry_run = dry_run
        self.fence = leadership.Fence(10.0, always_open=leader)
        self.decision_events = telling.decision_deduplicator()

    def writes_allowed(self) -> bool:
        return assembly.Parts.writes_allowed(self)  # type: ignore[arg-type]


async def test_only_a_leader_that_acts_tells_decisions() -> None:
    report = PassReport(now=0.0, decisions=(decision("team-a/train"),))
    for leader, dry_run, told in [(False, False, []), (True, True, []),
                                  (True, False, [("team-a/train", "FederatorStay")])]:  # fmt: skip
        onprem = onprem_with("train")
        await telling.tell_decisions(PartsLike(onprem, leader=leader, dry_run=dry_run), report)  # type: ignore[arg-type]
        assert onprem.events == told, (leader, dry_run)


async def test_memory_follows_the_queue_a_job_decided_again_later_is_news() -> None:
    """A job no pass decides any more (started, bursted, deleted) is forgotten; a pass that
    decided nothing because the caches were not ready forgets nothing."""
    onprem = onprem_with("a", "b")
    told = telling.decision_deduplicator()

    async def tell(now: float, *keys: str, skipped: str = "") -> int:
        report = PassReport(now=now, decisions=tuple(decision(k) for k in keys), skipped=skipped)
        return await telling.post_decision_events(onprem, told, report)

    assert await tell(0.0, "team-a/a", "team-a/b") == 2
    assert await tell(5.0, "team-a/a") == 0  # b started on-prem: not decided, forgotten
    assert await tell(10.0, skipped="on-prem cache not synced yet") == 0
    assert await tell(15.0, "team-a/a", "team-a/b") == 1  # only b is news again


async def test_no_event_is_posted_once_the_write_fence_closed_the_rest_are_posted_later() -> None:
    onprem = onprem_with("a", "b", "c")
    told = telling.decision_deduplicator()
    report = PassReport(
        now=0.0, decisions=tuple(decision(k) for k in ("team-a/a", "team-a/b", "team-a/c"))
    )
    asked = iter([True, False, False])  # the fence closes after the first post
    posted = await telling.post_decision_events(onprem, told, report, may_write=lambda: next(asked))
    assert (posted, len(onprem.events)) == (1, 1)
    later = PassReport(now=5.0, decisions=report.decisions)
    assert await telling.post_decision_events(onprem, told, later) == 2, "the two stopped are news"
