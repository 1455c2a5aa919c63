"""`federator status` counts the lost copies of a Job back on-prem as the budgets do.

A job whose record was dropped keeps its lost copies on `federator.io/returned-record`; the
budgets count them while the Job exists (`charges.count_spend`), so the spend table must too
(review 2, finding 1)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

from federator import policy
from federator.commands import status
from federator.core.models import OnPremState
from federator.federation.ports import OnPremView
from federator.federation.records import LostCopy
from federator.federation.spend_ledger import SpendLedger
from federator.kube import convert
from tests.support import configs
from tests.unit.test_cli_status import NOW, job, placed
from tests.unit.test_spend_status_and_ledger_agree import BOOK, RECORDS, Store, onprem_job

LOST = LostCopy("cloud-b", "team-a", "home-uidhome-1", 1, usd_per_hour=24.0, since=NOW - 5400)
KEPT = placed(phase="requeued", cluster="cloud-b")
KEPT = replace(KEPT, lost_copies=(LOST,))


def home_job() -> dict[str, Any]:
    """Back on-prem: no record, the one it had kept with its lost copy."""
    kept = job("home", "team-a", KEPT)
    note = convert.returned_record_note(KEPT, "uid-home")
    kept["metadata"]["annotations"] = {convert.ANNOTATION_RETURNED_RECORD: note}
    return kept


def test_status_and_budgets_count_a_kept_lost_copy_alike(tmp_path: Path) -> None:
    config = policy.load_policy(configs.offline_sandbox_policy(tmp_path))
    jobs = [(job(name, ns, record), record) for (name, ns), record in RECORDS.items()]
    without = status.budget_lines(config, jobs, BOOK, now=NOW)
    lines = status.budget_lines(config, jobs, BOOK, now=NOW, kept=[home_job()])
    shown = {(line.scope, line.period): line.spent_usd + line.committed_usd for line in lines}
    before = {(line.scope, line.period): line.spent_usd + line.committed_usd for line in without}
    assert shown["all", "today"] - before["all", "today"] == 36.0, "1.5 h at $24"

    # the totals do not depend on the tenants: each job's namespace stands for its tenant
    views = [onprem_job(name, ns, ns, rec) for (name, ns), rec in RECORDS.items()]
    home = replace(onprem_job("home", "team-a", "team-a", KEPT), record=None, returned_record=KEPT)
    ledger = SpendLedger(Store(), may_write=lambda: False)
    asyncio.run(ledger.load())
    view = OnPremView(True, True, OnPremState(total_gpus=64, free_gpus=0), jobs=(*views, home))
    spend = ledger.spend(view, NOW)
    assert shown["all", "today"] == spend.today_usd
    assert shown["all", "last hour"] == spend.last_hour_usd
