"""Fixes from the daemon review: the election loop against an apiserver that is down or slow,
releasing the lease at shutdown, budget metrics and log lines, and the debug endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import selectors
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import aiohttp
import pytest
import structlog.testing
import yaml
from aiohttp.test_utils import TestClient, TestServer
from kubernetes_asyncio import client
from kubernetes_asyncio.client.rest import ApiException
from kubernetes_asyncio.leaderelection import leaderelection
from kubernetes_asyncio.leaderelection.leaderelectionrecord import LeaderElectionRecord
from prometheus_client import CollectorRegistry

from federator import budgets, leadership, metrics, policy, web
from federator.core.models import Spend
from tests.support.configs import sandbox_config

REPO = Path(__file__).resolve().parents[3]

# ---- 1. the election loop against an apiserver that is down or slow --------------------------


# The fastest timings the policy (and the Kubernetes client) accept, with their margins:
# retry period >= 1 s, renew deadline > 1.2 x retry period, lease > renew deadline + retry.
FAST = leadership.ElectionSettings(
    namespace="federator",
    identity="me",
    lease_duration_s=4.5,
    renew_deadline_s=3.0,
    retry_period_s=1.0,
)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def api_at(port: int) -> client.ApiClient:
    return client.ApiClient(client.Configuration(host=f"http://127.0.0.1:{port}"))


class SimulatedClock:
    def __init__(self) -> None:
        self.now = 0.0


class _JumpingSelector(selectors.DefaultSelector):
    """Answers at once; when nothing is ready, moves the clock to the loop's next timer."""

    def __init__(self, clock: SimulatedClock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            raise RuntimeError("every task waits and no timer is set: the test would hang")
        self._clock.now += timeout
        return ready


class SimulatedTimeLoop(asyncio.SelectorEventLoop):
    """An event loop on simulated time: whenever every task waits, its clock jumps to the next
    timer. Retry periods, request timeouts and sleeps of seconds take no real time, and what
    happened when is exact, whatever the machine's load."""

    def __init__(self) -> None:
        self.clock = SimulatedClock()
        super().__init__(_JumpingSelector(self.clock))

    def time(self) -> float:
        return self.clock.now


T = TypeVar("T")


def in_simulated_time(monkeypatch: pytest.MonkeyPatch, main: Coroutine[Any, Any, T]) -> T:
    """Run `main` on a SimulatedTimeLoop; the election library's deadline clock (time.time in
    its module) follows the same simulated clock."""
    loop = SimulatedTimeLoop()
    wall = SimpleNamespace(time=lambda: 1_700_000_000.0 + loop.time())
    monkeypatch.setattr(leaderelection, "time", wall)
    try:
        return loop.run_until_complete(main)
    finally:
        loop.close()


class FakeLeases:
    """An in-memory Lease API; `slow_reads` makes that many next GETs hang for `delay_s`,
    `refused` makes every GET fail as a refused connection. Its bound methods replace
    CoordinationV1Api's, so they get no API instance as `self`."""

    def __init__(self) -> None:
        self.lease: Any = None
        self.slow_reads = 0
        self.delay_s = 0.0
        self.refused = False
        self.reads: list[float] = []  # when each GET came, on the loop's clock
        self.stop: asyncio.Event | None = None  # set after 50 reads: a busy loop must end

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        api = client.CoordinationV1Api
        monkeypatch.setattr(api, "read_namespaced_lease", self._read, raising=True)
        monkeypatch.setattr(api, "create_namespaced_lease", self._create, raising=True)
        monkeypatch.setattr(api, "replace_namespaced_lease", self._replace, raising=True)

    async def _read(self, name: str, namespace: str, **_: Any) -> Any:
        self.reads.append(asyncio.get_running_loop().time())
        if len(self.reads) >= 50 and self.stop is not None:
            self.stop.set()
        await asyncio.sleep(0)  # a real request yields to the loop at least once
        if self.refused:
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 443)")
        if self.slow_reads:
            self.slow_reads -= 1
            await asyncio.sleep(self.delay_s)
        if self.lease is None:
            error = ApiException(status=404, reason="Not Found")
            error.body = json.dumps({"code": 404})
            raise error
        return copy.deepcopy(self.lease)

    async def _create(self, namespace: str, body: Any, **_: Any) -> Any:
        self.lease = _parsed_times(body)
        return body

    async def _replace(self, name: str, namespace: str, body: Any, **_: Any) -> Any:
        self.lease = _parsed_times(body)
        return body


