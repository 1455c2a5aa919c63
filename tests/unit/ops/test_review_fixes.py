"""Fixes from the daemon review: budget metrics and log lines, and the debug endpoint."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog.testing
import yaml
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from federator import budgets, metrics, policy, web
from federator.core.models import Spend
from tests.support.configs import sandbox_config

REPO = Path(__file__).resolve().parents[3]

# ---- 4-6. budget metrics and log lines ---------------------------------------------------------


def budget_policy(tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> policy.FederatorConfig:
    raw = sandbox_config()
    raw["budgets"] = {"usd_per_hour": 100, "usd_per_day": 1000, "warn_at_fraction": 0.8}
    edit(raw)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(raw))
    return policy.load_policy(path)


def series(name: str, scope: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(name, {"scope": scope})


def test_every_configured_cap_has_its_warning_counter_at_zero_from_the_start(
    tmp_path: Path,
) -> None:
    """Before: the counter appeared with its first warning, already at 1, so
    `increase(...[1h]) > 0` missed that warning."""

    def edit(raw: dict[str, Any]) -> None:
        raw["tenants"][0]["name"] = "review-start-a"
        raw["tenants"][1]["name"] = "review-start-b"

    config = budget_policy(tmp_path, edit)
    scopes = budgets.scopes_of(config)
    assert {"hour", "day", "tenant:review-start-a", "tenant:review-start-b"} <= set(scopes)
    metrics.initialise(budget_scopes=scopes)
    for scope in ("tenant:review-start-a", "tenant:review-start-b"):
        assert series("federator_budget_warnings_total", scope) == 0.0


def test_a_cap_added_later_gets_its_warning_counter_at_zero_on_the_next_pass(
    tmp_path: Path,
) -> None:
    def edit(raw: dict[str, Any]) -> None:
        raw["tenants"][0]["name"] = "review-later"

    config = budget_policy(tmp_path, edit)
    assert series("federator_budget_warnings_total", "tenant:review-later") is None
    budgets.BudgetWarnings().observe(budgets.caps_of(config, Spend()), 0.8)
    assert series("federator_budget_warnings_total", "tenant:review-later") == 0.0


def test_a_tenant_cap_of_zero_is_a_cap_of_zero_not_the_default(tmp_path: Path) -> None:
    """Before: `limits.get(tenant) or default` read $0 as "no cap set"."""

    def edit(raw: dict[str, Any]) -> None:
        raw["tenants"][0]["budget_usd_per_month"] = 0
        raw["budgets"]["default_tenant_usd_per_month"] = 50

    config = budget_policy(tmp_path, edit)
    tenant = config.tenants[0].name
    caps = {cap.scope: cap.limit_usd for cap in budgets.caps_of(config, Spend())}
    assert caps[f"tenant:{tenant}"] == 0


def test_the_budget_warning_for_a_zero_cap_is_valid_json() -> None:
    """Before: used_fraction was inf, rendered as `Infinity`, which is not JSON."""
    cap = budgets.Cap("tenant:review-zero", 0.0, 3.0)
    with structlog.testing.capture_logs() as logged:
        crossed = budgets.BudgetWarnings().observe([cap], 0.8)
    assert crossed == [cap]
    (line,) = [line for line in logged if line["event"] == "budget_warning"]
    assert line["used_fraction"] is None
    json.dumps(line, allow_nan=False)
    assert "inf" not in cap.describe(0.8)


# ---- 7-8. the debug endpoint ----------------------------------------------------------------


@pytest.fixture
async def http() -> AsyncIterator[TestClient[aiohttp.web.Request, aiohttp.web.Application]]:
    ready = web.Readiness(config_loaded=True, onprem_reachable=True, leadership_known=True)
    app = web.make_app(lambda: ready, web.DecisionLog(3), registry=CollectorRegistry())
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


@pytest.mark.parametrize(
    "limit",
    ["%C2%B2", "%D9%A3", "1" * 5000, "9" * 101],
    ids=["superscript-two", "arabic-indic-three", "5000-digits", "101-digits"],
)
async def test_a_limit_int_cannot_read_is_a_400_not_a_500(
    http: TestClient[Any, Any], limit: str
) -> None:
    """Before: '²' passed isdigit() and int() raised; 5000 digits passed and int() refused."""
    response = await http.get(f"/debug/decisions?limit={limit}")
    assert response.status == 400
    assert "limit must be a positive integer" in await response.text()


async def test_a_large_but_plain_limit_is_still_clamped_to_what_is_kept(
    http: TestClient[Any, Any],
) -> None:
    response = await http.get(f"/debug/decisions?limit={'9' * 20}")
    assert response.status == 200


@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/readyz", "/debug/decisions"])
async def test_head_is_answered_like_get_as_the_operations_doc_says(
    http: TestClient[Any, Any], path: str
) -> None:
    """Monitoring checks send HEAD; the doc said every method but GET got 405."""
    response = await http.head(path)
    assert response.status == 200
    assert await response.read() == b""
    doc = (REPO / "docs" / "operations.md").read_text()
    endpoints = doc.split("## HTTP endpoints", 1)[1].split("\n## ", 1)[0]
    assert "a `HEAD` is answered like\nthe `GET`" in endpoints
