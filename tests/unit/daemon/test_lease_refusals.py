"""What the leader election says when it cannot lead, and when it stops leading.

Found on the sandbox tour: without the state namespace, `federator run` logged the same
`leader_lease_not_created` (and the library's own "failed to create lock") every 2 s, 38 times
in 100 s, with a hint that did not name the namespace; a normal SIGTERM logged
`leadership_lost` as a warning; and releasing the never-created lease at exit logged a 404 with
every HTTP header of the answer."""

from __future__ import annotations

import logging

import pytest
import structlog.testing
from kubernetes_asyncio import client
from kubernetes_asyncio.client.rest import ApiException
from kubernetes_asyncio.leaderelection import leaderelection

from federator import leadership


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def refused(status: int, reason: str) -> ApiException:
    error = ApiException(status=status, reason=reason)
    error.headers = {"Audit-Id": "x", "Content-Type": "application/json"}  # type: ignore[assignment]
    return error


def test_a_missing_namespace_is_named_once_then_every_five_minutes_with_a_count() -> None:
    clock = Clock()
    refusals = leadership._RefusalLog(clock)
    with structlog.testing.capture_logs() as logged:
        for _ in range(30):  # a minute of 2 s retries
            refusals.refused(
                "federator/federator-leader", refused(404, "Not Found"), namespace="federator"
            )
            clock.now += 2.0
        clock.now = leadership.REFUSAL_REPEAT_S + 1.0
        refusals.refused(
            "federator/federator-leader", refused(404, "Not Found"), namespace="federator"
        )
    assert [(e["event"], e["status"]) for e in logged] == [
        ("leader_lease_not_created", 404),
        ("leader_lease_not_created", 404),
    ]
    assert "the namespace federator does not exist" in logged[0]["hint"]
    assert "refused_again_unlogged" not in logged[0]
    assert logged[1]["refused_again_unlogged"] == 29


def test_a_refusal_of_another_kind_is_logged_at_once_and_a_success_starts_afresh() -> None:
    clock = Clock()
    refusals = leadership._RefusalLog(clock)
    with structlog.testing.capture_logs() as logged:
        refusals.refused("ns/l", refused(404, "Not Found"), namespace="ns")
        refusals.refused("ns/l", refused(403, "Forbidden"), namespace="ns")
        refusals.cleared()
        refusals.refused("ns/l", refused(403, "Forbidden"), namespace="ns")
    assert [e["status"] for e in logged] == [404, 403, 403]
    assert "may not create Leases in ns" in logged[1]["hint"]


def test_stepping_down_at_shutdown_is_not_a_lost_leadership() -> None:
    fence = leadership.Fence(10.0)
    with structlog.testing.capture_logs() as logged:
        fence.mark_renewed()
        fence.mark_lost(stepping_down=True)
        fence.mark_renewed()
        fence.mark_lost()
    assert [(e["event"], e["log_level"]) for e in logged] == [
        ("leading", "info"),
        ("leadership_released", "info"),
        ("leading", "info"),
        ("leadership_lost", "warning"),
    ]


async def test_releasing_a_lease_that_was_never_created_says_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def absent(self: object, name: str, namespace: str) -> object:
        raise refused(404, "Not Found")

    monkeypatch.setattr(client.CoordinationV1Api, "read_namespaced_lease", absent)
    api = client.ApiClient()
    try:
        with structlog.testing.capture_logs() as logged:
            released = await leadership.release(api, leadership.ElectionSettings())
    finally:
        await api.close()
    assert released is False
    assert logged == []


def test_an_api_error_is_described_by_its_status_not_its_headers() -> None:
    text = leadership.described(refused(503, "Service Unavailable"))
    assert text == "ApiException: 503 Service Unavailable"
    assert "Audit-Id" not in text


def test_the_librarys_own_failed_to_create_lock_line_is_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    library = logging.getLogger(leaderelection.__name__)
    with caplog.at_level(logging.DEBUG, logger=leaderelection.__name__):
        library.error("%s failed to create lock", "federator")
        library.error("Error retrieving resource lock %s as %s", "federator-leader", "Forbidden")
    assert [r.getMessage() for r in caplog.records] == [
        "Error retrieving resource lock federator-leader as Forbidden"
    ]
