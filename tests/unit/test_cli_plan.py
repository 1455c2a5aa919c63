"""`federator plan` as a user reads it: the sandbox's waits of seconds, the table piped whole."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from federator import cli, daemon


def _decision(job_key: str, wait_s: float, reason: str) -> SimpleNamespace:
    return SimpleNamespace(
        job_key=job_key,
        kind="stay",
        cluster=None,
        pool=None,
        expected_cost_usd=0.07,
        expected_wait_s=wait_s,
        reason=reason,
    )


@pytest.fixture
def planned(monkeypatch: pytest.MonkeyPatch) -> None:
    """daemon.plan answers without clusters: two jobs waiting seconds, one that never fits."""
    decisions = [
        _decision("team-a/nc-train-3", 28.0, "stays on-prem: 28s expected wait worth $0.25"),
        _decision("team-b/a-rather-long-job-name-0042", 88.0, "stays on-prem: 1m expected wait"),
        _decision("team-b/too-big", math.inf, "never fits on-prem"),
    ]

    async def plan(config_path: Path) -> tuple[list[SimpleNamespace], SimpleNamespace]:
        return decisions, SimpleNamespace(skipped="")

    monkeypatch.setattr(daemon, "plan", plan)
    monkeypatch.delenv("COLUMNS", raising=False)


@pytest.mark.usefixtures("planned")
def test_a_wait_of_seconds_reads_as_seconds_not_0m(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["plan", "--config", "policy.yaml"]) == 0
    rows = {line.split("│")[1].strip(): line for line in capsys.readouterr().out.splitlines()
            if line.count("│") > 2}  # fmt: skip
    assert "│ 28s " in rows["team-a/nc-train-3"]
    assert "│ 1m " in rows["team-b/a-rather-long-job-name-0042"]
    assert "never (no room on-prem)" in rows["team-b/too-big"]


@pytest.mark.usefixtures("planned")
def test_piped_output_keeps_job_names_and_reasons_whole(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["plan", "--config", "policy.yaml"]) == 0
    out = capsys.readouterr().out
    for whole in (
        "team-b/a-rather-long-job-name-0042",
        "stays on-prem: 28s expected wait worth $0.25",
        "expected wait",
    ):
        assert whole in out
