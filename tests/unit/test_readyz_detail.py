"""/readyz's `detail` says why a replica is not ready, never a fault that is gone.

Seen on the sandbox: after the on-prem apiserver was stopped and started again, both replicas
answered `"ready": true` beside the on-prem client's last error (`ClientConnectorError: Cannot
connect to host 127.0.0.1:16443` on one, `429 TooManyRequests: storage is (re)initializing` on
the other), which points an operator at an outage that had ended.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from federator import web

STALE = "ClientConnectorError: Cannot connect to host 127.0.0.1:16443 ssl:default"


class Status:
    def __init__(self) -> None:
        self.readiness = web.Readiness(True, True, True)

    def __call__(self) -> web.Readiness:
        return self.readiness


@pytest.fixture
def status() -> Status:
    return Status()


@pytest.fixture
async def client(status: Status) -> AsyncIterator[TestClient[Any, Any]]:
    app = web.make_app(status, web.DecisionLog(), registry=CollectorRegistry())
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def readyz(client: TestClient[Any, Any]) -> tuple[int, dict[str, Any]]:
    response = await client.get("/readyz")
    body: dict[str, Any] = await response.json()
    return response.status, body


async def test_a_ready_replica_shows_no_stale_on_prem_error(
    client: TestClient[Any, Any], status: Status
) -> None:
    status.readiness = web.Readiness(True, True, True, is_leader=True, detail=STALE)
    assert await readyz(client) == (
        200,
        {
            "config_loaded": True,
            "onprem_reachable": True,
            "leadership_known": True,
            "is_leader": True,
            "detail": "",
            "ready": True,
        },
    )


async def test_an_unreachable_on_prem_is_told_with_its_error(
    client: TestClient[Any, Any], status: Status
) -> None:
    status.readiness = web.Readiness(True, False, True, detail=STALE)
    code, body = await readyz(client)
    assert code == 503
    assert body["detail"] == f"on-prem: {STALE}"


async def test_unknown_leadership_is_told_not_an_old_on_prem_error(
    client: TestClient[Any, Any], status: Status
) -> None:
    status.readiness = web.Readiness(True, True, False, detail=STALE)
    code, body = await readyz(client)
    assert code == 503
    assert body["detail"] == "leadership not known yet: the Lease has not been read"


async def test_on_prem_not_synced_without_an_error_still_says_why(
    client: TestClient[Any, Any], status: Status
) -> None:
    status.readiness = web.Readiness(True, False, True)
    assert (await readyz(client))[1]["detail"].startswith("on-prem: not answered yet")
