"""`federator plan`: what federator would do right now, and why, without doing it."""

from __future__ import annotations

import argparse
import asyncio
import math
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from rich.console import Console

    from federator import policy
    from federator.core.decisions import Decision
    from federator.federation.federation import PassReport
    from federator.kube import clients

DESCRIPTION = """\
Connect to the live clusters, observe the on-prem queue and the cloud pools once, and print
every pending job with the decision the cost model makes for it: stay on-prem, burst to a
pool, or hold — with the expected cost, the expected wait and a one-line reason. Nothing is
written anywhere (it is a dry-run pass).

The on-prem apiserver is tried first (3 tries over 5 s): if it refuses the connection, its
name does not resolve, or it refuses the credentials, the command stops at once (exit 2)
saying so. An apiserver that is there but slow gets up to 60 s for the caches to fill; one
that stops answering within them ends the command with exit 1 (it may pass).

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
    decisions, report = asyncio.run(_plan(args.config))
    console = _print_decisions(decisions)
    if report.skipped:
        console.print(f"[yellow]note:[/] {report.skipped}")
    return 0


def _print_decisions(decisions: list[Decision]) -> Console:
    """The decisions as a table; no pending job is one line, as `status` says an empty section."""
    from rich.console import Console
    from rich.table import Table

    from federator.commands.output import wide_enough

    if not decisions:
        console = Console()
        console.print("federator plan: no pending job in the watched on-prem queues")
        return console
    table = Table()
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
    # The title as its own line: rich centres a table title in blanks to the table's width.
    console.print(f"federator plan: {_count(len(decisions), 'pending job')}", highlight=False)
    console.print(table)
    return console


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


async def _plan(config_path: Path) -> tuple[list[Decision], PassReport]:
    from federator import daemon

    await stop_unless_onprem_answers(config_path)
    return await daemon.plan(config_path)


async def stop_unless_onprem_answers(config_path: Path) -> None:
    """Raise a `UserError` when the on-prem apiserver is not there or refuses who we are.

    `plan`, `run --once` (and any one-shot command that waits for the on-prem caches) call
    this first: without it a stopped cluster cost a 60 s wait for the caches before its
    error. Only what cannot pass within a command's life stops it (nothing listening, no
    such host, 401/403); a slow or erring apiserver still gets the cache wait. Only on-prem
    is probed: it is the one cluster the commands wait for, while a cloud that is down is
    left out of the pass, as the daemon does, so one cloud's outage cannot stop a cron pass.
    """
    from federator import daemon, errors, policy
    from federator.kube import clients

    try:
        config = policy.load_policy(config_path)
    except errors.UserError:
        return  # the command reports its own policy file's errors, in its own words
    name = config.onprem_cluster.name
    cluster = await daemon.connect_cluster(config, name, None)
    try:
        found = await clients.probe(cluster)
    finally:
        await cluster.close()
    if problem := unreachable(found, where=connection_source(config, name)):
        raise errors.UserError(problem)


def unreachable(found: clients.Reachability, *, where: str) -> str:
    """What stops a one-shot command, said for a person at a terminal; "" if nothing does."""
    cluster = f"cluster {found.cluster} ({found.server})"
    tries = f"{found.tries} times over {found.within_s:.0f} s"
    if found.nothing_there == "did not resolve":
        return f"{cluster}: the host name did not resolve, {tries}; check the server in {where}"
    if found.nothing_there:
        hint = "; is it running?"
        if urlsplit(found.server).hostname in ("127.0.0.1", "localhost", "::1"):
            hint += " For the local sandbox: federator sandbox up"
        return f"{cluster} {found.nothing_there} {tries} ({where}){hint}"
    if found.credentials_refused:
        return (
            f"{cluster} refused our credentials ({found.status} {found.answer}): check the "
            f"user's token or client certificate in {where}"
        )
    return ""


def connection_source(config: policy.FederatorConfig, name: str) -> str:
    """Where a cluster's server and credentials come from, as a person would look them up."""
    from federator import policy

    access = policy.cluster_access(config, name)
    field = f"clusters.{name}.connection"
    if access.kubeconfig is not None:
        return f"{field}.kubeconfig: {access.kubeconfig}, context {access.context or name}"
    if access.in_cluster:
        return f"{field}.in_cluster (the pod's service account)"
    namespace, secret, key = access.kubeconfig_secret or (None, "", "")
    namespace = namespace or config.state_namespace
    return f"{field}.kubeconfig_secret: Secret {namespace}/{secret}, key {key!r}"


def _duration(seconds: float) -> str:
    """The wait as the reason column says it (28s, 12m, 6h10m): the sandbox's waits are
    seconds, which whole minutes showed as 0m."""
    from federator.core import reasons

    if not math.isfinite(seconds):
        return "never (no room on-prem)"
    return reasons.duration(seconds)
