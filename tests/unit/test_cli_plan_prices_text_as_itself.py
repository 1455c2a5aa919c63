"""`federator plan` and `federator prices` print names, reasons, price sources, notes and AWS
errors as they are. rich reads `[...]` as markup: before, `shards/[train]/p0` lost its
`[train]` and `[/x]` raised MarkupError, a traceback. Nothing is contacted: daemon.plan and the
price builder are replaced."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from federator import cli, daemon
from federator.prices import live

FROM_OUTSIDE = ["shards/[train]/p0", "a: [/x]"]


@pytest.fixture(autouse=True)
def unbroken_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # cells whole, one table row a line


@pytest.mark.parametrize("value", FROM_OUTSIDE)
def test_plan_prints_job_place_reason_and_note_whole(
    value: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    decision = SimpleNamespace(
        job_key=f"team-a/{value}",
        kind="burst",
        cluster=value,
        pool=value,
        expected_cost_usd=1.0,
        expected_wait_s=30.0,
        reason=f"bursts: {value}",
    )

    async def plan(config_path: Path) -> tuple[list[Any], Any]:
        return [decision], SimpleNamespace(skipped=f"stopped mid-pass: {value}")

    monkeypatch.setattr(daemon, "plan", plan)
    assert cli.main(["plan", "--config", "policy.yaml"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith(f"│ team-a/{value} "))
    assert f"│ {value}/{value} " in row
    assert f"│ bursts: {value} " in row
    assert f"note: stopped mid-pass: {value}" in out.splitlines()


def pool_row(value: str) -> SimpleNamespace:
    return SimpleNamespace(
        key=f"cloud-a/{value}",
        gpu_type=value,
        capacity=SimpleNamespace(value="spot"),
        spot_usd_per_gpu_hour=1.0,
        on_demand_usd_per_gpu_hour=3.0,
        price_age_s=10.0,
        source=f"catalog:{value}.csv:2",
        preemption=SimpleNamespace(rate_per_hour=0.05, evidence=f"prior from {value}"),
        placement_score=None,
        free_gpus=8,
        refusal=SimpleNamespace(reason=SimpleNamespace(value="stale"), detail=f"old: {value}"),
        notes=(f"note: {value}",),
    )


@pytest.mark.parametrize("value", FROM_OUTSIDE)
def test_prices_prints_pools_sources_notes_and_aws_errors_whole(
    value: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pricing = SimpleNamespace(pool=SimpleNamespace(price=SimpleNamespace(source="aws-spot-api")))
    book = SimpleNamespace(offers=(), rows=(pool_row(value),))
    builder = SimpleNamespace(pricings=[pricing], build=lambda now: book)
    monkeypatch.setattr(live, "offer_builder", lambda *_, **__: builder)
    failed = {value: SimpleNamespace(failed={"us-east-1": f"AccessDenied: {value}"})}
    monkeypatch.setattr(live, "refresh_all", lambda *_: asyncio.sleep(0, failed))
    monkeypatch.setattr("federator.policy.load_policy", lambda _: None)
    assert cli.main(["prices", "--config", "policy.yaml"]) == 0
    out, err = capsys.readouterr()
    assert f"{value}: AWS us-east-1: AccessDenied: {value}" in err.splitlines()
    lines = out.splitlines()
    row = next(line for line in lines if line.startswith(f"│ cloud-a/{value} "))
    assert f"│ {value} " in row
    assert f"│ catalog:{value}.csv:2 " in row
    assert f"cloud-a/{value}: skipped: old: {value}" in lines
    assert f"cloud-a/{value}: note: {value}" in lines
    assert f"cloud-a/{value}: preemption prior from {value}" in lines
