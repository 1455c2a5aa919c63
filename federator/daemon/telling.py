"""Telling users about decisions: the log line, /debug/decisions, Events and budget warnings.

After each federation pass the process explains itself: one log line and a /debug/decisions
record per decision, stay and hold decisions as Events on their jobs (once per piece of news,
see `federator.events`), and budget metrics and warnings (`federator.budgets`). Only a pass
whose actions were carried out (the leader's, not a dry run) counts decisions and posts
Events: every replica decides, and the Events are writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog

from federator import budgets, errors, events, jsonsafe, metrics, web
from federator.federation.federation import PassReport
from federator.federation.ports import OnPremPort

if TYPE_CHECKING:  # the parts are assembled with a deduplicator from here
    from federator.daemon.assembly import Parts

log = structlog.get_logger(__name__)


def record_decisions(parts: Parts, report: PassReport) -> None:
    """Feed /debug/decisions and the decision counters; one canonical log line per decision."""
    acted = parts.writes_allowed()
    for decision in report.decisions:
        if acted:  # every replica decides; one (the leader) counts, or dashboards sum twice
            metrics.DECISIONS.labels(decision=str(decision.kind)).inc()
        parts.decisions.record(web.DecisionRecord.of(decision, decided_at=report.now, acted=acted))
        log.info(
            "decision",
            job=decision.job_key,
            decision=str(decision.kind),
            cluster=decision.cluster,
            pool=decision.pool,
            expected_cost_usd=jsonsafe.finite(decision.expected_cost_usd, 2),
            expected_wait_s=jsonsafe.finite(decision.expected_wait_s, 0),
            reason=decision.reason,
        )


# Stay and hold decisions are told on the job as Events; a burst is told by the placement's
# own Event ("Bursted", posted by the federation when the copy exists), so it is only noted.
DECISION_EVENT_KINDS = frozenset({"stay", "hold"})
EVENT_WAIT_FACTOR = 4.0  # a wait estimate 4x longer or shorter than the one last told is news
EVENT_REPEAT_S = 45 * 60  # below the apiserver's default one-hour Event TTL
EVENT_POST_CONCURRENCY = 8


def decision_deduplicator() -> events.Deduplicator:
    return events.Deduplicator(
        capacity=100_000, wait_factor=EVENT_WAIT_FACTOR, repeat_after_s=EVENT_REPEAT_S
    )


async def tell_decisions(parts: Parts, report: PassReport) -> None:
    """Only a pass whose actions were carried out posts Events (an Event is a write)."""
    if parts.writes_allowed():
        await post_decision_events(
            parts.onprem, parts.decision_events, report, may_write=parts.writes_allowed
        )


async def post_decision_events(
    onprem: OnPremPort,
    told: events.Deduplicator,
    report: PassReport,
    *,
    may_write: Callable[[], bool] = lambda: True,
) -> int:
    """Post each stay or hold decision on its on-prem Job, when it is news (see `events`).

    A failed post, or one the write fence stopped (asked right before each post: the fence
    can close while they run), is forgotten by the deduplicator, so a later pass tries again.
    Returns how many Events were posted.
    """
    news: list[tuple[str, events.EventText]] = []
    if not report.skipped:  # a pass that decided: the jobs it did not decide are gone
        told.retain_only(decision.job_key for decision in report.decisions)
    for decision in report.decisions:
        is_news = told.should_post(decision.job_key, events.decision_news(decision), now=report.now)
        if is_news and events.kind_of(decision) in DECISION_EVENT_KINDS:
            news.append((decision.job_key, events.for_decision(decision)))
    if not news:
        return 0
    jobs = {job.key: job for job in (await onprem.snapshot(report.now)).jobs}
    gate = asyncio.Semaphore(EVENT_POST_CONCURRENCY)

    async def post(key: str, text: events.EventText) -> bool:
        job = jobs.get(key)
        if job is None:  # gone since the pass decided: nothing to tell
            told.forget(key)
            return False
        async with gate:
            if not may_write():
                told.forget(key)
                return False
            try:
                await onprem.event(
                    job, reason=text.reason, message=text.message, warning=text.warning
                )
            except errors.FederatorError as e:
                told.forget(key)
                log.warning("decision_event_not_posted", job=key, error=str(e))
                return False
        return True

    posted = await asyncio.gather(*(post(key, text) for key, text in news))
    return sum(posted)


async def watch_budgets(parts: Parts, report: PassReport) -> None:
    """Metrics for every cap; a warning (log, counter, Event) when spend crosses the line."""
    if report.spend is None:
        return
    config = parts.holder.config
    warn_at = config.budgets.warn_at_fraction
    telling = parts.writes_allowed()  # the leader tells; every replica keeps track
    caps = budgets.caps_of(config, report.spend)
    crossed = parts.budget_warnings.observe(caps, warn_at, telling=telling)
    if not crossed or not telling:
        return
    onprem = parts.clusters[config.onprem_cluster.name]
    stamp = datetime.fromtimestamp(report.now, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for cap in crossed:
        text = events.EventText("FederatorBudgetWarning", cap.describe(warn_at), warning=True)
        body = events.namespace_event(config.state_namespace, text, timestamp=stamp)
        try:
            await onprem.request(
                "POST", f"/api/v1/namespaces/{config.state_namespace}/events", body=body
            )
        except errors.FederatorError as e:
            log.warning("budget_event_not_posted", scope=cap.scope, error=str(e))
