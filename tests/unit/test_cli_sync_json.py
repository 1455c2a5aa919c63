"""`federator sync dataset ... --json` and `federator sync models ... --json`: one JSON document
on stdout with the plan's and the report's figures, while the lines for a person stay on stderr
exactly as without the flag. The copier and the registry's round are replaced; nothing is
contacted.

Before, neither action had `--json` (argparse refused it, exit 2): a cron job or a CI step had
to scrape the human lines on stderr for its figures."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from federator import cli, logs
from federator.storage import registry, stores
from federator.storage.registry import SyncBackReport
from federator.syncing.plans import CopyItem, CopyReason, SyncPlan, SyncReport
from federator.syncing.throttling import LimiterStats
from tests.support.configs import offline_sandbox_policy

SOURCE = "onprem:s3://onprem-datasets/imagenet-mini/"
TARGET = "cloud-a:s3://cloud-a-datasets/imagenet-mini/"
LISTED_AT = 1_795_000_000.0

PLAN = SyncPlan(
    copies=(
        CopyItem("a.tar", 1000, "e1", 1.0, CopyReason.MISSING),
        CopyItem("b.tar", 24, "e2", 2.0, CopyReason.SIZE_DIFFERS),
    ),
    skipped=16,
    deletes=("old.tar",),
    held_back_deletes=("older.tar", "oldest.tar"),
    delete_note="2 delete(s) held back: over the cap",
)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return offline_sandbox_policy(tmp_path)


@pytest.fixture(autouse=True)
def unbroken_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)


class ReportingCopier:
    """Plans PLAN and answers `report` (or, for a dry run, the dry run's report of PLAN)."""

    source, target = SOURCE, TARGET

    def __init__(self, report: SyncReport) -> None:
        self.report = report

    def run(self, *, dry_run: bool, on_plan: Any, on_bytes: Any) -> SyncReport:
        on_plan(self.report.plan)
        if dry_run:
            return SyncReport(self.report.plan, self.report.listed_at, dry_run=True)
        on_bytes(self.report.bytes_copied)
        return self.report


def copies_as(monkeypatch: pytest.MonkeyPatch, report: SyncReport) -> None:
    monkeypatch.setattr(stores.Stores, "dataset_copier", lambda *_: ReportingCopier(report))


def sync_dataset(
    capsys: pytest.CaptureFixture[str], config: Path, *flags: str
) -> tuple[int, str, str]:
    argv = ["sync", "-c", str(config), "dataset", "imagenet-mini", "--to", "cloud-a", *flags]
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def sync_models(
    capsys: pytest.CaptureFixture[str], config: Path, *flags: str
) -> tuple[int, str, str]:
    code = cli.main(["sync", "-c", str(config), "models", "--from", "cloud-a", *flags])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


PLAN_DOCUMENT = {
    "copies": 2,
    "bytes_to_copy": 1024,
    "skipped": 16,
    "deletes": 1,
    "held_back_deletes": 2,
    "delete_note": "2 delete(s) held back: over the cap",
}


def test_a_dry_run_writes_the_plan_and_no_report(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    copies_as(monkeypatch, SyncReport(PLAN, LISTED_AT, dry_run=False))
    code, out, _ = sync_dataset(capsys, config, "--dry-run", "--json")
    assert code == 0
    assert json.loads(out) == {
        "dataset": "imagenet-mini",
        "cluster": "cloud-a",
        "source": SOURCE,
        "target": TARGET,
        "dry_run": True,
        "listed_at": LISTED_AT,
        "plan": PLAN_DOCUMENT,
        "report": None,
        "complete": True,
    }


def test_a_run_writes_the_plan_and_the_report(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    throttled = LimiterStats("cloud-a", 16, 12, 4, 3, 2, 1)
    report = SyncReport(
        PLAN,
        LISTED_AT,
        dry_run=False,
        copied=2,
        bytes_copied=1024,
        resumed_parts=1,
        recopied_after_change=1,
        deleted=1,
        aborted_uploads=3,
        seconds=2.5,
        throttling=(throttled,),
    )
    copies_as(monkeypatch, report)
    code, out, _ = sync_dataset(capsys, config, "--json")
    assert code == 0
    document = json.loads(out)
    assert (document["dry_run"], document["plan"], document["complete"]) == (
        False,
        PLAN_DOCUMENT,
        True,
    )
    assert document["report"] == {
        "copied": 2,
        "bytes_copied": 1024,
        "resumed_parts": 1,
        "recopied_after_change": 1,
        "vanished": 0,
        "deleted": 1,
        "aborted_uploads": 3,
        "failures": [],
        "seconds": 2.5,
        "throttling": [
            {
                "endpoint": "cloud-a",
                "ceiling": 16,
                "limit": 12,
                "lowest": 4,
                "throttles": 3,
                "decreases": 2,
                "increases": 1,
            }
        ],
    }


def test_a_failed_object_is_listed_redacted_and_the_run_is_incomplete(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "s3cr3t-access-key-value"
    monkeypatch.setattr(logs, "_registered_secrets", set())  # this test's secret, not later ones'
    logs.register_secrets([secret])
    failures = (("b.tar", f"ClientError: denied for {secret}"),)
    report = SyncReport(
        PLAN, LISTED_AT, dry_run=False, copied=1, bytes_copied=1000, failures=failures
    )
    copies_as(monkeypatch, report)
    code, out, _ = sync_dataset(capsys, config, "--json")
    assert code == 1
    document = json.loads(out)
    assert document["complete"] is False
    assert (document["report"]["copied"], document["report"]["bytes_copied"]) == (1, 1000)
    assert document["report"]["failures"] == [
        {"key": "b.tar", "error": f"ClientError: denied for {logs.REDACTED}"}
    ]
    assert secret not in out


def test_infinite_and_nan_figures_are_written_as_null(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    report = SyncReport(PLAN, math.inf, dry_run=False, seconds=math.nan)
    copies_as(monkeypatch, report)
    _, out, _ = sync_dataset(capsys, config, "--json")
    document = json.loads(out, parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))
    assert (document["listed_at"], document["report"]["seconds"]) == (None, None)


@pytest.mark.parametrize("dry_run", [(), ("--dry-run",)])
def test_the_lines_on_stderr_are_the_same_with_and_without_json(
    dry_run: tuple[str, ...],
    config: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    failures = (("b.tar", "ClientError: denied"),)
    report = SyncReport(
        PLAN, LISTED_AT, dry_run=False, copied=1, bytes_copied=1000, failures=failures
    )
    copies_as(monkeypatch, report)
    plain = sync_dataset(capsys, config, *dry_run)
    with_json = sync_dataset(capsys, config, *dry_run, "--json")
    assert plain[1] == ""
    assert (with_json[0], with_json[2]) == (plain[0], plain[2])
    assert "plan: copy 2 object(s), 1.0 KiB; 16 already there" in plain[2].splitlines()


def test_a_mistake_writes_nothing_to_stdout(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["sync", "-c", str(config), "dataset", "no-such-set", "--to", "cloud-a", "--json"]
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no-such-set" in captured.err


def rounds_as(monkeypatch: pytest.MonkeyPatch, report: SyncBackReport) -> None:
    monkeypatch.setattr(registry, "sync_back", lambda source, target: report)


MODELS_ROUND = SyncBackReport(
    versions_copied=("bert@1",),
    versions_present=2,
    blobs_copied=3,
    blobs_present=1,
    bytes_copied=2048,
    failures=(("bert@2", "BlobMismatch: sha256 differs"),),
    left_for_next_round=2,
    versions_left=("bert@3", "gpt@1"),
)


def test_sync_models_writes_copied_failed_and_left_versions_and_is_incomplete(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rounds_as(monkeypatch, MODELS_ROUND)
    code, out, _ = sync_models(capsys, config, "--json")
    assert code == 1
    assert json.loads(out) == {
        "cluster": "cloud-a",
        "versions_copied": ["bert@1"],
        "versions_present": 2,
        "blobs_copied": 3,
        "blobs_present": 1,
        "bytes_copied": 2048,
        "failures": [{"name": "bert@2", "error": "BlobMismatch: sha256 differs"}],
        "left_for_next_round": 2,
        "versions_left": ["bert@3", "gpt@1"],
        "complete": False,
    }


def test_a_complete_models_round_says_so(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rounds_as(monkeypatch, SyncBackReport(("bert@1",), 4, 1, 0, 10, ()))
    code, out, _ = sync_models(capsys, config, "--json")
    assert (code, json.loads(out)["complete"]) == (0, True)


def test_sync_models_lines_on_stderr_are_the_same_with_and_without_json(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rounds_as(monkeypatch, MODELS_ROUND)
    plain = sync_models(capsys, config)
    with_json = sync_models(capsys, config, "--json")
    assert plain[1] == ""
    assert (with_json[0], with_json[2]) == (plain[0], plain[2])
    assert "left gpt@1: not reached before the stop" in plain[2].splitlines()
