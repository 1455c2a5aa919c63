"""`federator plan` answers on stdout (a table, or `--json` a script parses), so the warnings
its pass logs go to stderr: on stdout they broke the JSON document and pushed the table down."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import structlog

from federator.daemon import serving


class Assembled(Exception):
    """Stops the pass once logging is set up: no cluster is needed to see where lines go."""


def test_the_warnings_of_a_plan_pass_go_to_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(serving, "PolicyHolder", lambda path: path)

    async def assemble(holder: object, *, dry_run: bool) -> None:
        assert dry_run
        structlog.get_logger("federator.test").warning("price_stale", pool="cloud-b/h100")
        raise Assembled

    monkeypatch.setattr(serving, "assemble", assemble)
    with pytest.raises(Assembled):
        asyncio.run(serving.plan(tmp_path / "policy.yaml"))

    captured = capsys.readouterr()
    assert "price_stale" in captured.err
    assert captured.out == ""
