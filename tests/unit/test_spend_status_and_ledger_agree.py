"""`federator status` and the federation's budgets count the same spend for the same records.

Both call `charges.count_spend`; this pins that what status shows per period (spent plus
committed) is the `Spend` the loop's `SpendLedger` hands the cost model, book included."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from federator import policy
from federator.commands import status
from federator.core.models import OnPremState, PendingJob, Spend
from federator.federation.ports import OnPremJob, OnPremView
from federator.federation.records import Phase, PlacementRecord
from federator.federation.spend_ledger import SpendLedger
from federator.federation.spending import Contribution, SpendBook
from tests.support import configs
from tests.unit.test_cli_status import NOW, job, placed

BOOK = SpendBook(
    day="2026-11-30",
    month="2026-11",
    gone_today_usd=5.0,
    gone_month_usd={"team-b": 7.0},
    seen={"uid-vanished": Contribution(1.0, 2.0, "team-b")},
)
RECORDS = {  # (name, namespace): record
    ("train", "team-a"): placed(),
    ("tune", "team-a"): placed(placed_at=NOW - 900, cluster="cloud-b"),
    ("eval", "team-b"): placed(phase="requeued", not_before=NOW + 60, earlier_usd=4.0),
    ("old", "team-b"): placed(phase="done", finished_at=NOW - 600),
    ("solo", "no-tenant"): placed(placed_at=NOW - 3600 * 13),  # since before midnight
}


class Store:
    async def load(self) -> SpendBook:
        return BOOK

    async def save(self, book: SpendBook) -> None:
        raise AssertionError("not asked to save")


def onprem_job(name: str, namespace: str, tenant: str, record: PlacementRecord) -> OnPremJob:
    key = f"{namespace}/{name}"
    return OnPremJob(
        key=key,
        namespace=namespace,
        name=name,
        uid=f"uid-{name}",
        resource_version="1",
        gpus=record.gpus,
        record=record,
        spec=PendingJob(key=key, gpus=record.gpus, submitted_at=0.0, runtime_estimate_s=60,
                        tenant=tenant, namespace=namespace),
    )  # fmt: skip


def ledgers_spend(config: policy.FederatorConfig) -> Spend:
    def tenant_of(namespace: str) -> str:
        owner = config.tenant_of_namespace(namespace)
        return owner.name if owner is not None else namespace

    jobs = tuple(
        onprem_job(name, ns, tenant_of(ns), record) for (name, ns), record in RECORDS.items()
    )
    ledger = SpendLedger(Store(), may_write=lambda: False)
    asyncio.run(ledger.load())
    view = OnPremView(True, True, OnPremState(total_gpus=64, free_gpus=0), jobs=jobs)
    return ledger.spend(view, NOW)


def test_status_shows_per_period_what_the_budgets_count(tmp_path: Path) -> None:
    config = policy.load_policy(configs.offline_sandbox_policy(tmp_path))
    jobs: list[tuple[dict[str, Any], PlacementRecord]] = [
        (job(name, ns, record), record) for (name, ns), record in RECORDS.items()
    ]
    lines = status.budget_lines(config, jobs, BOOK, now=NOW)
    shown = {(line.scope, line.period): line.spent_usd + line.committed_usd for line in lines}
    spend = ledgers_spend(config)
    assert RECORDS["eval", "team-b"].phase is Phase.REQUEUED  # the record parsed as meant
    assert shown["all", "last hour"] == spend.last_hour_usd
    assert shown["all", "today"] == spend.today_usd
    tenants = {scope.removeprefix("tenant:"): usd for (scope, _), usd in shown.items()
               if scope.startswith("tenant:")}  # fmt: skip
    assert tenants == {**dict.fromkeys(tenants, 0.0), **spend.tenant_month_usd}
    assert set(spend.tenant_month_usd) == {"team-a", "team-b", "no-tenant"}
