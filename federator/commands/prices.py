"""`federator prices`: the offers the cost model would receive right now, as a table."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from federator.commands.options import add_policy_file_option
from federator.commands.output import literal, new_console

if TYPE_CHECKING:
    from rich.console import Console

    from federator.prices.offers import OfferBook

DESCRIPTION = """\
Show, for every cloud pool in the policy file, what federator would offer the cost model
right now: the price per GPU-hour for spot and on-demand, how old that price is and where it
came from (a catalog row with its file and line, the AWS spot price API, or a fixed price),
the preemption-rate estimate with its evidence, and the capacity signal (AWS spot placement
score 1-10, GPUs federator may still use).

A pool whose price is refused — negative or NaN, spot above on-demand, an unknown instance
type, a zone with no data, or older than the staleness limit — is shown as SKIPPED with the
reason; the daemon leaves such a pool out of its decisions until the price is fixed.

Pools priced by `aws-spot-api` call AWS (DescribeSpotPriceHistory, GetSpotPlacementScores)
with credentials from boto3's standard chain (environment, ~/.aws, SSO, instance role);
use --offline to skip them.

examples:
  federator prices --config config/sandbox.yaml
  federator prices --config config/federator.example.yaml --offline
  federator prices --config config/sandbox.yaml --json
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "prices",
        help="show the current offers per cloud pool: prices, age, source, preemption, capacity",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_policy_file_option(parser, "the policy file (YAML) to read")
    parser.add_argument(
        "--offline",
        action="store_true",
        help="do not call AWS; pools priced by aws-spot-api are shown as skipped",
    )
    parser.add_argument(
        "--aws-endpoint",
        type=_endpoint_url,
        metavar="URL",
        help="send AWS calls to this endpoint instead of AWS (a local emulator, for testing)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the rows as JSON instead of a table"
    )
    parser.set_defaults(run=run)


def _endpoint_url(text: str) -> str:
    """An http(s) URL with a host, checked when the arguments are parsed (exit 2)."""
    from urllib.parse import urlsplit

    try:
        url = urlsplit(text)
        host = url.hostname
        url.port  # noqa: B018 - raises ValueError for a port that is not a number or too big
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a URL: {error}") from None
    if url.scheme not in ("http", "https") or not host:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an http:// or https:// URL with a host (e.g. http://127.0.0.1:5000)"
        )
    return text


# After a failed AWS call: what a newcomer without AWS credentials (the usual cause) can do.
AWS_HINT = (
    "AWS calls use boto3's credentials (environment, ~/.aws, SSO, instance role); "
    "--offline skips them (those pools are then shown as skipped)"
)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import sys
    import time

    from federator import jsonsafe, logs
    from federator.policy import load_policy
    from federator.prices.live import offer_builder, refresh_all

    # The table says why each pool is skipped; logs (to stderr) are for real errors only.
    logs.configure(json=False, level="ERROR", stream=sys.stderr)
    config = load_policy(args.config)
    builder = offer_builder(config, live_aws=not args.offline, aws_endpoint=args.aws_endpoint)
    console = new_console(stderr=True, soft_wrap=True)  # whole lines, also when redirected
    now = time.time()
    if not args.offline and any(p.pool.price.source == "aws-spot-api" for p in builder.pricings):
        with console.status("asking AWS for spot prices and placement scores…"):
            reports = asyncio.run(refresh_all(builder.pricings, now))
        failures = [
            f"[red]{literal(pool)}[/]: AWS {literal(region)}: {literal(outcome)}"
            for pool, report in reports.items()
            for region, outcome in report.failed.items()
        ]
        for failure in failures:
            console.print(failure, highlight=False)
        if failures:
            console.print(AWS_HINT, highlight=False)
        now = time.time()
    book = builder.build(now)
    if args.json:
        # A refused row may carry NaN/infinite prices: null in JSON, which has no such numbers.
        print(jsonsafe.dumps(_as_json(book)))
    else:
        _print_table(book, new_console())
    return 0


def _as_json(book: OfferBook) -> list[dict[str, object]]:
    return [
        {
            "pool": row.key,
            "gpu_type": row.gpu_type,
            "capacity_type": row.capacity.value,
            "spot_usd_per_gpu_hour": row.spot_usd_per_gpu_hour,
            "on_demand_usd_per_gpu_hour": row.on_demand_usd_per_gpu_hour,
            "price_age_s": row.price_age_s,
            "source": row.source,
            "preemption_rate_per_hour": row.preemption.rate_per_hour,
            "preemption_evidence": row.preemption.evidence,
            "placement_score": row.placement_score,
            "free_gpus": row.free_gpus,
            "offered": row.offer is not None,
            "refused_reason": row.refusal.reason.value if row.refusal else None,
            "refused_detail": row.refusal.detail if row.refusal else None,
            "notes": list(row.notes),
        }
        for row in book.rows
    ]


def _print_table(book: OfferBook, console: Console) -> None:
    from rich.table import Table
    from rich.text import Text

    from federator.commands.output import wide_enough

    table = Table(title="cloud offers (USD per GPU-hour)", title_justify="left")
    for column in ("pool", "GPU", "capacity"):
        table.add_column(column)
    for column in ("spot", "on-demand", "age"):
        table.add_column(column, justify="right")
    table.add_column("source")
    for column in ("preempt/h", "score", "free GPUs"):
        table.add_column(column, justify="right")
    table.add_column("status")
    for row in book.rows:
        status = "[green]offered[/]"
        if row.refusal is not None:
            status = f"[red]SKIPPED[/] {row.refusal.reason.value}"
        table.add_row(  # names and the price's source (a catalog's path) as they are
            Text(row.key),
            Text(row.gpu_type),
            row.capacity.value,
            _money(row.spot_usd_per_gpu_hour, bold=row.capacity.value == "spot"),
            _money(row.on_demand_usd_per_gpu_hour, bold=row.capacity.value == "on-demand"),
            _age(row.price_age_s),
            Text(row.source),
            f"{row.preemption.rate_per_hour:.3g}",
            "-" if row.placement_score is None else f"{row.placement_score:g}",
            str(row.free_gpus),
            status,
        )
    console = wide_enough(console, table)
    console.print(table)
    for row in book.rows:
        if row.refusal is not None:
            detail = literal(row.refusal.detail)
            console.print(f"[red]{literal(row.key)}[/]: skipped: {detail}", highlight=False)
        for note in row.notes:
            console.print(f"[yellow]{literal(row.key)}[/]: {literal(note)}", highlight=False)
        evidence = f"{literal(row.key)}: preemption {literal(row.preemption.evidence)}"
        console.print(f"[dim]{evidence}[/]", highlight=False)
    console.print(f"{len(book.offers)} of {len(book.rows)} pools offered.")
    console.print(
        "[dim]free GPUs here is each pool's cap (max_gpus); the daemon also limits it to the "
        "GPUs free on the cluster's nodes and to what it already runs there.[/]",
        highlight=False,
    )


def _money(value: float | None, bold: bool) -> str:
    if value is None:
        return "-"
    text = f"{value:.4f}"
    return f"[bold]{text}[/]" if bold else text


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
