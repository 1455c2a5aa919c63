"""`federator sync`: replicate a dataset to a cloud store, or bring models back, by hand."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from federator import jsonsafe
from federator.commands.output import literal, new_console

if TYPE_CHECKING:
    from collections.abc import Iterator

    from rich.console import Console

    from federator.policy import FederatorConfig
    from federator.storage.copying import DatasetCopier
    from federator.storage.registry import SyncBackReport
    from federator.storage.stores import Stores
    from federator.syncing.plans import SyncPlan, SyncReport

DEFAULT_CONFIG = "config/sandbox.yaml"

DESCRIPTION = """\
Copy data between the on-prem object store and the cloud stores, the way the daemon does
before a bursted job starts and while it runs.

  federator sync dataset NAME --to CLUSTER [--dry-run]
      Make CLUSTER's replica of dataset NAME equal to its on-prem source. Both sides are
      listed (no per-object HEAD), only new or changed objects are copied, each copy is
      verified against the source's checksum before it becomes visible, and a rerun after an
      interruption resumes where it stopped (finished objects and finished parts of large
      objects are kept). Deletes follow the policy's sync.delete rules (off by default;
      held back and capped when on). --dry-run prints the plan and copies nothing.

  federator sync models --from CLUSTER
      Copy every model version and checkpoint that jobs on CLUSTER published to its staging
      area into the on-prem registry: blobs first, each verified by its SHA-256, then the
      version's manifest. Versions already on-prem are skipped, so it is safe to rerun. A
      version that failed, or that a stop left for the next round, is named, and the round
      is reported incomplete (exit 1); a rerun copies it. Ctrl-C stops the round: no further
      version is started, the one being copied is abandoned unless its manifest is already
      being written, and the report follows; a second Ctrl-C quits at once.

  --json (either action) writes, in addition, one JSON document to stdout when the command
      ends: the plan's counts and the report's figures (failures included) and `complete`,
      true exactly when the command exits 0. The lines above stay on stderr unchanged; a
      mistake (exit 2) or a store that does not answer writes nothing to stdout.

CLUSTER is one of the policy file's cloud clusters. Stores, credentials, dataset locations and
the copy settings come from the policy file (--config, default $FEDERATOR_CONFIG or
config/sandbox.yaml). A mistake in the arguments or the file exits 2; a store that does not
answer (after retries) exits 1 with one line naming it.

examples:
  federator sync dataset imagenet-mini --to cloud-a --dry-run
  federator sync dataset imagenet-mini --to cloud-b
  federator sync models --from cloud-a
  federator sync dataset imagenet-mini --to cloud-b --json > sync-report.json
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "sync",
        help="replicate a dataset to a cloud store, or sync models back on-prem",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_argument(parser)
    what = parser.add_subparsers(title="what to sync", metavar="WHAT", required=True)
    dataset = what.add_parser(
        "dataset",
        help="replicate one dataset to a cloud cluster's store",
        description="Replicate dataset NAME from the on-prem store to CLUSTER's store.",
        epilog="example:\n  federator sync dataset imagenet-mini --to cloud-b --json > report.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_argument(dataset, here=False)
    dataset.add_argument("name", metavar="NAME", help="the dataset's name in the policy file")
    dataset.add_argument("--to", required=True, metavar="CLUSTER", help="the cloud cluster")
    dataset.add_argument("--dry-run", action="store_true", help="print the plan, copy nothing")
    add_json_argument(dataset, "the plan and the report")
    dataset.set_defaults(run=run_dataset)
    models = what.add_parser(
        "models",
        help="copy a cloud's staged model versions and checkpoints into the on-prem registry",
        description="Copy CLUSTER's staged model versions and checkpoints to the registry.",
        epilog="example:\n  federator sync models --from cloud-a --json > round.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_argument(models, here=False)
    models.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="CLUSTER",
        help="the cloud cluster whose staging area to copy from",
    )
    add_json_argument(models, "the round's report")
    models.set_defaults(run=run_models)


def add_json_argument(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        help=f"also write {what} as one JSON document to stdout (the lines stay on stderr)",
    )


def add_config_argument(parser: argparse.ArgumentParser, *, here: bool = True) -> None:
    """-c/--config on the command (`here`) and again on each of its actions, so that it may
    come before or after the action, as `federator plan --config FILE` puts it. An action's
    copy sets nothing unless given, so it never hides the one given before the action."""
    default = os.environ.get("FEDERATOR_CONFIG", DEFAULT_CONFIG)
    parser.add_argument(
        "-c",
        "--config",
        default=default if here else argparse.SUPPRESS,
        help=f"the policy file (default: $FEDERATOR_CONFIG or {DEFAULT_CONFIG})",
    )


def run_dataset(args: argparse.Namespace) -> int:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from federator.errors import UserError
    from federator.policy import load_policy
    from federator.storage.stores import Stores

    config = load_policy(args.config)
    check_cloud_cluster(config, "--to", args.to)
    if args.name not in {dataset.name for dataset in config.datasets}:
        known = ", ".join(dataset.name for dataset in config.datasets) or "none"
        raise UserError(
            f"dataset {args.name!r}: the policy file {args.config} has no such dataset "
            f"(datasets: {known})"
        )
    stores = Stores(config)
    copier = stores.dataset_copier(args.name, args.to)
    console = _console()
    console.print(
        f"[bold]{literal(args.name)}[/]: {literal(copier.source)} -> {literal(copier.target)}"
    )
    with (
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        ) as progress,
        stores.certificate_failures_explained(),
    ):
        task = progress.add_task("listing", total=None)

        def planned(plan: SyncPlan) -> None:
            _print_plan(console, plan)
            progress.update(task, description="copying", total=plan.bytes_to_copy)

        report = copier.run(
            dry_run=args.dry_run,
            on_plan=planned,
            on_bytes=lambda n: progress.advance(task, n),
        )
    _print_report(console, report)
    if args.json:
        _write_json(_dataset_document(args.name, args.to, copier, report))
    return 0 if report.ok else 1