def _parsed_times(body: Any) -> Any:
    """The apiserver answers with datetimes where the library sent ISO strings."""
    stored = copy.deepcopy(body)
    for name in ("acquire_time", "renew_time"):
        value = getattr(stored.spec, name)
        if isinstance(value, str):
            setattr(stored.spec, name, datetime.fromisoformat(value.rstrip("Z")))
    return stored


async def campaign_for(
    seconds: float, leases: FakeLeases, fence: leadership.Fence | None = None, during: Any = None
) -> tuple[list[dict[str, Any]], int]:
    """Run a campaign against `leases` for `seconds` of the loop's clock; return its log lines
    and how often `lead()` started."""
    stop = asyncio.Event()
    leases.stop = stop
    starts = 0
    fence = fence or leadership.Fence(FAST.renew_deadline_s, clock=asyncio.get_running_loop().time)
    api = client.ApiClient()

    async def lead() -> None:
        nonlocal starts
        starts += 1
        await stop.wait()

    try:
        with structlog.testing.capture_logs() as logged:
            task = asyncio.create_task(
                leadership.campaign(api, FAST, fence=fence, lead=lead, stop=stop)
            )
            if during is not None:
                await during()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), seconds)
            stop.set()
            await asyncio.wait_for(task, 5)
    finally:
        await api.close()
    return logged, starts


def test_a_refused_apiserver_is_retried_every_retry_period_not_in_a_busy_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before: a refused connection escaped the lock's get, ended the round and the campaign
    restarted at once (~400 rounds/s, a traceback each)."""
    leases = FakeLeases()
    leases.install(monkeypatch)
    leases.refused = True
    logged, starts = in_simulated_time(monkeypatch, campaign_for(2.5, leases))
    events = [line["event"] for line in logged]
    assert "leader_election_round_failed" not in events
    assert starts == 0
    # 2.5 s at a 1 s retry period: one read at 0, 1 and 2 s, each refused at once.
    assert leases.reads == [0.0, 1.0, 2.0]
    assert events.count("leader_lease_not_read") == 3


def test_one_slow_lease_read_does_not_end_leadership(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: a GET slower than the request timeout became ApiException(status=0) without a
    body, the library's assert failed, and the leader dropped the lease and re-ran `lead()`."""
    leases = FakeLeases()
    leases.install(monkeypatch)
    opened: list[bool] = []

    async def scenario() -> tuple[list[dict[str, Any]], int]:
        fence = leadership.Fence(FAST.renew_deadline_s, clock=asyncio.get_running_loop().time)

        async def one_slow_read_once_leading() -> None:
            await asyncio.sleep(0.5)
            opened.append(fence.allows_writes())
            leases.slow_reads, leases.delay_s = 1, 1.5  # slower than the 1 s request timeout

        found = await campaign_for(6.0, leases, fence, one_slow_read_once_leading)
        opened.append(fence.allows_writes())  # after the stop: closed
        return found

    logged, starts = in_simulated_time(monkeypatch, scenario())
    events = [line["event"] for line in logged]
    assert opened == [True, False]
    assert leases.slow_reads == 0
    assert "leader_election_round_failed" not in events
    # Renewals read at 0, 1 (too slow: given up at 2), then 3, 4, 5 and 6 s.
    assert events.count("leader_lease_not_read") == 1
    assert [round(t, 6) for t in leases.reads] == [0.0, 0.0, 1.0, 3.0, 4.0, 5.0, 6.0]
    assert events.count("leadership_lost") == 0
    assert events.count("leadership_released") == 1  # only the one at stop
    assert starts == 1


async def test_a_failed_read_always_has_the_body_the_library_parses() -> None:
    """A proxy's HTML 502, an empty body or a transport error: all `{"code": ...}` JSON."""
    html = ApiException(status=502, reason="Bad Gateway")
    html.body = "<html>bad gateway</html>"
    empty = ApiException(status=500, reason="Internal")
    for record in (html, empty, None):
        readable = leadership._readable(record)
        assert isinstance(json.loads(readable.body)["code"], int)
    status = ApiException(status=403, reason="Forbidden")
    status.body = json.dumps({"code": 403})
    assert leadership._readable(status) is status


