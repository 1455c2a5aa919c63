"""A write sent under the leader lease is given up before another replica may take the lease.

Before, the fence's margin (`lease_duration > renew_deadline + retry_period`, 15 > 10 + 2)
counted a request as taking at most `retry_period`, while every write went out with the 20 s
request timeout: a write sent at 9.9 s after the last renewal could be waited for until 29.9 s,
long after another replica could lead from 15 s on.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes_asyncio import client

from federator import errors, leadership
from federator.kube import clients
from federator.kube.clients import Cluster
from tests.unit.ops.test_review_fixes import FAST, FakeLeases

LEASE_S, RENEW_S = 15.0, 10.0  # the policy's defaults


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Timeouts:
    """An ApiClient that answers `{}` at once and notes each request's timeout."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, float | None]] = []

    async def call_api(self, path: str, method: str, **kwargs: Any) -> Any:
        self.sent.append((method, kwargs.get("_request_timeout")))
        return Answered()


class Answered:
    status = 200

    async def read(self) -> bytes:
        return b"{}"

    def release(self) -> None:
        pass


def leader_renewed_at_100() -> tuple[leadership.Fence, FakeClock]:
    clock = FakeClock()
    fence = leadership.Fence(RENEW_S, clock=clock)
    fence.mark_renewed()
    return fence, clock


def test_the_window_is_what_the_lease_has_left_since_the_renewal_was_sent() -> None:
    fence, clock = leader_renewed_at_100()
    clock.now = 109.9  # the fence still lets this write through
    assert fence.allows_writes()
    assert fence.write_window(LEASE_S) == pytest.approx(5.1)
    fence.mark_lost()
    assert fence.write_window(LEASE_S) == 0.0
    assert leadership.Fence(RENEW_S, always_open=True).write_window(LEASE_S) == float("inf")


@pytest.mark.parametrize("sent_at", [100.0, 105.0, 109.9])
async def test_a_write_the_fence_lets_through_ends_before_the_lease_can_pass(
    sent_at: float,
) -> None:
    fence, clock = leader_renewed_at_100()
    api = Timeouts()
    cluster = Cluster("cloud-a", api)  # type: ignore[arg-type]
    clock.now = sent_at
    assert fence.allows_writes()

    with clients.writes_within(lambda: fence.write_window(LEASE_S)):
        await cluster.request("PATCH", "/apis/batch/v1/namespaces/team-a/jobs/j", body={})

    ((_, timeout),) = api.sent
    assert timeout is not None
    assert 0 < timeout <= clients.REQUEST_TIMEOUT_S
    assert sent_at + timeout <= 100.0 + LEASE_S, "waited for past the lease"


async def test_reads_keep_the_usual_timeout_and_nothing_is_bounded_outside_a_campaign() -> None:
    fence, clock = leader_renewed_at_100()
    api = Timeouts()
    cluster = Cluster("cloud-a", api)  # type: ignore[arg-type]
    clock.now = 109.0
    with clients.writes_within(lambda: fence.write_window(LEASE_S)):
        await cluster.request("GET", "/apis/batch/v1/jobs")
    await cluster.request("DELETE", "/apis/batch/v1/namespaces/team-a/jobs/j")
    assert api.sent == [("GET", clients.REQUEST_TIMEOUT_S), ("DELETE", clients.REQUEST_TIMEOUT_S)]


async def test_a_write_with_no_lease_left_is_not_sent_and_the_cluster_stays_up() -> None:
    api = Timeouts()
    cluster = Cluster("cloud-a", api)  # type: ignore[arg-type]
    cluster.health.mark_ok()
    with clients.writes_within(lambda: 0.0), pytest.raises(errors.TransientError) as raised:
        await cluster.request("POST", "/apis/batch/v1/namespaces/team-a/jobs", body={})
    assert "not sent" in str(raised.value)
    assert api.sent == []
    assert cluster.health.up


def test_a_leader_campaign_bounds_the_writes_it_makes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The campaign is what sets the bound: a write made while leading (in `lead()`) gets no
    more than `lease_duration` (4.5 s here), not the usual 20 s."""
    leases = FakeLeases()
    leases.install(monkeypatch)
    api = Timeouts()
    cluster = Cluster("cloud-a", api)  # type: ignore[arg-type]

    async def scenario() -> None:
        stop = asyncio.Event()
        fence = leadership.Fence(FAST.renew_deadline_s, clock=asyncio.get_running_loop().time)

        async def lead() -> None:
            await cluster.request("PATCH", "/apis/batch/v1/namespaces/team-a/jobs/j", body={})
            stop.set()

        lease_api = client.ApiClient()
        try:
            await asyncio.wait_for(
                leadership.campaign(lease_api, FAST, fence=fence, lead=lead, stop=stop), 30
            )
        finally:
            await lease_api.close()

    asyncio.run(scenario())

    ((_, timeout),) = api.sent
    assert timeout is not None
    assert 0 < timeout <= FAST.lease_duration_s
    assert clients._lease_window() == float("inf"), "no bound once the campaign has ended"
