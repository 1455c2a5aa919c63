"""The leader's model sync-back loop: a round a shutdown cuts short is not logged as a fault."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
import structlog.testing

from federator.daemon import loops
from federator.storage.retrying import RetriesStopped
from federator.syncing import modelsync


def parts() -> Any:
    registry = SimpleNamespace(checkpoint_sync_interval=timedelta(0))
    return SimpleNamespace(
        holder=SimpleNamespace(config=SimpleNamespace(registry=registry)),
        stores=SimpleNamespace(cloud_clusters=lambda: ["cloud-a"]),
        fence=SimpleNamespace(allows_writes=lambda: True),
    )


async def one_round_raising(error: Exception, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    stop = asyncio.Event()

    async def sync_once(*_: object) -> None:
        stop.set()
        raise error

    monkeypatch.setattr(modelsync, "sync_models_once", sync_once)
    with structlog.testing.capture_logs() as logged:
        await loops.sync_models_back(parts(), stop)
    return [entry for entry in logged if entry["event"].startswith("model_sync_back")]


async def test_a_round_stopped_by_a_shutdown_is_noted_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    logged = await one_round_raising(RetriesStopped("stopping"), monkeypatch)
    assert [(e["event"], e["log_level"]) for e in logged] == [("model_sync_back_stopped", "info")]
    assert "exc_info" not in logged[0]


async def test_any_other_failure_is_still_a_warning_with_its_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    logged = await one_round_raising(RuntimeError("store on fire"), monkeypatch)
    assert [(e["event"], e["log_level"]) for e in logged] == [("model_sync_back_failed", "warning")]
    assert logged[0]["exc_info"] is True


async def one_round_answering(
    results: list[modelsync.RoundResult], monkeypatch: pytest.MonkeyPatch
) -> list[Any]:
    stop = asyncio.Event()

    async def sync_once(*_: object) -> list[modelsync.RoundResult]:
        stop.set()
        return results

    monkeypatch.setattr(modelsync, "sync_models_once", sync_once)
    with structlog.testing.capture_logs() as logged:
        await loops.sync_models_back(parts(), stop)
    return [entry for entry in logged if entry["event"].startswith("model_")]


async def test_a_version_that_failed_to_come_home_is_a_warning_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """sync_back reports a bad version and goes on with the others; before, the loop dropped
    the report, so a version failing every round (a blob not matching its digest) was silent."""
    failed = modelsync.RoundResult(
        "cloud-a", ("bert@1",), 10, (("bert@2", "BlobMismatch: blob hashes to sha256:00"),)
    )
    logged = await one_round_answering([failed], monkeypatch)
    assert [(e["event"], e["log_level"]) for e in logged] == [
        ("model_version_sync_back_failed", "warning")
    ]
    assert logged[0]["version"] == "bert@2"
    assert logged[0]["cluster"] == "cloud-a"
    assert "BlobMismatch" in logged[0]["error"]


async def test_versions_a_stop_left_are_noted_and_a_clean_round_says_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clean = modelsync.RoundResult("cloud-a", ("bert@1",), 10, ())
    stopped = modelsync.RoundResult("cloud-b", ("bert@1",), 10, (), left_for_next_round=3)
    logged = await one_round_answering([clean, stopped], monkeypatch)
    assert [(e["event"], e["log_level"], e.get("left_for_next_round")) for e in logged] == [
        ("model_sync_back_stopped", "info", 3)
    ]
