"""`federator sync dataset|models`: the `failed ...` lines on stderr carry the error through the
log redactor, as the `--json` document does. Before, only the document was redacted: a key or a
presigned URL's signature in a store's error reached the terminal or the CI log whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from federator import logs
from federator.storage.registry import SyncBackReport
from federator.syncing.plans import SyncReport
from tests.support.configs import offline_sandbox_policy
from tests.unit.test_cli_sync_json import (
    LISTED_AT,
    PLAN,
    copies_as,
    rounds_as,
    sync_dataset,
    sync_models,
)

SECRET = "s3cr3t-access-key-value"  # registered, as the daemon and the CLI register credentials
SIGNATURE = "X-Amz-Signature=" + "0123456789abcdef" * 4  # a presigned URL's, by its shape


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return offline_sandbox_policy(tmp_path)


@pytest.fixture(autouse=True)
def unbroken_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)


@pytest.fixture(autouse=True)
def registered_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "_registered_secrets", set())  # this test's secret, not later ones'
    logs.register_secrets([SECRET])


ERROR = f"ClientError: denied for {SECRET} at https://b.s3.amazonaws.com/b.tar?{SIGNATURE}"
SHOWN = (
    f"ClientError: denied for {logs.REDACTED} at https://b.s3.amazonaws.com/b.tar?{logs.REDACTED}"
)


@pytest.mark.parametrize("flags", [(), ("--json",)])
def test_a_failed_objects_line_on_stderr_is_redacted(
    flags: tuple[str, ...],
    config: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    failures = (("b.tar", ERROR),)
    report = SyncReport(
        PLAN, LISTED_AT, dry_run=False, copied=1, bytes_copied=1000, failures=failures
    )
    copies_as(monkeypatch, report)
    code, _, err = sync_dataset(capsys, config, *flags)
    assert code == 1
    assert SECRET not in err
    assert SIGNATURE not in err
    assert f"failed b.tar: {SHOWN}" in err.splitlines()


@pytest.mark.parametrize("flags", [(), ("--json",)])
def test_a_failed_versions_line_on_stderr_is_redacted(
    flags: tuple[str, ...],
    config: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rounds_as(monkeypatch, SyncBackReport((), 0, 0, 0, 0, (("bert@2", ERROR),)))
    code, _, err = sync_models(capsys, config, *flags)
    assert code == 1
    assert SECRET not in err
    assert SIGNATURE not in err
    assert f"failed bert@2: {SHOWN}" in err.splitlines()
