"""The daemon's read-only HTTP face: metrics, probes for the kubelet, the recent decisions.

    GET /metrics           prometheus_client exposition of `federator.metrics.REGISTRY`
    GET /healthz           liveness: 200 whenever the event loop answers
    GET /readyz            readiness: 200 when config is loaded, on-prem answers and leadership
                           is known (a follower is ready: it serves metrics and keeps caches warm)
    GET /debug/decisions   the last N decisions as JSON, newest first, each with its cost terms
                           and reason (`?limit=N`)

There are no write endpoints, and nothing here can reach a credential: the daemon hands us a
status snapshot of booleans and a ring buffer of decision records, never its clients or config.
Free text (reasons, status details) still passes through `logs.redact_text` as a second guard.

`serving(...)` runs the app on our own event loop with aiohttp's AppRunner/TCPSite (aiohttp is
not the whole program here), paired setup/teardown in one async context manager.
"""

from __future__ import annotations

import collections
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

from federator import events, jsonsafe, logs, metrics

DEFAULT_DECISION_CAPACITY = 500


@dataclass(frozen=True, slots=True)
class Readiness:
    """What /readyz reports; the daemon builds one on demand from what it already knows."""

    config_loaded: bool
    onprem_reachable: bool
    leadership_known: bool
    is_leader: bool = False
    detail: str = ""  # one human line, e.g. why on-prem is unreachable

    @property
    def ready(self) -> bool:
        return self.config_loaded and self.onprem_reachable and self.leadership_known