async def test_a_lease_write_that_cannot_connect_is_a_failed_write_not_an_error() -> None:
    api = api_at(closed_port())
    fence = leadership.Fence(FAST.renew_deadline_s)
    lock = leadership._FencedLeaseLock(
        fence, 0.5, name="federator", namespace="federator", identity="me", api_client=api
    )
    record = LeaderElectionRecord("me", "3", "2020-01-01 00:00:00.000000", "2020-01-01 00:00:00.0")
    try:
        assert await lock.create("federator", "federator", record) is False
    finally:
        await api.close()
    assert not fence.allows_writes()


# ---- 2. releasing the lease at shutdown -------------------------------------------------------


@pytest.mark.parametrize("timeout_s", [0.3, None], ids=["given", "default"])
def test_release_gives_up_at_its_timeout_against_a_silent_apiserver(
    monkeypatch: pytest.MonkeyPatch, timeout_s: float | None
) -> None:
    """Before: no timeout (> 40 s against a server that accepts and never answers)."""
    leases = FakeLeases()
    leases.install(monkeypatch)
    leases.slow_reads, leases.delay_s = 1, 60.0  # answers after a minute

    async def release() -> tuple[bool, float]:
        api = client.ApiClient()
        try:
            if timeout_s is None:
                released = await leadership.release(api, FAST)
            else:
                released = await leadership.release(api, FAST, timeout_s=timeout_s)
        finally:
            await api.close()
        return released, asyncio.get_running_loop().time()

    with structlog.testing.capture_logs() as logged:
        released, gave_up_at = in_simulated_time(monkeypatch, release())
    assert released is False
    assert gave_up_at == pytest.approx(timeout_s or leadership.RELEASE_TIMEOUT_S)
    assert [line["event"] for line in logged] == ["leader_lease_not_released"]
    assert leadership.RELEASE_TIMEOUT_S <= 5.0  # within the 25 s shutdown with the 20 s grace


async def test_release_against_a_refused_connection_returns_false() -> None:
    """Before: ClientConnectorError escaped release() and ended the shutdown with a traceback."""
    api = api_at(closed_port())
    try:
        assert await leadership.release(api, FAST) is False
    finally:
        await api.close()


# ---- 3. the fence counts from when the renewal request started --------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_the_fence_counts_a_renewal_from_its_request_not_from_its_answer() -> None:
    """Before: a renewal answered 1.9 s late kept the fence open 1.9 s past renew_deadline
    after the apiserver committed it."""
    clock = FakeClock()
    fence = leadership.Fence(10.0, clock=clock)
    api = client.ApiClient()
    lock = leadership._FencedLeaseLock(
        fence, 2.0, name="f", namespace="f", identity="me", api_client=api
    )

    async def committed_then_answered_late() -> bool:
        clock.now += 1.9
        return True

    started = clock.now
    try:
        assert await lock._timed(committed_then_answered_late())
    finally:
        await api.close()
    clock.now = started + 9.9
    assert fence.allows_writes()
    clock.now = started + 10.0
    assert not fence.allows_writes()


@pytest.mark.parametrize("lease_s", [12.01, 12.4, 12.5, 13.0])
def test_the_lease_written_is_never_shorter_than_the_validated_one(lease_s: float) -> None:
    """The library writes whole seconds; rounding 12.4 s down to 12 s would leave no margin
    over renew_deadline 10 s + retry_period 2 s."""
    assert leadership.whole_lease_seconds(lease_s) >= lease_s


# ---- 4-6. budget metrics and log lines ---------------------------------------------------------


def budget_policy(tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> policy.FederatorConfig:
    raw = sandbox_config()
    raw["budgets"] = {"usd_per_hour": 100, "usd_per_day": 1000, "warn_at_fraction": 0.8}
    edit(raw)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(raw))
    return policy.load_policy(path)


