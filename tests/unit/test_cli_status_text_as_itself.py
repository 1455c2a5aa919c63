"""`federator status` prints what it read from the cluster as it is: the instance, the Lease's
holder, job names, placements, mirrored states, tenants, block causes. rich reads `[...]` as
markup: before, `shards/[train]/p0` lost its `[train]` and `[/x]` raised MarkupError, a
traceback. The view is given a `FleetStatus`; nothing is contacted."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from federator.commands import status_view
from federator.commands.status_fleet import (
    BlockedPool,
    BudgetLine,
    BurstedJob,
    FleetStatus,
    Leader,
    OrphanCopy,
)

NOW = 1_796_000_000.0
FROM_OUTSIDE = ["shards/[train]/p0", "a: [/x]"]


def fleet(value: str, *, named: str = "sandbox") -> FleetStatus:
    """`value` in every table cell from outside; `named` the instance and the Lease holder."""
    job = BurstedJob(
        job=f"team-a/{value}",
        cluster=value,
        pool=value,
        attempt=1,
        preemptions=0,
        phase="placed",
        remote_state=f"Running {value}",
        placed_at=NOW - 600,
        not_before=0.0,
        expected_usd=None,
        accrued_usd=None,
    )
    return FleetStatus(
        instance=named,
        now=NOW,
        election_enabled=True,
        leader=Leader(holder=named, renewed_at=NOW - 5, lease_duration_s=15.0),
        jobs=(job,),
        budgets=(BudgetLine(f"tenant:{value}", "this month", 1.0, 0.0, None),),
        blocks=(BlockedPool(value, value, NOW + 600, f"preempted {value}", f"team-a/{value}"),),
        orphans=(OrphanCopy("cloud-b", "team-a", value, NOW - 600, 8.0, 1.33),),
    )


def printed(status: FleetStatus) -> list[str]:
    out = io.StringIO()
    status_view.print_status(status, Console(file=out, width=400))
    return out.getvalue().splitlines()


@pytest.mark.parametrize("value", FROM_OUTSIDE)
def test_status_prints_the_instance_and_the_leader_whole(value: str) -> None:
    lines = printed(fleet("plain", named=value))
    assert lines[0] == f"federator status: instance {value}"
    assert lines[1].startswith(f"leader: {value} (renewed ")


@pytest.mark.parametrize("value", FROM_OUTSIDE)
def test_status_tables_print_what_the_cluster_holds_whole(value: str) -> None:
    lines = printed(fleet(value))
    job = next(line for line in lines if line.startswith(f"│ team-a/{value} "))
    assert f"│ {value}/{value} " in job
    assert f"│ Running {value} " in job
    assert any(line.startswith(f"│ tenant:{value} ") for line in lines)
    block = next(line for line in lines if line.startswith(f"│ {value}/{value} "))
    assert f"│ preempted {value} " in block
    assert f"│ team-a/{value} " in block
    assert any(line.startswith(f"│ cloud-b/team-a/{value} ") for line in lines), "orphan copy"
