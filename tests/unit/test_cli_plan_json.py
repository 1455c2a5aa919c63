"""`federator plan --json`: the pass's decisions as data, in the shape of /debug/decisions.

Scripts and CI checks read the same decisions the table shows; one parser must read both this
and what a running daemon serves at /debug/decisions, so a record here is the web's record of
the same decision. Before this, `--json` did not exist (argparse refused it, exit 2).
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer

from federator import cli, daemon, logs, web
from federator.core.decisions import Decision, DecisionKind

PASS_AT = 1_764_555_000.0  # the pass's `now`: 2025-12-01T02:10:00Z

BURST = Decision(
    job_key="team-a/train-7",
    kind=DecisionKind.BURST,
    cluster="cloud-a",
    pool="a100-spot",
    expected_cost_usd=12.5,
    expected_wait_s=90.0,
    expected_completion_s=3690.0,
    terms={"compute_usd": 10.0, "wait_usd": 2.5},
    reason="on-prem wait 6h costs more than a100-spot at $1.20/GPU-h",
)
NEVER_FITS = Decision(
    job_key="team-b/too-big",
    kind=DecisionKind.STAY,
    cluster=None,
    pool=None,
    expected_cost_usd=0.0,
    expected_wait_s=math.inf,
    expected_completion_s=math.inf,
    terms={"wait_usd": math.inf},
    reason="never fits on-prem",
)


def planned(
    monkeypatch: pytest.MonkeyPatch, decisions: list[Decision], *, skipped: str = ""
) -> None:
    """daemon.plan answers without clusters; like the real one, it configures logging and
    warns (the on-prem probe skips a missing policy file)."""

    async def plan(config_path: Path) -> tuple[list[Decision], SimpleNamespace]:
        logs.configure(level="WARNING", stream=sys.stderr)
        structlog.get_logger("federator.test").warning("price_stale", pool="cloud-b/h100")
        return decisions, SimpleNamespace(now=PASS_AT, skipped=skipped)

    monkeypatch.setattr(daemon, "plan", plan)


def plan_json(capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, Any], str]:
    assert cli.main(["plan", "--config", "policy.yaml", "--json"]) == 0
    captured = capsys.readouterr()
    return json.loads(captured.out), captured.err


def test_a_burst_is_every_field_of_the_decision(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    planned(monkeypatch, [BURST])
    document, _ = plan_json(capsys)
    assert document["count"] == 1
    assert document["note"] is None
    assert document["decisions"] == [
        {
            "decided_at": PASS_AT,
            "decided_at_iso": "2025-12-01T02:10:00Z",
            "job_key": "team-a/train-7",
            "kind": "burst",
            "cluster": "cloud-a",
            "pool": "a100-spot",
            "expected_cost_usd": 12.5,
            "expected_wait_s": 90.0,
            "expected_completion_s": 3690.0,
            "terms": {"compute_usd": 10.0, "wait_usd": 2.5},
            "reason": "on-prem wait 6h costs more than a100-spot at $1.20/GPU-h",
            "acted": False,
        }
    ]


def test_an_infinite_wait_is_null_and_the_order_is_the_pass_order(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    planned(monkeypatch, [BURST, NEVER_FITS])
    assert cli.main(["plan", "--config", "policy.yaml", "--json"]) == 0
    out = capsys.readouterr().out
    assert "Infinity" not in out
    document = json.loads(out)
    assert document["count"] == 2
    assert [d["job_key"] for d in document["decisions"]] == ["team-a/train-7", "team-b/too-big"]
    stay = document["decisions"][1]
    assert stay["kind"] == "stay"
    assert (stay["cluster"], stay["pool"]) == (None, None)
    assert stay["expected_wait_s"] is None
    assert stay["expected_completion_s"] is None
    assert stay["terms"] == {"wait_usd": None}


def test_the_skipped_note_is_in_the_document_and_logs_stay_on_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    planned(monkeypatch, [], skipped="on-prem cache not synced yet")
    document, err = plan_json(capsys)  # json.loads of the whole of stdout: nothing else there
    assert document == {"count": 0, "decisions": [], "note": "on-prem cache not synced yet"}
    assert "price_stale" in err


def test_a_record_is_what_a_dry_run_daemon_serves_for_the_same_decision(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Equal whole: the daemon stamps a record with its pass's `now` as plan does, and a
    dry-run daemon (or a follower) records acted=false, which plan always is. Against a
    leader's record only `acted` differs (plan writes nothing)."""
    planned(monkeypatch, [BURST, NEVER_FITS])
    document, _ = plan_json(capsys)

    dry_run = asyncio.run(served([BURST, NEVER_FITS], acted=False))
    leader = asyncio.run(served([BURST, NEVER_FITS], acted=True))

    # The web serves newest first; a pass records its decisions in order.
    assert document["decisions"] == list(reversed(dry_run["decisions"]))
    as_if_acted = [{**record, "acted": True} for record in document["decisions"]]
    assert as_if_acted == list(reversed(leader["decisions"]))


async def served(decisions: list[Decision], *, acted: bool) -> dict[str, Any]:
    log = web.DecisionLog()
    for decision in decisions:
        log.record(web.DecisionRecord.of(decision, decided_at=PASS_AT, acted=acted))
    ready = web.Readiness(config_loaded=True, onprem_reachable=True, leadership_known=True)
    app = web.make_app(lambda: ready, log)
    async with TestClient(TestServer(app)) as client:
        body: dict[str, Any] = await (await client.get("/debug/decisions")).json()
    return body


def test_without_json_the_table_is_unchanged(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    planned(monkeypatch, [BURST])
    monkeypatch.delenv("COLUMNS", raising=False)
    assert cli.main(["plan", "--config", "policy.yaml"]) == 0
    assert "federator plan: 1 pending job" in capsys.readouterr().out.splitlines()
