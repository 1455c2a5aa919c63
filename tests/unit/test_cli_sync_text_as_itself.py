"""`federator sync dataset|models` print keys, locations, names and stores' errors as they are.

rich reads `[...]` as markup: before, a key `shards/[train]/p0` printed as `shards//p0`, and an
error holding `[/x]` raised MarkupError, a traceback instead of the report. The copier and the
registry's round are replaced; nothing is contacted."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from federator import cli
from federator.storage import registry, stores
from federator.storage.registry import SyncBackReport
from federator.syncing.plans import SyncPlan, SyncReport
from federator.syncing.throttling import LimiterStats
from tests.support.configs import offline_sandbox_policy

# Legal in an S3 key, a prefix or an error text; markup to rich.
FROM_OUTSIDE = ["shards/[train]/p0", "a: [/x]"]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return offline_sandbox_policy(tmp_path)


@pytest.fixture(autouse=True)
def unbroken_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)


class Copier:
    """Source and target under a prefix of `value`; plans one delete note and fails one key."""

    def __init__(self, value: str) -> None:
        self.source = f"onprem:s3://onprem-datasets/{value}/"
        self.target = f"cloud-a:s3://cloud-a-datasets/{value}/"
        self.value = value

    def run(self, *, dry_run: bool, on_plan: Any, on_bytes: Any) -> SyncReport:
        plan = SyncPlan((), 0, (), (), f"deletes held back under {self.value}")
        on_plan(plan)
        stats = LimiterStats(f"http://{self.value}", 8, 4, 2, 3, 1, 0)
        failure = (f"{self.value}/x.tar", f"NoSuchKey: {self.value}")
        return SyncReport(plan, 0.0, False, failures=(failure,), throttling=(stats,))


@pytest.mark.parametrize("value", FROM_OUTSIDE)
def test_sync_dataset_prints_keys_locations_and_errors_whole(
    value: str,
    config: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stores.Stores, "dataset_copier", lambda *_: Copier(value))
    argv = ["sync", "-c", str(config), "dataset", "imagenet-mini", "--to", "cloud-a"]
    assert cli.main(argv) == 1
    lines = capsys.readouterr().err.splitlines()
    source, target = (
        f"onprem:s3://onprem-datasets/{value}/",
        f"cloud-a:s3://cloud-a-datasets/{value}/",
    )
    assert f"imagenet-mini: {source} -> {target}" in lines
    assert f"  deletes held back under {value}" in lines
    assert any(line.startswith(f"throttled http://{value} answered 3 ") for line in lines)
    assert f"failed {value}/x.tar: NoSuchKey: {value}" in lines


@pytest.mark.parametrize("value", FROM_OUTSIDE)
def test_sync_models_prints_locations_names_and_errors_whole(
    value: str,
    config: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    where = SimpleNamespace(location=f"cloud-a:s3://staging/{value}/")
    monkeypatch.setattr(stores.Stores, "staging", lambda *_: where)
    monkeypatch.setattr(stores.Stores, "registry", lambda *_: where)
    report = SyncBackReport(
        (f"{value}@1",), 0, 1, 0, 4, ((f"{value}@2", f"denied: {value}"),), 1, (f"{value}@3",)
    )
    monkeypatch.setattr(registry, "sync_back", lambda source, target: report)
    assert cli.main(["sync", "-c", str(config), "models", "--from", "cloud-a"]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert f"copied {value}@1" in lines
    assert f"failed {value}@2: denied: {value}" in lines
    assert f"left {value}@3: not reached before the stop" in lines
