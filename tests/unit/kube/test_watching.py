"""Reflector bookkeeping: events, bookmarks and our own writes update the cache correctly."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
import structlog.testing
from kubernetes_asyncio.client.rest import ApiException

from federator import errors
from federator.kube import errors as kube_errors
from federator.kube.clients import Cluster
from federator.kube.watching import JOBS, Reflector


def reflector() -> Reflector:
    return Reflector(Cluster("onprem", api=None), JOBS)  # type: ignore[arg-type]


def job(name: str, version: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": version}}


def test_events_add_modify_and_delete_objects() -> None:
    r = reflector()
    r._apply({"type": "ADDED", "raw_object": job("a", "5")})
    r._apply({"type": "MODIFIED", "raw_object": job("a", "6")})
    r._apply({"type": "ADDED", "raw_object": job("b", "7")})
    r._apply({"type": "DELETED", "raw_object": job("b", "8")})
    assert list(r.items) == ["ns/a"]
    assert r.items["ns/a"]["metadata"]["resourceVersion"] == "6"
    assert r.resource_version == "8"


def test_a_bookmark_moves_the_resource_version_and_nothing_else() -> None:
    r = reflector()
    r._apply({"type": "ADDED", "raw_object": job("a", "5")})
    r._apply({"type": "BOOKMARK", "raw_object": {"metadata": {"resourceVersion": "99"}}})
    assert r.resource_version == "99"
    assert list(r.items) == ["ns/a"]


def test_our_own_write_never_replaces_a_newer_watched_version() -> None:
    r = reflector()
    r._apply({"type": "MODIFIED", "raw_object": job("a", "10")})
    r.put(job("a", "9"))
    assert r.items["ns/a"]["metadata"]["resourceVersion"] == "10"
    r.put(job("a", "11"))
    assert r.items["ns/a"]["metadata"]["resourceVersion"] == "11"


def test_api_errors_become_reasons_callers_handle() -> None:
    assert isinstance(kube_errors.translate("c", ApiException(status=409)), kube_errors.Conflict)
    created = kube_errors.translate("c", ApiException(status=409), creating=True)
    assert isinstance(created, kube_errors.AlreadyExists)
    assert isinstance(kube_errors.translate("c", ApiException(status=410)), kube_errors.Gone)
    assert isinstance(kube_errors.translate("c", ApiException(status=404)), kube_errors.NotFound)
    assert isinstance(kube_errors.translate("c", ApiException(status=403)), kube_errors.Refused)
    assert isinstance(
        kube_errors.translate("c", ApiException(status=503)), errors.ClusterUnavailable
    )
    refused = aiohttp.ClientConnectionError("connection refused")
    assert isinstance(kube_errors.translate("c", refused), errors.ClusterUnavailable)


def test_a_failing_cluster_is_marked_down_once_and_up_again() -> None:
    now = [100.0]
    cluster = Cluster("cloud-b", api=None, clock=lambda: now[0])  # type: ignore[arg-type]
    cluster.failure(aiohttp.ClientConnectionError("refused"), False)
    now[0] = 130.0
    cluster.failure(aiohttp.ClientConnectionError("refused"), False)
    assert not cluster.health.up
    assert cluster.health.down_since == 100.0, "down since the first failure"
    cluster.health.mark_ok()
    assert cluster.health.up
    assert cluster.health.down_since is None


async def test_a_refusing_apiserver_is_one_warning_with_its_answer_not_a_traceback() -> None:
    r = reflector()
    r._max_backoff_s = 0.0

    async def refuse() -> None:
        raise errors.CredentialsRefused("onprem", "401 Unauthorized")

    r.relist = refuse  # type: ignore[method-assign]
    with structlog.testing.capture_logs() as logged:
        task = asyncio.create_task(r.run())
        await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    refused = [e for e in logged if e["event"] == "reflector_refused"]
    assert refused
    assert refused[0]["status"] == 401
    assert "exc_info" not in refused[0]
    assert not [e for e in logged if e["event"] == "reflector_failed"]
    assert not r.cluster.health.up