def check_cloud_cluster(config: FederatorConfig, option: str, name: str) -> None:
    """Refuse, as argparse would, a cluster the file does not have or one that is not a cloud
    (the on-prem cluster has no staging area and is the source of every dataset)."""
    from federator.errors import UserError

    clouds = ", ".join(cluster.name for cluster in config.cloud_clusters) or "none"
    roles = {cluster.name: cluster.role for cluster in config.clusters}
    if name not in roles:
        raise UserError(
            f"argument {option}: no cluster is named {name!r} in the policy file; "
            f"choose from the cloud clusters: {clouds}"
        )
    if roles[name] != "cloud":
        raise UserError(
            f"argument {option}: {name!r} is an on-prem cluster, whose datasets are the "
            f"sources and whose models are the registry itself; name a cloud cluster: {clouds}"
        )


def _print_plan(console: Console, plan: SyncPlan) -> None:
    console.print(
        f"plan: copy {len(plan.copies)} object(s), {_size(plan.bytes_to_copy)}; "
        f"{plan.skipped} already there"
    )
    reasons: dict[str, int] = {}
    for item in plan.copies:
        reasons[item.reason.value] = reasons.get(item.reason.value, 0) + 1
    for reason, count in sorted(reasons.items()):
        console.print(f"  {count} {reason}")
    if plan.deletes:
        console.print(f"  delete after copying: {len(plan.deletes)} object(s)")
    if plan.delete_note:
        console.print(f"  {literal(plan.delete_note)}")


def _print_report(console: Console, report: SyncReport) -> None:
    if report.dry_run:
        console.print("dry run: nothing copied")
        return
    console.print(
        f"copied {report.copied} object(s), {_size(report.bytes_copied)} in "
        f"{report.seconds:.1f}s; {report.resumed_parts} part(s) resumed, "
        f"{report.recopied_after_change} recopied after the source changed, "
        f"{report.deleted} deleted, {report.aborted_uploads} abandoned upload(s) aborted"
    )
    for load in report.throttling:
        console.print(
            f"[yellow]throttled[/] {literal(load.endpoint)} answered {load.throttles} "
            "throttling error(s) "
            f"(503 SlowDown or similar): requests in flight went from {load.ceiling} down to "
            f"{load.lowest}, {load.limit} at the end"
        )
    for key, message in report.failures[:20]:
        console.print(_failed_line(key, message))
    if len(report.failures) > 20:
        console.print(f"[red]... and {len(report.failures) - 20} more failures[/]")


def _failed_line(what: str, message: str) -> str:
    """A failure for a person, its error through the log redactor as in the JSON document: a
    store's error can carry a presigned URL or a key, and stderr ends up in terminals and CI
    logs."""
    from federator.logs import redact_text

    return f"[red]failed[/] {literal(what)}: {literal(redact_text(message))}"


def run_models(args: argparse.Namespace) -> int:
    from federator.policy import load_policy
    from federator.storage.registry import sync_back
    from federator.storage.stores import Stores

    config = load_policy(args.config)
    check_cloud_cluster(config, "--from", args.source)
    stores = Stores(config)
    source, target = stores.staging(args.source), stores.registry()
    console = _console()
    with (
        console.status(f"syncing {literal(source.location)} -> {literal(target.location)}"),
        stores.certificate_failures_explained(),
        _first_interrupt_stops(stores, console),
    ):
        report = sync_back(source, target)
    _print_models_report(console, report)
    if args.json:
        _write_json(_models_document(args.source, report))
    return 0 if _brought_every_version_home(report) else 1


