"""`federator plan`: what federator would do right now, and why, without doing it."""

from __future__ import annotations

import argparse
import asyncio
import math
from pathlib import Path

DESCRIPTION = """\
Connect to the live clusters, observe the on-prem queue and the cloud pools once, and print
every pending job with the decision the cost model makes for it: stay on-prem, burst to a
pool, or hold — with the expected cost, the expected wait and a one-line reason. Nothing is
written anywhere (it is a dry-run pass).

example:
  federator plan --config config/sandbox.yaml
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="show what federator would do now for each pending job, and why",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", required=True, type=Path, help="the policy file (YAML)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from federator import daemon
    from federator.commands.output import wide_enough

    decisions, report = asyncio.run(daemon.plan(args.config))
    table = Table(title=f"federator plan: {len(decisions)} pending jobs")
    for column in ("job", "decision", "where", "expected cost", "expected wait", "reason"):
        table.add_column(column, overflow="fold")
    for d in decisions:
        where = f"{d.cluster}/{d.pool}" if d.cluster else "onprem"
        table.add_row(
            d.job_key,
            str(d.kind),
            where,
            f"${d.expected_cost_usd:,.2f}",
            _duration(d.expected_wait_s),
            d.reason,
        )
    console = wide_enough(Console(), table)
    console.print(table)
    if report.skipped:
        console.print(f"[yellow]note:[/] {report.skipped}")
    return 0


def _duration(seconds: float) -> str:
    """The wait as the reason column says it (28s, 12m, 6h10m): the sandbox's waits are
    seconds, which whole minutes showed as 0m."""
    from federator.core import reasons

    if not math.isfinite(seconds):
        return "never (no room on-prem)"
    return reasons.duration(seconds)
