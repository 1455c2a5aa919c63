"""`federator sync` redirected to a file (as a newcomer keeps a dry run's plan): its lines stay
whole. The copier is replaced; nothing is contacted."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from federator import cli
from federator.storage import stores
from tests.support.configs import offline_sandbox_policy

SOURCE = "onprem:s3://onprem-datasets/imagenet-mini/"
TARGET = "cloud-a:s3://cloud-a-datasets/imagenet-mini/"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return offline_sandbox_policy(tmp_path)


class PlannedCopier:
    """Lists 16 objects already there and copies nothing, as a dry run on the sandbox does."""

    source, target = SOURCE, TARGET

    def run(self, *, dry_run: bool, on_plan: Any, on_bytes: Any) -> Any:
        on_plan(SimpleNamespace(copies=[], bytes_to_copy=0, skipped=16, deletes=[], delete_note=""))
        return SimpleNamespace(dry_run=dry_run, ok=True)


def test_a_dry_run_redirected_keeps_source_and_target_on_one_line(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr(stores.Stores, "dataset_copier", lambda *_: PlannedCopier())
    argv = ["sync", "-c", str(config), "dataset", "imagenet-mini", "--to", "cloud-a", "--dry-run"]
    assert cli.main(argv) == 0
    lines = capsys.readouterr().err.splitlines()
    assert f"imagenet-mini: {SOURCE} -> {TARGET}" in lines
    assert "plan: copy 0 object(s), 0 B; 16 already there" in lines
    assert "dry run: nothing copied" in lines
