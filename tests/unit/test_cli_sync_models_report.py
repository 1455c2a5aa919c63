"""`federator sync models` says when its round did not bring every staged version home: the
versions a stop left for the next round are counted and named, the summary says the round is
incomplete, and the command exits 1. The registry's round is replaced; nothing is contacted.

Before, the report printed only what was copied and what failed: a round stopped with three
versions left read "1 version(s) copied ..." and exited 0."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from federator import cli
from federator.storage import registry
from federator.storage.registry import SyncBackReport
from federator.syncing import manifests
from federator.syncing.manifests import Manifest
from tests.support.configs import offline_sandbox_policy
from tests.unit.storage.test_registry_retries import (
    CLOUD,
    ONPREM,
    WHOLE,
    FaultyS3,
    StopsAtFirstManifest,
    blob,
)
from tests.unit.storage.test_registry_retries import registry as open_registry


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return offline_sandbox_policy(tmp_path)


def rounds_as(monkeypatch: pytest.MonkeyPatch, report: SyncBackReport) -> None:
    monkeypatch.setattr(registry, "sync_back", lambda source, target: report)


def run(capsys: pytest.CaptureFixture[str], config: Path) -> tuple[int, list[str]]:
    code = cli.main(["sync", "-c", str(config), "models", "--from", "cloud-a"])
    return code, capsys.readouterr().err.splitlines()


def test_versions_a_stop_left_are_counted_named_and_make_the_round_incomplete(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    left = ("bert@2", "bert@3", "gpt@1")
    rounds_as(monkeypatch, SyncBackReport(("bert@1",), 2, 1, 0, 2048, (), 3, left))
    code, lines = run(capsys, config)
    assert code == 1
    assert lines == [
        "copied bert@1",
        "1 version(s) copied (1 blob(s), 2.0 KiB), 2 already on-prem, 3 left for the next round",
        "left bert@2: not reached before the stop",
        "left bert@3: not reached before the stop",
        "left gpt@1: not reached before the stop",
        "incomplete: 3 version(s) not brought home (0 failed, 3 left by the stop); "
        "the next run tries them again",
    ]


def test_a_failed_version_makes_the_round_incomplete_too(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    failures = (("bert@2", "BlobMismatch: sha256 differs"),)
    rounds_as(monkeypatch, SyncBackReport(("bert@1",), 0, 1, 0, 10, failures))
    code, lines = run(capsys, config)
    assert code == 1
    assert lines[-2:] == [
        "failed bert@2: BlobMismatch: sha256 differs",
        "incomplete: 1 version(s) not brought home (1 failed, 0 left by the stop); "
        "the next run tries them again",
    ]


def test_a_complete_round_says_nothing_of_a_next_round_and_exits_0(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rounds_as(monkeypatch, SyncBackReport(("bert@1",), 4, 1, 0, 10, ()))
    assert run(capsys, config) == (
        0,
        ["copied bert@1", "1 version(s) copied (1 blob(s), 10 B), 4 already on-prem"],
    )


def test_sync_back_names_the_versions_it_left() -> None:
    """The registry's round names what it did not reach, in the order it would have copied."""
    staging = FaultyS3()
    for number in range(1, 4):
        data, entry = blob(WHOLE, seed=number)
        staging.objects["registry/" + manifests.blob_key(entry.digest)] = (data, "e")
        key = "registry/" + manifests.manifest_key("bert", str(number))
        manifest = Manifest("bert", str(number), (entry,), "2026-11-30", {})
        staging.objects[key] = (manifests.encode(manifest), "m")
    stopping = threading.Event()
    report = registry.sync_back(
        open_registry(staging, CLOUD, stopping),
        open_registry(StopsAtFirstManifest(stopping), ONPREM, stopping),
    )
    assert report.versions_copied == ("bert@1",)
    assert (report.left_for_next_round, report.versions_left) == (2, ("bert@2", "bert@3"))
