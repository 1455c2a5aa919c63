"""A tenant's monthly cap has one rule, `budgets.tenant_monthly_caps`, shared by the budget
warnings (`budgets.caps_of`) and `federator status` (which also lists tenants with no cap).

The rule: a tenant's own `budget_usd_per_month` wins, even $0 (no cloud at all); a tenant that
sets none, or has spend but no `tenants` entry, gets `budgets.default_tenant_usd_per_month`;
with no default it has no cap. status resolved it with its own copy of that rule before; this
pins the rule and that both readers of it agree.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from federator import budgets, policy
from federator.core.models import Spend
from tests.support import configs
from tests.unit.test_cli_status import JOBS, fleet_of, job, placed


def caps_policy(tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> policy.FederatorConfig:
    """The sandbox policy (tenants team-a $20,000 and team-b $10,000 a month), edited."""
    path = configs.offline_sandbox_policy(tmp_path)
    raw = yaml.safe_load(path.read_text())
    edit(raw)
    path.write_text(yaml.safe_dump(raw))
    return policy.load_policy(path)


def own_zero_other_unset(default: float | None) -> Callable[[dict[str, Any]], None]:
    def edit(raw: dict[str, Any]) -> None:
        raw["tenants"][0]["budget_usd_per_month"] = 0  # team-a: no cloud at all
        del raw["tenants"][1]["budget_usd_per_month"]  # team-b: sets none
        if default is not None:
            raw["budgets"]["default_tenant_usd_per_month"] = default

    return edit


def test_an_own_cap_wins_even_at_zero_and_a_tenant_without_one_gets_the_default(
    tmp_path: Path,
) -> None:
    config = caps_policy(tmp_path, own_zero_other_unset(default=50))
    assert budgets.tenant_monthly_caps(config, ["team-c", "team-a"]) == {
        "team-a": 0.0,
        "team-b": 50.0,
        "team-c": 50.0,  # spend in a namespace no tenant names: the default too
    }
    assert list(budgets.tenant_monthly_caps(config, ["team-0"])) == [
        "team-0",
        "team-a",
        "team-b",
    ], "in name order, the policy's tenants listed without spend too"


def test_without_a_default_a_tenant_that_sets_no_cap_has_none(tmp_path: Path) -> None:
    config = caps_policy(tmp_path, own_zero_other_unset(default=None))
    assert budgets.tenant_monthly_caps(config, ["team-c"]) == {
        "team-a": 0.0,
        "team-b": None,
        "team-c": None,
    }


def test_the_warnings_and_status_read_the_same_caps(tmp_path: Path) -> None:
    config = caps_policy(tmp_path, own_zero_other_unset(default=None))
    spend = Spend(tenant_month_usd={"team-c": 3.0})
    warned = {c.scope: c.limit_usd for c in budgets.caps_of(config, spend)}
    assert warned == {"hour": 500.0, "day": 5000.0, "tenant:team-a": 0.0}, "no cap, no warning"

    fleet = fleet_of(config, {JOBS: {"items": [job("train", "team-a", placed())]}})
    shown = {b.scope: b.cap_usd for b in fleet.budgets if b.scope.startswith("tenant:")}
    assert shown == {"tenant:team-a": 0.0, "tenant:team-b": None}, "status lists no-cap tenants"
