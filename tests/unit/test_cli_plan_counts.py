"""`federator plan`'s first line, as an operator reads it on the sandbox (docs/sandbox.md).

On the sandbox with empty queues it printed a title over an empty table ("0 pending jobs" and
a frame with no row), and with one job "1 pending jobs"; the title was centred in blanks to the
table's width (leading and trailing spaces in piped output).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from federator import cli, daemon


def _stay(job_key: str) -> SimpleNamespace:
    return SimpleNamespace(
        job_key=job_key,
        kind="stay",
        cluster=None,
        pool=None,
        expected_cost_usd=0.07,
        expected_wait_s=28.0,
        reason="stays on-prem: 28s expected wait worth $0.25",
    )


def planned(monkeypatch: pytest.MonkeyPatch, decisions: list[SimpleNamespace]) -> None:
    """daemon.plan answers without clusters (the on-prem probe skips a missing policy file)."""

    async def plan(config_path: Path) -> tuple[list[SimpleNamespace], SimpleNamespace]:
        return decisions, SimpleNamespace(skipped="")

    monkeypatch.setattr(daemon, "plan", plan)
    monkeypatch.delenv("COLUMNS", raising=False)


def test_no_pending_job_is_one_line_not_an_empty_table(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    planned(monkeypatch, [])
    assert cli.main(["plan", "--config", "policy.yaml"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == "federator plan: no pending job in the watched on-prem queues"


def test_one_pending_job_is_singular(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    planned(monkeypatch, [_stay("team-a/only")])
    assert cli.main(["plan", "--config", "policy.yaml"]) == 0
    out = capsys.readouterr().out
    assert "federator plan: 1 pending job" in out.splitlines()[0]
    assert "1 pending jobs" not in out


def test_two_pending_jobs_are_plural(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    planned(monkeypatch, [_stay("team-a/one"), _stay("team-a/two")])
    assert cli.main(["plan", "--config", "policy.yaml"]) == 0
    assert "federator plan: 2 pending jobs" in capsys.readouterr().out


def test_the_title_is_a_line_of_its_own_without_blanks_around_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    planned(monkeypatch, [_stay("team-a/one"), _stay("team-a/two")])
    assert cli.main(["plan", "--config", "policy.yaml"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "federator plan: 2 pending jobs"
    assert [line for line in lines if line != line.rstrip()] == []
