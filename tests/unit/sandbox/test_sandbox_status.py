"""`federator sandbox status` before the first `up`: every component listed as stopped, and
nothing written (no certificates to read yet, no store keys made)."""

from __future__ import annotations

from pathlib import Path

from federator.sandbox.layout import Layout
from federator.sandbox.orchestrator import Sandbox


def test_status_of_a_sandbox_never_started_lists_all_stopped_and_writes_nothing(
    tmp_path: Path,
) -> None:
    root = tmp_path / ".sandbox"

    rows = Sandbox(Layout(root)).status()

    assert len(rows) == 19
    assert not any(row.running for row in rows)
    assert all(row.pid is None for row in rows)
    assert not root.exists()


def test_status_reads_the_store_keys_an_up_wrote_without_changing_them(tmp_path: Path) -> None:
    layout = Layout(tmp_path / ".sandbox")
    keys = Sandbox(layout).stores()["onprem"].credentials  # what `up` makes first
    written = layout.credentials_file("onprem").read_bytes()

    status_stores = Sandbox(layout).stores(create_credentials=False)

    assert status_stores["onprem"].credentials == keys
    assert layout.credentials_file("onprem").read_bytes() == written
