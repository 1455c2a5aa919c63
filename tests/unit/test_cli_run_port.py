"""`federator run` when its HTTP port is taken (a second `run` of the same file): one line naming
the file and server.port, exit 2, no traceback. Other OS errors stay bugs with tracebacks."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

from federator import cli, daemon

BIND = "error while attempting to bind on address ('127.0.0.1', 18090): address already in use"


def failing_with(error: OSError) -> Any:
    async def run(config: Path, **_: Any) -> int:
        raise error

    return run


def test_a_taken_port_is_a_mistake_naming_the_file_and_server_port(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(daemon, "run", failing_with(OSError(errno.EADDRINUSE, BIND)))
    assert cli.main(["run", "--config", "config/sandbox.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"federator: error: config/sandbox.yaml: server: {BIND}; ")
    assert "server.port" in err
    assert "Traceback" not in err


def test_another_os_error_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daemon, "run", failing_with(OSError(errno.EMFILE, "too many open files")))
    with pytest.raises(OSError, match="too many open files"):
        cli.main(["run", "--config", "config/sandbox.yaml"])
