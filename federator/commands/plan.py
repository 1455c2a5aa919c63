"""`federator plan`: what federator would do right now, and why, without doing it."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from federator.commands.options import add_policy_file_option
from federator.commands.output import literal, new_console

if TYPE_CHECKING:
    from rich.console import Console

    from federator.core.decisions import Decision
    from federator.federation.federation import PassReport

DESCRIPTION = """\
Connect to the live clusters, observe the on-prem queue and the cloud pools once, and print
every pending job with the decision the cost model makes for it: stay on-prem, burst to a
pool, or hold — with the expected cost, the expected wait and a one-line reason. Nothing is
written anywhere (it is a dry-run pass).

The on-prem apiserver is tried first (3 tries over 5 s): if it refuses the connection, its
name does not resolve, or it refuses the credentials, the command stops at once (exit 2)
saying so. An apiserver that is there but slow gets up to 60 s for the caches to fill; one
that stops answering within them ends the command with exit 1 (it may pass).

With --json, stdout is one JSON document and nothing else: {"count": N, "decisions": [...],
"note": ...}. Each decision has the shape the daemon serves at /debug/decisions (job_key, kind,
cluster, pool, expected_cost_usd, expected_wait_s, expected_completion_s, terms, reason,
acted, decided_at, decided_at_iso), in the order of the table; infinite values (a job that
never fits on-prem) are null, `acted` is false (plan writes nothing) and `note` says why the
pass stopped short ("on-prem cache not synced yet"), or is null. Warnings and logs go to stderr.

examples:
  federator plan --config config/sandbox.yaml
  federator plan --config config/sandbox.yaml --json \
      | jq -r '.decisions[] | select(.kind=="burst") | .job_key'    # the jobs it would burst
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="show what federator would do now for each pending job, and why",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_policy_file_option(parser, "the policy file (YAML)")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the decisions as one JSON document, each as /debug/decisions shows it",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.json:
        return _print_json(args.config)
    decisions, report = asyncio.run(_plan(args.config))
    console = _print_decisions(decisions)
    if report.skipped:
        console.print(f"[yellow]note:[/] {literal(report.skipped)}")
    return 0


def _print_decisions(decisions: list[Decision]) -> Console:
    """The decisions as a table; no pending job is one line, as `status` says an empty section."""
    from rich.table import Table
    from rich.text import Text

    from federator.commands.output import wide_enough

    if not decisions:
        console = new_console()
        console.print("federator plan: no pending job in the watched on-prem queues")
        return console
    table = Table()
    for column in ("job", "decision", "where", "expected cost", "expected wait", "reason"):
        table.add_column(column, overflow="fold")
    for d in decisions:
        where = f"{d.cluster}/{d.pool}" if d.cluster else "onprem"
        table.add_row(  # the job, its place and the reason are names from outside: as they are
            Text(d.job_key),
            str(d.kind),
            Text(where),
            f"${d.expected_cost_usd:,.2f}",
            _duration(d.expected_wait_s),
            Text(d.reason),
        )
    console = wide_enough(new_console(), table)
    # The title as its own line: rich centres a table title in blanks to the table's width.
    console.print(f"federator plan: {_count(len(decisions), 'pending job')}", highlight=False)
    console.print(table)
    return console


def _print_json(config_path: Path) -> int:
    decisions, report = asyncio.run(_plan(config_path))  # its logs go to stderr
    print(json.dumps(plan_document(decisions, report), indent=2))
    return 0


def plan_document(decisions: list[Decision], report: PassReport) -> dict[str, Any]:
    """The pass as data: its decisions serialized as /debug/decisions serves them (the same
    function), stamped with the pass's time and `acted` false, and the pass's note."""
    from federator import web

    records = [
        web.decision_json(web.DecisionRecord.of(d, decided_at=report.now, acted=False))
        for d in decisions
    ]
    return {"count": len(records), "decisions": records, "note": report.skipped or None}


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


async def _plan(config_path: Path) -> tuple[list[Decision], PassReport]:
    from federator import daemon
    from federator.commands.reachability import stop_unless_onprem_answers

    await stop_unless_onprem_answers(config_path)
    return await daemon.plan(config_path)


def _duration(seconds: float) -> str:
    """The wait as the reason column says it (28s, 12m, 6h10m): the sandbox's waits are
    seconds, which whole minutes showed as 0m."""
    from federator.core import reasons

    if not math.isfinite(seconds):
        return "never (no room on-prem)"
    return reasons.duration(seconds)
