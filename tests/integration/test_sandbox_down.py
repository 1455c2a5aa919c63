"""`federator sandbox down` stops every process and frees every port; `up` brings it back.

This test takes the whole sandbox away, so conftest.py runs it after every other test, and
it brings the sandbox back up before returning (other test files and engineers reuse it).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from federator import sandbox as sandbox_api
from federator.sandbox import Sandbox, SandboxEnv
from federator.sandbox.layout import Layout
from federator.sandbox.supervisor import is_alive

pytestmark = [pytest.mark.sandbox, pytest.mark.sandbox_teardown, pytest.mark.timeout(600)]


def test_down_leaves_no_process_and_no_port_then_up_restores(sandbox: SandboxEnv) -> None:
    box = Sandbox(Layout(sandbox.root))
    recorded = list(box.state.load().values())
    assert recorded, "the sandbox fixture should have recorded running processes"

    result = subprocess.run(
        [sys.executable, "-m", "federator", "sandbox", "down"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Exit 0 means no sandbox port was listening once everything had stopped (checked under
    # the sandbox lock: a concurrent `up` from another test run cannot blur it).
    assert result.returncode == 0, result.stderr
    assert "no sandbox port is listening" in result.stderr
    assert [r.key for r in recorded if is_alive(r)] == []

    parts = frozenset(
        {"s3"} | ({"clusters", "kueue"} if any("/apiserver" in r.key for r in recorded) else set())
    )
    sandbox_api.up(root=sandbox.root, parts=parts)
    assert all(row.running for row in box.status() if row.key in {r.key for r in recorded})