StatusSource = Callable[[], Readiness]
"""Called on every /readyz request; must be cheap and must not block (no API calls)."""


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One decision as the operator sees it: what, where, at what expected cost, and why."""

    decided_at: float  # epoch seconds
    job_key: str
    kind: str
    cluster: str | None
    pool: str | None
    expected_cost_usd: float
    expected_wait_s: float
    expected_completion_s: float
    terms: Mapping[str, Any] = field(default_factory=dict)
    reason: str = ""
    acted: bool = True  # False in --dry-run and on followers: decided and explained, not applied

    @classmethod
    def of(
        cls, decision: events.DecisionLike, *, decided_at: float, acted: bool = True
    ) -> DecisionRecord:
        return cls(
            decided_at=decided_at,
            job_key=decision.job_key,
            kind=events.kind_of(decision),
            cluster=decision.cluster,
            pool=decision.pool,
            expected_cost_usd=decision.expected_cost_usd,
            expected_wait_s=decision.expected_wait_s,
            expected_completion_s=decision.expected_completion_s,
            terms=dict(decision.terms),
            reason=decision.reason,
            acted=acted,
        )


class DecisionLog:
    """The last `capacity` decisions, in memory; old ones fall off (bounded by construction)."""

    def __init__(self, capacity: int = DEFAULT_DECISION_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("a decision log needs room for at least one decision")
        self._records: collections.deque[DecisionRecord] = collections.deque(maxlen=capacity)

    @property
    def capacity(self) -> int:
        return self._records.maxlen or 0

    def record(self, record: DecisionRecord) -> None:
        self._records.append(record)

    def recent(self, limit: int | None = None) -> list[DecisionRecord]:
        """Newest first, at most `limit` (all when None)."""
        newest_first = list(reversed(self._records))
        return newest_first if limit is None else newest_first[:limit]


STATUS_KEY: web.AppKey[StatusSource] = web.AppKey("status")
DECISIONS_KEY = web.AppKey("decisions", DecisionLog)


def make_app(
    status: StatusSource,
    decisions: DecisionLog,
    *,
    registry: CollectorRegistry = metrics.REGISTRY,
) -> web.Application:
    """The aiohttp application; GET routes only. aiohttp answers a HEAD like the GET (headers,
    no body), which uptime checks expect, and 405 to any other method."""
    app = web.Application()
    app[STATUS_KEY] = status
    app[DECISIONS_KEY] = decisions
    app.router.add_get("/metrics", make_aiohttp_handler(registry))
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/debug/decisions", _debug_decisions)
    return app


async def _healthz(request: web.Request) -> web.Response:
    # Answering at all proves the event loop is not stuck; anything deeper belongs in /readyz,
    # so a slow apiserver never gets the pod restarted.
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    readiness = request.app[STATUS_KEY]()
    body = asdict(readiness) | {
        "ready": readiness.ready,
        "detail": logs.redact_text(_why_not_ready(readiness)),
    }
    return web.json_response(body, status=200 if readiness.ready else 503)


def _why_not_ready(readiness: Readiness) -> str:
    """The failed checks, in words; empty when ready.

    The daemon's `detail` is the on-prem client's error while it is down. It is told only
    while on-prem is the check that fails: beside another failed check (leadership, say) it
    would send the operator to the wrong fault."""
    reasons = []
    if not readiness.config_loaded:
        reasons.append("the policy is not loaded")
    if not readiness.onprem_reachable:
        reasons.append(
            f"on-prem: {readiness.detail}"
            if readiness.detail
            else "on-prem: not answered yet, or its caches are not synced"
        )
    if not readiness.leadership_known:
        reasons.append("leadership not known yet: the Lease has not been read")
    return "; ".join(reasons)


async def _debug_decisions(request: web.Request) -> web.Response:
    decisions = request.app[DECISIONS_KEY]
    limit = _parse_limit(request.query.get("limit"), maximum=decisions.capacity)
    records = [decision_json(record) for record in decisions.recent(limit)]
    return web.json_response({"count": len(records), "decisions": records})


MAX_LIMIT_DIGITS = 100
"""More digits than any useful `limit` (it is clamped to the capacity anyway); int() refuses
strings over 4300 digits, so longer ones are refused before reading them."""


def _parse_limit(raw: str | None, *, maximum: int) -> int:
    if raw is None:
        return maximum
    # isdigit() alone also takes '²' or Arabic-Indic digits, which int() then refuses or reads.
    plain_digits = raw.isascii() and raw.isdigit() and len(raw) <= MAX_LIMIT_DIGITS
    if not plain_digits or int(raw) < 1:
        raise web.HTTPBadRequest(
            text=f"limit must be a positive integer of at most {MAX_LIMIT_DIGITS} digits, "
            f"got {raw[:40]!r}"
        )
    return min(int(raw), maximum)


def decision_json(record: DecisionRecord) -> dict[str, Any]:
    """One decision as JSON-ready data: /debug/decisions serves these, and `federator plan
    --json` prints them, so that one parser reads both. The reason is redacted again here (a
    second guard) and infinite numbers become null."""
    body = asdict(record)
    body["reason"] = logs.redact_text(record.reason)
    # JSON has no inf/nan; an infinite expected wait ("never fits on-prem") becomes null.
    body["terms"] = jsonsafe.finite_within({str(k): v for k, v in record.terms.items()})
    for key in ("expected_cost_usd", "expected_wait_s", "expected_completion_s"):
        body[key] = jsonsafe.finite(body[key])
    body["decided_at_iso"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.decided_at))
    return body


@contextlib.asynccontextmanager
async def serving(
    host: str,
    port: int,
    status: StatusSource,
    decisions: DecisionLog,
    *,
    registry: CollectorRegistry = metrics.REGISTRY,
) -> AsyncIterator[tuple[str, int]]:
    """Serve the app on host:port until the block exits; yields the bound (host, port).

    port=0 picks a free port (tests). Teardown stops accepting and closes open connections.
    """
    # A short shutdown timeout: SIGTERM must finish within 25 s (issue 8), and a scrape in
    # flight is worth less than the daemon's own graceful shutdown.
    app = make_app(status, decisions, registry=registry)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        yield _bound_address(runner, fallback=(host, port))
    finally:
        await runner.cleanup()


def _bound_address(runner: web.AppRunner, *, fallback: tuple[str, int]) -> tuple[str, int]:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return str(address[0]), int(address[1])
    return fallback
