"""Supervision edge cases: a port held by a process this sandbox did not start."""

from __future__ import annotations

from pathlib import Path

import pytest

from federator import sandbox as sandbox_api
from federator.sandbox import ComponentFailed, SandboxEnv

pytestmark = pytest.mark.sandbox


def test_up_of_a_second_checkout_names_who_holds_the_ports(
    sandbox: SandboxEnv, tmp_path: Path
) -> None:
    # The session's sandbox holds 18310; a sandbox under another root must refuse to start
    # rather than time out on a probe that the *other* server happens to answer.
    with pytest.raises(ComponentFailed) as refused:
        sandbox_api.up(root=tmp_path / ".sandbox", parts=frozenset({"s3"}), build=False)
    message = str(refused.value)
    assert "held by pid" in message
    assert "sandbox down" in message
    assert sandbox_api.Sandbox(sandbox_api.Layout(tmp_path / ".sandbox")).state.load() == {}
