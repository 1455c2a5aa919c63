"""How the command line ends when its reader goes away, and when the on-prem cluster does not
answer: quietly, with the exit code a script can act on."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from federator import cli, daemon, errors
from federator.daemon import serving

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "argv",
    [
        ["schema"],
        [
            "prices",
            "--config",
            str(REPO / "config" / "federator.example.yaml"),
            "--offline",
            "--json",
        ],
        # Tables: rich's console ended these with exit 1 before `output.new_console`.
        ["prices", "--config", str(REPO / "config" / "federator.example.yaml"), "--offline"],
        ["sandbox", "status"],
    ],
)
def test_a_closed_stdout_ends_the_command_quietly_as_sigpipe_does(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # `federator ... | head -1` once head has exited
    with os.fdopen(write_end, "w") as stdout:
        stderr = io.StringIO()
        monkeypatch.setattr(sys, "stdout", stdout)
        monkeypatch.setattr(sys, "stderr", stderr)
        code = cli.main(argv)
        stdout.write("more")
        stdout.flush()  # what is left is dropped: the flush at exit does not fail again
    assert code == 141  # 128 + SIGPIPE, what a shell reports for a tool SIGPIPE ended
    assert "Traceback" not in stderr.getvalue()


def onprem_that_never_syncs() -> Any:
    health = SimpleNamespace(problem="ClientConnectorError: Cannot connect to 127.0.0.1:1")
    cluster = SimpleNamespace(name="onprem", health=health)
    return SimpleNamespace(onprem=SimpleNamespace(synced=False, cluster=cluster))


async def test_an_on_prem_cluster_that_does_not_answer_is_transient() -> None:
    with pytest.raises(errors.ClusterUnavailable) as raised:
        await serving._wait_synced(onprem_that_never_syncs(), timeout_s=0.0)
    message = str(raised.value)
    assert "onprem" in message
    assert "did not sync" in message
    assert "127.0.0.1:1" in message


def test_run_once_against_an_on_prem_cluster_that_does_not_answer_exits_1_with_a_retry_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def run(*_: Any, **__: Any) -> int:
        await serving._wait_synced(onprem_that_never_syncs(), timeout_s=0.0)
        return 0

    monkeypatch.setattr(daemon, "run", run)
    code = cli.main(["run", "--once", "--config", "policy.yaml"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.startswith("federator: error: cluster onprem is unavailable:")
    assert err.rstrip().endswith("this may pass: retry later")
    assert "Traceback" not in err
