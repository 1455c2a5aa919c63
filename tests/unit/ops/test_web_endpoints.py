"""The HTTP endpoints: what operators and the kubelet see, and what they must never see."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, Counter

from federator import web

READY = web.Readiness(config_loaded=True, onprem_reachable=True, leadership_known=True)


@dataclass(frozen=True)
class FakeDecision:
    """Shaped like federator.core's Decision; web only reads these fields."""

    job_key: str
    kind: str = "burst"
    cluster: str | None = "cloud-a"
    pool: str | None = "a100-spot"
    expected_cost_usd: float = 12.5
    expected_wait_s: float = 300.0
    expected_completion_s: float = 4000.0
    terms: Mapping[str, Any] = field(default_factory=lambda: {"compute_usd": 10.0, "wait_usd": 2.5})
    reason: str = "on-prem wait 6 h costs more than a100-spot at $1.20/GPU-h"


class Status:
    """A mutable status source, as the daemon's would be."""

    def __init__(self, readiness: web.Readiness) -> None:
        self.readiness = readiness

    def __call__(self) -> web.Readiness:
        return self.readiness


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("federator_test_events_total", "test", ["kind"], registry=registry).labels("a").inc(3)
    return registry


@pytest.fixture
def status() -> Status:
    return Status(READY)


@pytest.fixture
def decisions() -> web.DecisionLog:
    return web.DecisionLog(capacity=3)


@pytest.fixture
async def client(
    status: Status, decisions: web.DecisionLog, registry: CollectorRegistry
) -> AsyncIterator[TestClient[aiohttp.web.Request, aiohttp.web.Application]]:
    app = web.make_app(status, decisions, registry=registry)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_metrics_expose_the_given_registry(client: TestClient[Any, Any]) -> None:
    """/metrics is the Prometheus text format of the registry the app was built with."""
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert 'federator_test_events_total{kind="a"} 3.0' in await response.text()


async def test_metrics_default_to_the_federator_registry() -> None:
    """Without a registry argument the app serves federator.metrics.REGISTRY."""
    app = web.make_app(Status(READY), web.DecisionLog())
    async with TestClient(TestServer(app)) as test_client:
        text = await (await test_client.get("/metrics")).text()
    assert "# TYPE federator_decisions_total counter" in text


async def test_healthz_answers_while_not_ready(
    client: TestClient[Any, Any], status: Status
) -> None:
    """Liveness does not depend on readiness: a slow apiserver must not restart the pod."""
    status.readiness = web.Readiness(
        config_loaded=True, onprem_reachable=False, leadership_known=False
    )
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("config_loaded", "onprem_reachable", "leadership_known", "want_status"),
    [
        pytest.param(True, True, True, 200, id="all known: ready"),
        pytest.param(False, True, True, 503, id="no config yet"),
        pytest.param(True, False, True, 503, id="on-prem unreachable"),
        pytest.param(True, True, False, 503, id="leadership unknown"),
    ],
)
async def test_readyz_needs_config_onprem_and_leadership(
    client: TestClient[Any, Any],
    status: Status,
    config_loaded: bool,
    onprem_reachable: bool,
    leadership_known: bool,
    want_status: int,
) -> None:
    """Ready exactly when config is loaded, on-prem answers and leadership is known."""
    status.readiness = web.Readiness(config_loaded, onprem_reachable, leadership_known)
    response = await client.get("/readyz")
    body = await response.json()
    assert response.status == want_status
    assert body["ready"] is (want_status == 200)
    assert body["onprem_reachable"] is onprem_reachable


async def test_a_follower_is_ready(client: TestClient[Any, Any], status: Status) -> None:
    """Followers serve metrics and keep caches warm, so they count as ready."""
    status.readiness = web.Readiness(True, True, True, is_leader=False)
    assert (await client.get("/readyz")).status == 200


async def test_readyz_detail_is_redacted(client: TestClient[Any, Any], status: Status) -> None:
    """Even a status detail that quotes an error carrying a token shows no credential."""
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJmZWRlcmF0b3IifQ.c2lnbmF0dXJlcw"
    status.readiness = web.Readiness(True, False, True, detail=f"401 with Bearer {token}")
    assert token not in await (await client.get("/readyz")).text()


async def test_debug_decisions_show_newest_first_with_terms_and_reason(
    client: TestClient[Any, Any], decisions: web.DecisionLog
) -> None:
    """Each decision carries its cost breakdown and its one-line reason."""
    for n in range(2):
        decisions.record(
            web.DecisionRecord.of(FakeDecision(f"team-a/job-{n}"), decided_at=1000.0 + n)
        )
    body = await (await client.get("/debug/decisions")).json()
    assert body["count"] == 2
    newest = body["decisions"][0]
    assert newest["job_key"] == "team-a/job-1"
    assert newest["terms"] == {"compute_usd": 10.0, "wait_usd": 2.5}
    assert newest["reason"].startswith("on-prem wait")
    assert newest["decided_at_iso"] == "1970-01-01T00:16:41Z"


async def test_debug_decisions_are_bounded_by_the_ring_buffer(
    client: TestClient[Any, Any], decisions: web.DecisionLog
) -> None:
    """Only the last `capacity` decisions are kept; `limit` trims further."""
    for n in range(5):
        decisions.record(web.DecisionRecord.of(FakeDecision(f"q/j{n}"), decided_at=float(n)))
    everything = await (await client.get("/debug/decisions")).json()
    assert [d["job_key"] for d in everything["decisions"]] == ["q/j4", "q/j3", "q/j2"]
    one = await (await client.get("/debug/decisions?limit=1")).json()
    assert [d["job_key"] for d in one["decisions"]] == ["q/j4"]


@pytest.mark.parametrize("limit", ["0", "-1", "ten", "1e3"])
async def test_a_bad_limit_is_a_clear_400(client: TestClient[Any, Any], limit: str) -> None:
    """A malformed limit is refused with a message, not a traceback."""
    response = await client.get(f"/debug/decisions?limit={limit}")
    assert response.status == 400
    assert "limit must be a positive integer" in await response.text()


async def test_infinite_values_become_null_json(
    client: TestClient[Any, Any], decisions: web.DecisionLog
) -> None:
    """An infinite expected wait ("never fits on-prem") is valid JSON (null), not Infinity."""
    decision = FakeDecision(
        "q/j", kind="hold", expected_wait_s=math.inf, terms={"wait_usd": math.nan}
    )
    decisions.record(web.DecisionRecord.of(decision, decided_at=0.0, acted=False))
    text = await (await client.get("/debug/decisions")).text()
    assert "Infinity" not in text
    assert "NaN" not in text
    (record,) = (await (await client.get("/debug/decisions")).json())["decisions"]
    assert record["expected_wait_s"] is None
    assert record["acted"] is False


@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/readyz", "/debug/decisions"])
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_no_endpoint_accepts_writes(
    client: TestClient[Any, Any], path: str, method: str
) -> None:
    """Every endpoint is read-only."""
    assert (await client.request(method, path)).status == 405


async def test_serving_binds_a_port_and_releases_it(
    status: Status, decisions: web.DecisionLog
) -> None:
    """The composition root's context manager serves until the block ends."""
    async with web.serving("127.0.0.1", 0, status, decisions) as (host, port):
        assert port > 0
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://{host}:{port}/healthz") as response,
        ):
            assert response.status == 200
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(f"http://{host}:{port}/healthz")


def test_a_decision_log_needs_room() -> None:
    """A zero-capacity ring buffer is a programming error."""
    with pytest.raises(ValueError, match="at least one"):
        web.DecisionLog(capacity=0)