def series(name: str, scope: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(name, {"scope": scope})


def test_every_configured_cap_has_its_warning_counter_at_zero_from_the_start(
    tmp_path: Path,
) -> None:
    """Before: the counter appeared with its first warning, already at 1, so
    `increase(...[1h]) > 0` missed that warning."""

    def edit(raw: dict[str, Any]) -> None:
        raw["tenants"][0]["name"] = "review-start-a"
        raw["tenants"][1]["name"] = "review-start-b"

    config = budget_policy(tmp_path, edit)
    scopes = budgets.scopes_of(config)
    assert {"hour", "day", "tenant:review-start-a", "tenant:review-start-b"} <= set(scopes)
    metrics.initialise(budget_scopes=scopes)
    for scope in ("tenant:review-start-a", "tenant:review-start-b"):
        assert series("federator_budget_warnings_total", scope) == 0.0


def test_a_cap_added_later_gets_its_warning_counter_at_zero_on_the_next_pass(
    tmp_path: Path,
) -> None:
    def edit(raw: dict[str, Any]) -> None:
        raw["tenants"][0]["name"] = "review-later"

    config = budget_policy(tmp_path, edit)
    assert series("federator_budget_warnings_total", "tenant:review-later") is None
    budgets.BudgetWarnings().observe(budgets.caps_of(config, Spend()), 0.8)
    assert series("federator_budget_warnings_total", "tenant:review-later") == 0.0


def test_a_tenant_cap_of_zero_is_a_cap_of_zero_not_the_default(tmp_path: Path) -> None:
    """Before: `limits.get(tenant) or default` read $0 as "no cap set"."""

    def edit(raw: dict[str, Any]) -> None:
        raw["tenants"][0]["budget_usd_per_month"] = 0
        raw["budgets"]["default_tenant_usd_per_month"] = 50

    config = budget_policy(tmp_path, edit)
    tenant = config.tenants[0].name
    caps = {cap.scope: cap.limit_usd for cap in budgets.caps_of(config, Spend())}
    assert caps[f"tenant:{tenant}"] == 0


def test_the_budget_warning_for_a_zero_cap_is_valid_json() -> None:
    """Before: used_fraction was inf, rendered as `Infinity`, which is not JSON."""
    cap = budgets.Cap("tenant:review-zero", 0.0, 3.0)
    with structlog.testing.capture_logs() as logged:
        crossed = budgets.BudgetWarnings().observe([cap], 0.8)
    assert crossed == [cap]
    (line,) = [line for line in logged if line["event"] == "budget_warning"]
    assert line["used_fraction"] is None
    json.dumps(line, allow_nan=False)
    assert "inf" not in cap.describe(0.8)


# ---- 7-8. the debug endpoint ----------------------------------------------------------------


@pytest.fixture
async def http() -> AsyncIterator[TestClient[aiohttp.web.Request, aiohttp.web.Application]]:
    ready = web.Readiness(config_loaded=True, onprem_reachable=True, leadership_known=True)
    app = web.make_app(lambda: ready, web.DecisionLog(3), registry=CollectorRegistry())
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


@pytest.mark.parametrize(
    "limit",
    ["%C2%B2", "%D9%A3", "1" * 5000, "9" * 101],
    ids=["superscript-two", "arabic-indic-three", "5000-digits", "101-digits"],
)
async def test_a_limit_int_cannot_read_is_a_400_not_a_500(
    http: TestClient[Any, Any], limit: str
) -> None:
    """Before: '²' passed isdigit() and int() raised; 5000 digits passed and int() refused."""
    response = await http.get(f"/debug/decisions?limit={limit}")
    assert response.status == 400
    assert "limit must be a positive integer" in await response.text()


async def test_a_large_but_plain_limit_is_still_clamped_to_what_is_kept(
    http: TestClient[Any, Any],
) -> None:
    response = await http.get(f"/debug/decisions?limit={'9' * 20}")
    assert response.status == 200


@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/readyz", "/debug/decisions"])
async def test_head_is_answered_like_get_as_the_operations_doc_says(
    http: TestClient[Any, Any], path: str
) -> None:
    """Monitoring checks send HEAD; the doc said every method but GET got 405."""
    response = await http.head(path)
    assert response.status == 200
    assert await response.read() == b""
    doc = (REPO / "docs" / "operations.md").read_text()
    endpoints = doc.split("## HTTP endpoints", 1)[1].split("\n## ", 1)[0]
    assert "a `HEAD` is answered like\nthe `GET`" in endpoints