def _brought_every_version_home(report: SyncBackReport) -> bool:
    """The rule of exit 0, and of the JSON document's `complete`."""
    return not report.failures and not report.left_for_next_round


@contextlib.contextmanager
def _first_interrupt_stops(stores: Stores, console: Console) -> Iterator[None]:
    """The first Ctrl-C stops the round as a shutdown stops the daemon's (no further version
    is started, an upload in flight is aborted), so that the report can name what was left; a
    second one interrupts at once, as any Ctrl-C did before."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may handle signals
        return
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield  # started with Ctrl-C ignored (nohup, a background job of a script): keep it so
        return

    def stop(_signum: int, _frame: object) -> None:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        console.print("[yellow]stopping[/]: no further version is started (Ctrl-C again to quit)")
        stores.stop_transfers()

    previous = signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _print_models_report(console: Console, report: SyncBackReport) -> None:
    for name in report.versions_copied:
        console.print(f"copied {literal(name)}")
    left = report.left_for_next_round
    console.print(
        f"{len(report.versions_copied)} version(s) copied ({report.blobs_copied} blob(s), "
        f"{_size(report.bytes_copied)}), {report.versions_present} already on-prem"
        + (f", {left} left for the next round" if left else "")
    )
    for name, message in report.failures:
        console.print(_failed_line(name, message))
    # A stopped round is not a complete one: without these lines its summary read as if every
    # staged version were home.
    for name in report.versions_left:
        console.print(f"[yellow]left[/] {literal(name)}: not reached before the stop")
    not_home = len(report.failures) + left
    if not_home:
        console.print(
            f"[yellow]incomplete[/]: {not_home} version(s) not brought home "
            f"({len(report.failures)} failed, {left} left by the stop); "
            "the next run tries them again"
        )


def _dataset_document(
    dataset: str, cluster: str, copier: DatasetCopier, report: SyncReport
) -> dict[str, Any]:
    """`sync dataset --json`: the plan's and the report's own figures, under their names.
    `report` is null for a dry run, which copies nothing."""
    from federator.logs import redact_text

    plan = report.plan
    ran = None
    if not report.dry_run:
        ran = {
            "copied": report.copied,
            "bytes_copied": report.bytes_copied,
            "resumed_parts": report.resumed_parts,
            "recopied_after_change": report.recopied_after_change,
            "vanished": report.vanished,
            "deleted": report.deleted,
            "aborted_uploads": report.aborted_uploads,
            # The human lines cut the list at 20; a program wants every key that failed.
            "failures": [
                {"key": key, "error": redact_text(message)} for key, message in report.failures
            ],
            "seconds": report.seconds,
            "throttling": [dataclasses.asdict(load) for load in report.throttling],
        }
    return {
        "dataset": dataset,
        "cluster": cluster,
        "source": str(copier.source),  # endpoint:s3://bucket/prefix; credentials live elsewhere
        "target": str(copier.target),
        "dry_run": report.dry_run,
        "listed_at": report.listed_at,
        "plan": {
            "copies": len(plan.copies),
            "bytes_to_copy": plan.bytes_to_copy,
            "skipped": plan.skipped,
            "deletes": len(plan.deletes),
            "held_back_deletes": len(plan.held_back_deletes),
            "delete_note": plan.delete_note,
        },
        "report": ran,
        "complete": report.ok,
    }


def _models_document(cluster: str, report: SyncBackReport) -> dict[str, Any]:
    """`sync models --json`: the round's report under its own names."""
    from federator.logs import redact_text

    return {
        "cluster": cluster,
        "versions_copied": list(report.versions_copied),
        "versions_present": report.versions_present,
        "blobs_copied": report.blobs_copied,
        "blobs_present": report.blobs_present,
        "bytes_copied": report.bytes_copied,
        "failures": [
            {"name": name, "error": redact_text(message)} for name, message in report.failures
        ],
        "left_for_next_round": report.left_for_next_round,
        "versions_left": list(report.versions_left),
        "complete": _brought_every_version_home(report),
    }


def _write_json(document: dict[str, Any]) -> None:
    """One document on stdout, after the person's lines on stderr. JSON has no Infinity or
    NaN (json.dumps would write them anyway, and strict parsers refuse them): they become
    null."""
    text = jsonsafe.dumps(document)
    sys.stdout.write(text + "\n")


def _console() -> Console:
    """stderr, lines unbroken: redirected, rich folded them at 80 columns, mid-URL."""
    return new_console(stderr=True, soft_wrap=True)


def _size(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"
